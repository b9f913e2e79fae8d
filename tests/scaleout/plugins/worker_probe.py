"""
title: Worker probe (test-only)
version: 0.1.0
"""

# Installed by tests/scaleout: tells which Open WebUI worker process ran the request and which
# Socket.IO sessions that worker holds itself. With WEBSOCKET_MANAGER=redis, python-socketio keeps
# each worker's own connections in its manager's rooms (namespace "/", room None); emits for a session
# held by another worker go through Redis.

import os


class Action:
    async def action(self, body: dict, __user__: dict | None = None) -> dict:
        from open_webui.socket.main import sio

        local = sio.manager.rooms.get("/", {}).get(None, {})
        return {"pid": os.getpid(), "sids": sorted(local.keys())}
