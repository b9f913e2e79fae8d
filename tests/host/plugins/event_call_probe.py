"""
title: Host Test Event Call Probe
author: Open WebUI Pack contributors
version: 0.1.0
description: Test-only pipe that sends raw __event_call__ requests and replies with the answers.
license: MIT
required_open_webui_version: 0.6.43
"""

# Test-only: the last user message is a JSON list of events ({"type", "data"}); each is sent with
# the host's own __event_call__ (no shared/events.py wrapper, no timeout of ours), and the reply is
# the JSON list of what came back. Proves the socket fixture's scripted answers and the server's
# WEBSOCKET_EVENT_CALLER_TIMEOUT.

import json


class Pipe:
    async def pipe(self, body: dict, __event_call__=None, __task__=None) -> str:
        if __task__:
            return ""
        events = json.loads(body["messages"][-1]["content"])
        answers = [await __event_call__(event) for event in events]
        return json.dumps(answers)
