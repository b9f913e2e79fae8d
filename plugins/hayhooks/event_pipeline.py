"""
title: Event Pipeline
author: Open WebUI Pack contributors
version: 0.1.0
description: Hayhooks wrapper: a prompt and a model, with live status (asking, time taken) and a streamed answer.
license: MIT
required_open_webui_version: 0.12.4
server_requirements: hayhooks==2.1.0, haystack-ai==3.4.1
"""

from collections.abc import AsyncIterator

from hayhooks import BasePipelineWrapper, async_streaming_generator
from haystack import Pipeline as HaystackPipeline  # the name Pipeline is a Pipelines-server class
from haystack.components.builders import ChatPromptBuilder
from starlette.datastructures import Headers

from shared.hayhooks import (
    HISTORY_TEMPLATE,
    NOT_CONFIGURED,
    SYSTEM_PROMPT,
    Item,
    PackConfig,
    Turn,
    build_generator,
    chat_history,
    describe_failure,
    elapsed_text,
    guarded,
    is_task,
    quick_reply,
    reader_is_admin,
    relay,
    reply_text,
)


def writing_status(words: int) -> str:
    return f"Writing the answer ({words} words so far)"


class PipelineWrapper(BasePipelineWrapper):
    """The model `event_pipeline`: ChatPromptBuilder -> OpenAIChatGenerator, streamed with statuses.

    Environment: OPENAI_API_KEY, OPENAI_BASE_URL, HAYHOOKS_PACK_MODEL, HAYHOOKS_PACK_TIMEOUT;
    HAYHOOKS_PACK_NOTIFY=true adds a success toast; HAYHOOKS_PACK_PROGRESS_EVERY=N a "writing"
    status every N streamed chunks (coalesced by HAYHOOKS_PACK_STATUS_INTERVAL seconds).
    """

    def setup(self) -> None:
        self.config = PackConfig.from_env()
        self.pipeline = HaystackPipeline()
        self.pipeline.add_component(
            "prompt", ChatPromptBuilder(template=HISTORY_TEMPLATE, required_variables=["history"])
        )
        self.pipeline.add_component("llm", build_generator(self.config))
        self.pipeline.connect("prompt.prompt", "llm.messages")
        self.plain_llm = build_generator(self.config)

    def _run_args(self, history: list[dict[str, str]]) -> dict:
        return {"prompt": {"history": history, "system_prompt": SYSTEM_PROMPT}}

    async def run_chat_completion_async(
        self, model: str, messages: list[dict], body: dict, headers: Headers | None = None
    ) -> str | AsyncIterator[Item]:
        # Returns the generator: an `async def` that yields itself makes Hayhooks 2.1.0 answer 500.
        history = chat_history(messages)
        admin = reader_is_admin(headers)
        if is_task(body, headers):
            return await quick_reply(self.plain_llm, history, self.config, admin=admin)
        turn = Turn(self.config, admin=admin, progress=writing_status)
        return guarded(turn, self._answer(turn, history))

    def run_chat_completion(self, model: str, messages: list[dict], body: dict) -> str:
        """For callers that call the wrapper synchronously: the whole answer as text, no events."""
        if self.config.problem:
            return NOT_CONFIGURED
        try:
            return reply_text(self.pipeline.run(self._run_args(chat_history(messages))), "llm")
        except Exception as exc:
            return describe_failure(exc, self.config.timeout)

    async def _answer(self, turn: Turn, history: list[dict[str, str]]) -> AsyncIterator[Item]:
        for event in turn.step("Asking the model"):
            yield event
        if self.config.problem:
            for item in turn.fail(None, NOT_CONFIGURED, self.config.problem):
                yield item
            return
        chunks = async_streaming_generator(self.pipeline, pipeline_run_args=self._run_args(history))
        async for item in relay(turn, chunks):
            yield item
        if not turn.text.strip():
            for item in turn.fail(None, "The model returned an empty answer; try asking again."):
                yield item
            return
        took = elapsed_text(turn.elapsed())
        for event in turn.finish(f"Answered in {took}", success=f"The answer is ready ({took})."):
            yield event
