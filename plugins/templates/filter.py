"""
title: Template Filter
author: Open WebUI Pack contributors
version: 0.1.0
description: A minimal filter that sees the request, each streamed chunk and the finished reply.
license: MIT
required_open_webui_version: 0.6.43
"""

from pydantic import BaseModel, Field

from shared.events import send, status


class Filter:
    class Valves(BaseModel):
        priority: int = Field(default=0, title="Run order", description="Filters run in ascending priority.")
        MARK: str = Field(
            default="",
            title="Text added to replies",
            description="Text added to the end of every finished reply; empty = none.",
        )

    def __init__(self) -> None:
        self.valves = self.Valves()

    async def inlet(self, body: dict, __event_emitter__=None) -> dict:
        count = len(body.get("messages", []))
        await send(__event_emitter__, status(f"Filter inlet saw {count} messages"))
        return body

    def stream(self, event: dict) -> dict:
        return event

    async def outlet(self, body: dict, __event_emitter__=None) -> dict:
        if self.valves.MARK:
            for message in body.get("messages", [])[-1:]:
                mark_reply(message, self.valves.MARK)
        await send(__event_emitter__, status("Filter outlet done", done=True))
        return body


def mark_reply(message: dict, mark: str) -> None:
    # Open WebUI 0.10+ shows a reply's structured `output`, older versions its `content`: edit both
    # (0.10.x hands the outlet an empty `content` next to the `output`; leave that one empty).
    if message.get("content") or not message.get("output"):
        message["content"] = f"{message.get('content', '')}{mark}"
    for item in message.get("output") or []:
        for part in item.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "output_text":
                part["text"] = f"{part.get('text', '')}{mark}"
