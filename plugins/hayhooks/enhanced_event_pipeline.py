"""
title: Enhanced Event Pipeline
author: Open WebUI Pack contributors
version: 0.1.0
description: Hayhooks wrapper: a Haystack Agent with offline tools, each call shown as a status and a tool card.
license: MIT
required_open_webui_version: 0.12.4
server_requirements: hayhooks==2.1.0, haystack-ai==3.4.1
"""

from collections.abc import AsyncIterator
from typing import Any

from hayhooks import BasePipelineWrapper, async_streaming_generator
from haystack.components.agents import Agent
from haystack.tools import Tool
from starlette.datastructures import Headers

from shared.events import status
from shared.hayhooks import (
    NOT_CONFIGURED,
    Item,
    PackConfig,
    ToolCallTracker,
    Turn,
    UIEvent,
    build_generator,
    chat_history,
    chat_messages,
    elapsed_text,
    guarded,
    is_task,
    quick_reply,
    reader_is_admin,
    relay,
    tool_call_block,
)
from shared.hayhooks_files import attach_to_question, budget, context_files, files_prompt, read_file, request_files
from shared.hayhooks_tools import OFFLINE_TOOLS, tool_doing, tool_done, tools_summary

AGENT_PROMPT = (
    "You are a helpful assistant with tools. Use the calculator for every calculation, current_time for "
    "the date or time anywhere, and convert_units for unit conversions; never do arithmetic in your head. "
    "Answer in the language of the question."
)
MAX_AGENT_STEPS = 8


class _ToolTurn:
    """One turn's tool calls: the callbacks Hayhooks calls, and what they showed."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.used: list[str] = []
        self.ids: list[tuple[str, str]] = []  # (name, id) of the calls asked for, in order

    def on_start(self, name: str, arguments: dict[str, Any], call_id: str | None) -> UIEvent:
        # Called on a call's first streamed delta: the arguments are not known yet.
        return UIEvent(status(tool_doing(name, arguments)))

    def on_calls(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[Item]:
        # The model finished asking: the full arguments, before the tools run.
        self.ids.extend((name, call_id) for call_id, name, _ in calls)
        return [event for _, name, arguments in calls for event in self.turn.status(tool_doing(name, arguments))]

    def on_end(self, name: str, arguments: dict[str, Any], result: str, error: bool) -> list[Item]:
        self.used.append(name)
        call_id = next((cid for n, cid in self.ids if n == name), "") or f"call_{len(self.used)}"
        if (name, call_id) in self.ids:
            self.ids.remove((name, call_id))
        done = UIEvent(status(tool_done(name, arguments, result, error), done=True))
        # Haystack words a tool's failure "Failed to invoke Tool `x` with parameters {...}. Error: <why>";
        # the card shows the why (the model still gets the whole text).
        shown = result.split("Error: ", 1)[1] if error and "Error: " in result else result
        return [done, self.turn.separated(tool_call_block(call_id, name, arguments, shown))]


class PipelineWrapper(BasePipelineWrapper):
    """The model `enhanced_event_pipeline`: a Haystack Agent whose tools run inside this server.

    The Agent's own tool-call chunks never leave the wrapper: forwarded as OpenAI `tool_calls`,
    Open WebUI would run its tool loop on them and call the wrapper again, up to 256 times.
    """

    def setup(self) -> None:
        self.config = PackConfig.from_env()
        tools = [
            Tool(name=t.name, description=t.description, parameters=t.parameters, function=t.function)
            for t in OFFLINE_TOOLS
        ]
        self.agent = Agent(chat_generator=build_generator(self.config), tools=tools, max_agent_steps=MAX_AGENT_STEPS)
        if hasattr(self.agent, "warm_up"):
            self.agent.warm_up()
        self.plain_llm = build_generator(self.config)

    async def run_chat_completion_async(
        self, model: str, messages: list[dict], body: dict, headers: Headers | None = None
    ) -> str | AsyncIterator[Item]:
        # Returns the generator: an `async def` that yields itself makes Hayhooks 2.1.0 answer 500.
        admin = reader_is_admin(headers)
        if is_task(body, headers):
            return await quick_reply(self.plain_llm, chat_history(messages), self.config, admin=admin)
        turn = Turn(self.config, admin=admin)
        return guarded(turn, self._answer(turn, messages, body))

    async def _answer(self, turn: Turn, messages: list[dict], body: dict) -> AsyncIterator[Item]:
        history = chat_history(messages)
        files = [*context_files(messages), *request_files(body)][: self.config.max_files]
        read = []
        for number, item in enumerate(files, start=1):
            for event in turn.status(f"Reading {item.name} ({number} of {len(files)})"):
                yield event
            read.append(read_file(item, max_bytes=self.config.max_file_bytes))
        budget(read)
        # Open WebUI's documents are in the messages already; the request's own files are added.
        history = attach_to_question(history, files_prompt([f for f in read if f.origin != "context"]))
        if self.config.problem:
            for item in turn.fail(None, NOT_CONFIGURED, self.config.problem):
                yield item
            return
        for event in turn.step("Thinking"):
            yield event
        tools = _ToolTurn(turn)
        chunks = async_streaming_generator(
            self.agent,
            pipeline_run_args={"messages": chat_messages(history, AGENT_PROMPT)},
            on_tool_call_start=tools.on_start,
            on_tool_call_end=tools.on_end,
        )
        async for item in relay(turn, chunks, tracker=ToolCallTracker(), on_calls=tools.on_calls):
            yield item
        if not turn.text.strip():
            for item in turn.fail(None, "The model returned an empty answer; try asking again."):
                yield item
            return
        for event in turn.finish(summary(tools.used, read, turn.elapsed()), success="The answer is ready."):
            yield event


def summary(used: list[str], files: list, seconds: float) -> str:
    parts = [f"Used {tools_summary(used)}" if used else "No tools needed"]
    if files:
        readable = sum(1 for f in files if f.ok)
        parts.append(f"read {readable} of {len(files)} files" if readable != len(files) else f"read {len(files)} files")
    parts.append(elapsed_text(seconds))
    return " · ".join(parts)
