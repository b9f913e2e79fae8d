"""
title: Template Pipeline
author: Open WebUI Pack contributors
version: 0.1.0
description: A minimal Pipelines-server pipeline that streams text and status events.
license: MIT
required_open_webui_version: 0.6.43
"""

from collections.abc import Iterator

from pydantic import BaseModel, Field

from shared.events import status, wire


class Pipeline:
    class Valves(BaseModel):
        PREFIX: str = Field(default="echo: ", title="Answer prefix", description="Text put before every answer.")

    def __init__(self) -> None:
        self.name = "Template Pipeline"
        self.valves = self.Valves()

    async def on_startup(self) -> None:
        pass

    async def on_shutdown(self) -> None:
        pass

    def pipe(self, user_message: str, model_id: str, messages: list[dict], body: dict) -> Iterator[str | dict]:
        # The Pipelines server calls this synchronously and sends each dict as one SSE line;
        # Open WebUI 0.12.4 (open_webui/utils/middleware.py) turns {"event": ...} lines into UI events.
        yield wire(status("Answering"))
        for word in f"{self.valves.PREFIX}{user_message}".split(" "):
            yield word + " "
        yield wire(status("Answered", done=True))
