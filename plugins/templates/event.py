"""
title: Template Event
author: Open WebUI Pack contributors
version: 0.1.0
description: A minimal event function that writes one server log line for each server event it is told about.
license: MIT
required_open_webui_version: 0.10.2
"""

import logging

from pydantic import BaseModel, Field

_LOG = logging.getLogger("openwebui_pack.template_event")


def wanted(name: str, prefixes: str) -> bool:
    chosen = [p.strip() for p in prefixes.split(",") if p.strip()]
    return not chosen or any(name.startswith(p) for p in chosen)


def summary(event: dict) -> str:
    # Ids only: the payload's actor and data may hold names and e-mail addresses.
    subject = event.get("subject") or {}
    actor = event.get("actor") or {}
    parts = [str(event.get("event", "?"))]
    if subject:
        parts.append(f"subject={subject.get('type')}:{subject.get('id')}")
    if actor.get("id"):
        parts.append(f"actor={actor['id']}")
    return " ".join(parts)


class Event:
    class Valves(BaseModel):
        PREFIXES: str = Field(
            default="",
            title="Events to log",
            description="Comma-separated event name prefixes to log, e.g. 'auth.,user.'; empty logs every event.",
        )

    def __init__(self) -> None:
        self.valves = self.Valves()

    async def event(self, event: dict, __event_name__: str = "", __id__: str = "") -> None:
        # Open WebUI 0.12.4 (open_webui/events.py, dispatch_event_functions) calls this for every
        # server event while the function is active, with the stored valves loaded, passing only the
        # arguments named here: `event` (the payload dict: event, subject, actor, data, ...),
        # `__event_name__`, `__id__` (this function's id), `__event__`, `__event_id__`, `__app__`,
        # `__request__`. What it returns is ignored; an exception is logged by the server.
        name = __event_name__ or str(event.get("event", ""))
        if wanted(name, self.valves.PREFIXES):
            _LOG.info("%s saw %s", __id__ or "event function", summary(event))
