"""
title: Template Hayhooks Wrapper
author: Open WebUI Pack contributors
version: 0.1.0
description: A minimal Hayhooks pipeline wrapper: a prompt and a model, a status while it answers, the answer streamed.
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
    elapsed_text,
    guarded,
    is_task,
    quick_reply,
    reader_is_admin,
    relay,
)


class PipelineWrapper(BasePipelineWrapper):
    """Served by `hayhooks run` as the model named after its folder (dist/hayhooks/<name>/)."""

    def setup(self) -> None:
        # Built once: a Haystack component belongs to one Pipeline only.
        self.config = PackConfig.from_env()
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
        history = chat_history(messages)
        if is_task(body, headers):
            return await quick_reply(self.plain_llm, history, self.config, admin=reader_is_admin(headers))
        turn = Turn(self.config, admin=reader_is_admin(headers))
        return guarded(turn, self._answer(turn, history))

    async def _answer(self, turn: Turn, history: list[dict[str, str]]) -> AsyncIterator[Item]:
        for event in turn.status("Thinking"):
            yield event
        if self.config.problem:
            for item in turn.fail(None, NOT_CONFIGURED, self.config.problem):
                yield item
            return
        chunks = async_streaming_generator(
            self.pipeline, pipeline_run_args={"prompt": {"history": history, "system_prompt": SYSTEM_PROMPT}}
        )
        async for item in relay(turn, chunks):
            yield item
        for event in turn.finish(f"Answered in {elapsed_text(turn.elapsed())}"):
            yield event
