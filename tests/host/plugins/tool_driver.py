"""
title: Host Test Tool Driver
author: Open WebUI Pack contributors
version: 0.1.0
description: Test-only pipe that plays the LLM in Open WebUI's native tool loop.
license: MIT
required_open_webui_version: 0.6.43
"""

# Test-only: installed by tests/host (OpenWebUI.run_tool), never shipped in dist/.
# The last user message is JSON {"name": tool function, "arguments": {...}}. The pipe streams one
# OpenAI `tool_calls` chunk for it; Open WebUI runs the tool and calls the pipe again with a
# `role: tool` message, whose content the pipe returns unchanged as the reply.

import json


def tool_results(messages: list[dict]) -> list[str] | None:
    """Contents of the tool messages after the last user message; None when there are none."""
    found: list[str] = []
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        if message.get("role") == "tool":
            found.append(message_text(message.get("content")))
    return list(reversed(found)) if found else None


def message_text(content: object) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def requested_call(messages: list[dict]) -> dict:
    for message in reversed(messages):
        if message.get("role") == "user":
            return json.loads(message_text(message.get("content")))
    raise ValueError("no user message")


class Pipe:
    async def pipe(self, body: dict, __task__=None):
        if __task__:
            return ""
        messages = body.get("messages") or []
        results = tool_results(messages)
        if results is not None:
            return "\n".join(results)
        call = requested_call(messages)
        offered = [t.get("function", {}).get("name") for t in body.get("tools") or []]
        if call["name"] not in offered:
            raise ValueError(f"tool {call['name']!r} was not offered; offered: {offered}")
        return self.calls(call)

    async def calls(self, call: dict):
        arguments = call.get("arguments", {})
        yield {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call.get("id", "call_host_1"),
                                "type": "function",
                                "function": {
                                    "name": call["name"],
                                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                                },
                            }
                        ],
                    },
                }
            ]
        }
        yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
