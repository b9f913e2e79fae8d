"""
title: Template Manifold
author: Open WebUI Pack contributors
version: 0.1.0
description: A minimal manifold pipe that offers several models from one function.
license: MIT
required_open_webui_version: 0.6.43
"""

from pydantic import BaseModel, Field

from shared.events import send, status

MODELS = {"upper": "Upper case", "lower": "Lower case"}


def sub_model(model: str) -> str:
    # Open WebUI names sub-models "<function id>.<entry id>", whatever id the admin chose.
    return model.split(".", 1)[1] if "." in model else model


def transform(model: str, text: str) -> str:
    return text.upper() if model == "upper" else text.lower()


class Pipe:
    class Valves(BaseModel):
        NAME_PREFIX: str = Field(
            default="Template/", title="Model name prefix", description="Put before each model name in the model list."
        )

    def __init__(self) -> None:
        self.valves = self.Valves()

    def pipes(self) -> list[dict]:
        return [{"id": key, "name": f"{self.valves.NAME_PREFIX}{name}"} for key, name in MODELS.items()]

    async def pipe(self, body: dict, __event_emitter__=None, __task__=None) -> str:
        model = sub_model(body.get("model", ""))
        if model not in MODELS:
            raise ValueError(f"Unknown model {model!r}; this manifold offers {', '.join(MODELS)}.")
        messages = body.get("messages") or [{}]
        text = str(messages[-1].get("content", ""))
        if not __task__:
            await send(__event_emitter__, status(f"{MODELS[model]} done", done=True))
        return transform(model, text)
