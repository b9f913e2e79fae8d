"""
title: Template Pipe
author: Open WebUI Pack contributors
version: 0.1.0
description: A minimal pipe that streams an answer and reports progress; start here for a single model.
license: MIT
required_open_webui_version: 0.6.43
"""

from collections.abc import AsyncIterator

from pydantic import BaseModel, Field

from shared.events import notification, send, status
from shared.text import content_text


def last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"), " ")
    return ""


class Pipe:
    class Valves(BaseModel):
        PREFIX: str = Field(default="echo: ", title="Answer prefix", description="Text put before every answer.")
        MAX_WORDS: int = Field(
            default=200, title="Longest answer (words)", ge=1, le=10_000, description="Longest answer, in words."
        )

    def __init__(self) -> None:
        self.valves = self.Valves()

    async def pipe(self, body: dict, __event_emitter__=None, __task__=None) -> AsyncIterator[str]:
        text = last_user_text(body.get("messages", []))
        if __task__:
            # Title, tags and follow-up tasks want one plain answer and no events.
            yield text[:40] or "New chat"
            return
        # Two statuses need no rate limit; a pipe that reports often uses shared.events.Emitter,
        # which coalesces status updates closer together than its `status_interval`.
        await send(__event_emitter__, status("Answering"))
        await send(__event_emitter__, notification("The template pipe got your message."))
        words = f"{self.valves.PREFIX}{text}".split(" ")[: self.valves.MAX_WORDS]
        for word in words:
            yield word + " "
        await send(__event_emitter__, status("Answered", done=True))
