"""
title: Template Tool
author: Open WebUI Pack contributors
version: 0.1.0
description: A minimal tool the model can call; every public method is a tool.
license: MIT
required_open_webui_version: 0.6.43
"""

from pydantic import BaseModel, Field

from shared.events import send, status


def count(text: str, unique: bool) -> int:
    words = text.split()
    return len({w.lower() for w in words}) if unique else len(words)


class Tools:
    class Valves(BaseModel):
        MAX_CHARS: int = Field(
            default=100_000, title="Longest text (characters)", ge=1, description="Longer texts are refused."
        )

    def __init__(self) -> None:
        self.valves = self.Valves()

    async def count_words(self, text: str, unique: bool = False, __event_emitter__=None) -> str:
        """
        Count the words in a text.
        :param text: The text to count.
        :param unique: Count each distinct word once.
        """
        if len(text) > self.valves.MAX_CHARS:
            return f"The text is longer than {self.valves.MAX_CHARS} characters; send a shorter one."
        n = count(text, unique)
        await send(__event_emitter__, status(f"Counted {n} words", done=True))
        return f"{n} {'distinct ' if unique else ''}words"
