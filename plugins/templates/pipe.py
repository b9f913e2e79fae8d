"""
title: Template Pipe
author: Open WebUI Pack contributors
version: 0.1.0
description: A minimal pipe that streams an answer and reports progress; start here for a single model.
license: MIT
required_open_webui_version: 0.12.4
"""

from collections.abc import AsyncIterator

from pydantic import BaseModel, Field

from shared.events import Emitter


def last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content or "")
    return ""


class Pipe:
    class Valves(BaseModel):
        PREFIX: str = Field(default="echo: ", description="Text put before every answer.")
        STATUS_INTERVAL: float = Field(default=0.0, ge=0, le=10, description="Minimum seconds between status updates.")

    def __init__(self) -> None:
        self.valves = self.Valves()

    async def pipe(self, body: dict, __event_emitter__=None, __task__=None) -> AsyncIterator[str]:
        text = last_user_text(body.get("messages", []))
        if __task__:
            # Title, tags and follow-up tasks want one plain answer and no events.
            yield text[:40] or "New chat"
            return
        events = Emitter(__event_emitter__, status_interval=self.valves.STATUS_INTERVAL)
        await events.status("Answering")
        await events.notify("The template pipe got your message.")
        for word in f"{self.valves.PREFIX}{text}".split(" "):
            yield word + " "
        await events.status("Answered", done=True)
