"""
title: Template Action
author: Open WebUI Pack contributors
version: 0.1.0
description: A minimal message button that asks the user something, confirms, and reports back.
license: MIT
required_open_webui_version: 0.6.43
"""

from pydantic import BaseModel, Field

from shared.events import Emitter


def clicked_message(body: dict) -> dict:
    messages = body.get("messages") or []
    for message in messages:
        if message.get("id") == body.get("id"):
            return message
    return messages[-1] if messages else {}


class Action:
    class Valves(BaseModel):
        priority: int = Field(default=0, title="Button order", description="Buttons are ordered by ascending priority.")
        CALL_TIMEOUT: float = Field(
            default=120,
            title="Seconds to wait for an answer",
            ge=1,
            le=3600,
            description="Seconds to wait for the user.",
        )

    def __init__(self) -> None:
        self.valves = self.Valves()

    async def action(self, body: dict, __user__=None, __event_emitter__=None, __event_call__=None) -> None:
        events = Emitter(__event_emitter__, __event_call__, call_timeout=self.valves.CALL_TIMEOUT)
        text = str(clicked_message(body).get("content", ""))
        note = await events.ask("Add a note", "A note for this message:", placeholder="note", default=text[:40])
        if note is None or not await events.confirm("Save the note?", note):
            # call_problem says why a dialog got no answer (closed tab, timeout); None after a Cancel
            problem = events.call_problem
            await events.notify(f"{problem}: nothing was done." if problem else "Nothing was done.")
            await events.status("Cancelled", done=True)
            return
        await events.notify(f"Noted: {note}", "success")
        await events.status("Noted", done=True)
