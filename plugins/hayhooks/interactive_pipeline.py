"""
title: Interactive Pipeline
author: Open WebUI Pack contributors
version: 0.1.0
description: Hayhooks wrapper: progress per real step, sources, and follow-up suggestions made from the answer.
license: MIT
required_open_webui_version: 0.12.4
server_requirements: hayhooks==2.1.0, haystack-ai==3.4.1
"""

import asyncio
import logging
from collections.abc import AsyncIterator

from hayhooks import BasePipelineWrapper, async_streaming_generator
from haystack import Pipeline as HaystackPipeline  # the name Pipeline is a Pipelines-server class
from haystack.components.builders import ChatPromptBuilder
from starlette.datastructures import Headers

from shared.events import citation, follow_ups
from shared.hayhooks import (
    HISTORY_TEMPLATE,
    NOT_CONFIGURED,
    SYSTEM_PROMPT,
    Item,
    PackConfig,
    Turn,
    UIEvent,
    build_generator,
    chat_history,
    chat_messages,
    cited_links,
    elapsed_text,
    fallback_follow_ups,
    follow_up_request,
    guarded,
    is_task,
    last_user_text,
    parse_follow_ups,
    question_text,
    quick_reply,
    reader_is_admin,
    relay,
    reply_text,
)
from shared.hayhooks_files import context_files

_LOG = logging.getLogger("openwebui_pack.hayhooks.interactive")
FOLLOW_UP_TIMEOUT = 20.0  # seconds; the answer is complete by then, only the suggestions wait
SOURCE_EXCERPT = 1500


def writing_status(words: int) -> str:
    return f"Writing the answer ({words} words so far)"


class PipelineWrapper(BasePipelineWrapper):
    """The model `interactive_pipeline`: a prompt and a model, with progress that follows the work.

    Every status stands for a step that really happens; follow-up suggestions come from one
    extra, cheap LLM call over the answer (Open WebUI's own follow-up task, when enabled in
    Admin > Settings > Interface, replaces them once it finishes).
    """

    def setup(self) -> None:
        self.config = PackConfig.from_env(progress_every=10)
        self.pipeline = HaystackPipeline()
        self.pipeline.add_component(
            "prompt", ChatPromptBuilder(template=HISTORY_TEMPLATE, required_variables=["history"])
        )
        self.pipeline.add_component("llm", build_generator(self.config))
        self.pipeline.connect("prompt.prompt", "llm.messages")
        self.plain_llm = build_generator(self.config)

    async def run_chat_completion_async(
        self, model: str, messages: list[dict], body: dict, headers: Headers | None = None
    ) -> str | AsyncIterator[Item]:
        # Returns the generator: an `async def` that yields itself makes Hayhooks 2.1.0 answer 500.
        admin = reader_is_admin(headers)
        if is_task(body, headers):
            return await quick_reply(self.plain_llm, chat_history(messages), self.config, admin=admin)
        turn = Turn(self.config, admin=admin, progress=writing_status)
        return guarded(turn, self._answer(turn, messages))

    async def _answer(self, turn: Turn, messages: list[dict]) -> AsyncIterator[Item]:
        for event in turn.status("Reading the question"):
            yield event
        history = chat_history(messages)
        question = question_text(last_user_text(messages))
        documents = context_files(messages)
        if documents:
            for event in turn.status(
                f"Using {len(documents)} document{'s' if len(documents) != 1 else ''} from this chat",
                action="sources_retrieved",
                count=len(documents),
            ):
                yield event
            for doc in documents:
                yield UIEvent(citation([(doc.text or "")[:SOURCE_EXCERPT]], name=doc.name, event_type="source"))
        if self.config.problem:
            for item in turn.fail(None, NOT_CONFIGURED, self.config.problem):
                yield item
            return
        for event in turn.step("Writing the answer"):
            yield event
        run_args = {"prompt": {"history": history, "system_prompt": SYSTEM_PROMPT}}
        async for item in relay(turn, async_streaming_generator(self.pipeline, pipeline_run_args=run_args)):
            yield item
        answer = turn.text
        if not answer.strip():
            for item in turn.fail(None, "The model returned an empty answer; try asking again."):
                yield item
            return
        links = cited_links(answer)
        for title, url in links:
            yield UIEvent(citation([title], name=title, url=url, event_type="source"))
        for event in turn.step("Suggesting follow-up questions"):
            yield event
        suggestions = await self._follow_ups(question, answer)
        yield UIEvent(follow_ups(suggestions))
        sources = len(documents) + len(links)
        took = elapsed_text(turn.elapsed())
        described = f"Answered in {took}" + (f" · {sources} source{'s' if sources != 1 else ''}" if sources else "")
        for event in turn.finish(described, success=f"The answer is ready ({took})."):
            yield event

    async def _follow_ups(self, question: str, answer: str) -> list[str]:
        try:
            result = await asyncio.wait_for(
                self.plain_llm.run_async(messages=chat_messages(follow_up_request(question, answer))),
                min(FOLLOW_UP_TIMEOUT, self.config.timeout),
            )
            suggestions = parse_follow_ups(reply_text(result))
        except Exception as exc:  # the suggestions are a nicety: any failure gets the fallback
            _LOG.warning("follow-up suggestions failed: %s", type(exc).__name__)
            suggestions = []
        return suggestions or fallback_follow_ups(question)
