"""A python-socketio client for host tests: records `events`, answers `__event_call__` from a script.

The client runs its own asyncio loop in a daemon thread, so sync tests use it directly. Open WebUI
sends both plain events (`__event_emitter__`) and calls (`__event_call__`, a Socket.IO call that waits
for the acknowledgement) as the Socket.IO event `events` with payload
`{"chat_id", "message_id", "data": {"type", "data"}}`; a call's acknowledgement value is what the
plugin's `await __event_call__(...)` returns (the same in Open WebUI 0.6.43 to 0.12.4,
open_webui/socket/main.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import socketio
from socketio import packet


class _Never:
    """Answer sentinel: never acknowledge the call (the server then times out)."""

    _instance: _Never | None = None

    def __new__(cls) -> _Never:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEVER"


NEVER = _Never()


@dataclass(frozen=True)
class Late:
    """Answer `value` after `seconds` (e.g. just before or after the server's call timeout)."""

    seconds: float
    value: Any


@dataclass
class Call:
    """One `__event_call__` the client received and what it answered (NEVER while unanswered)."""

    type: str
    data: dict
    answer: Any
    payload: dict


class _Client(socketio.AsyncClient):
    """AsyncClient whose `events` handling never blocks the read loop.

    python-socketio awaits a handler inline and acknowledges with its return value; a handler that
    waited forever (NEVER) would stop every later event. So the ack is sent here, or not at all.
    """

    def __init__(self, owner: SocketClient) -> None:
        super().__init__(reconnection=False)
        self._owner = owner

    async def _handle_event(self, namespace, id, data):  # type: ignore[override]
        if not data or data[0] != "events" or len(data) < 2:
            return await super()._handle_event(namespace, id, data)
        answer = self._owner._record(data[1], expects_answer=id is not None)
        if id is None or answer is NEVER:
            return None
        if isinstance(answer, Late):
            asyncio.get_running_loop().create_task(self._ack_later(namespace or "/", id, answer))
            return None
        await self._ack(namespace or "/", id, answer)
        return None

    async def _ack_later(self, namespace: str, id: int, late: Late) -> None:
        await asyncio.sleep(late.seconds)
        if self.connected:
            await self._ack(namespace, id, late.value)

    async def _ack(self, namespace: str, id: int, answer: Any) -> None:
        await self._send_packet(
            self.packet_class(packet.ACK, namespace=namespace, id=id, data=[] if answer is None else [answer])
        )


class SocketClient:
    """See tests/host/conftest.py for the documented interface."""

    CALL_TYPES = ("confirmation", "input", "execute")

    def __init__(self, url: str, token: str, *, name: str = "socket") -> None:
        self.url = url
        self.token = token
        self.name = name
        self.events: list[dict] = []  # raw payloads {"chat_id", "message_id", "data": {"type", "data"}}
        self.calls: list[Call] = []
        self._script: dict[str, list[Any]] = {}
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"sio-{name}", daemon=True)
        self._thread.start()
        self._sio = _Client(self)
        self.sid: str | None = None

    # --- lifecycle -------------------------------------------------------------

    def _run(self, coro, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def connect(self, timeout: float = 20) -> SocketClient:
        self._run(
            self._sio.connect(
                self.url,
                socketio_path="/ws/socket.io",
                transports=["websocket"],
                auth={"token": self.token},
                wait_timeout=timeout,
            ),
            timeout + 5,
        )
        self.sid = self._sio.get_sid()
        if not self.sid:
            raise RuntimeError(f"{self.name}: connected without a session id")
        return self

    @property
    def connected(self) -> bool:
        return self._sio.connected

    def disconnect(self) -> None:
        try:
            if self._sio.connected:
                self._run(self._sio.disconnect(), 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def emit(self, event: str, data: Any = None) -> None:
        """Send a Socket.IO event to the server (e.g. `heartbeat`)."""
        self._run(self._sio.emit(event, data))

    # --- scripted answers -----------------------------------------------------

    def answer(self, type: str, *values: Any) -> None:
        """Script the answers to `type` calls ("confirmation", "input", "execute", or any call type).

        Values are used in order, the last one for every later call. A value may be NEVER (never
        answer), Late(seconds, value), a function of the event's `data` dict returning the answer,
        or the answer itself (True/False for confirmation, a string for input, any JSON for execute).
        Without a script a call is answered with None at once (what a client without a handler does).
        """
        if not values:
            raise TypeError("answer() needs at least one value")
        with self._cond:
            self._script[type] = list(values)

    def _next_answer(self, type: str, data: dict) -> Any:
        with self._cond:
            queue = self._script.get(type)
            if not queue:
                return None
            value = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(value) and not isinstance(value, _Never | Late):
            return value(data)
        return value

    def _record(self, payload: Any, *, expects_answer: bool) -> Any:
        payload = payload if isinstance(payload, dict) else {"data": payload}
        event = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        answer = None
        if expects_answer:
            kind = str(event.get("type"))
            data = event.get("data") if isinstance(event.get("data"), dict) else {}
            answer = self._next_answer(kind, data)
            call = Call(kind, data, answer.value if isinstance(answer, Late) else answer, payload)
        with self._cond:
            self.events.append(payload)
            if expects_answer:
                self.calls.append(call)
            self._cond.notify_all()
        return answer

    # --- reading what arrived --------------------------------------------------

    def of_type(self, type: str) -> list[dict]:
        """The `data` of every recorded event of this type, in order."""
        with self._cond:
            return [e["data"].get("data") for e in self.events if _type_of(e) == type]

    def types(self) -> list[str]:
        with self._cond:
            return [_type_of(e) for e in self.events]

    def clear(self) -> None:
        with self._cond:
            self.events.clear()
            self.calls.clear()

    def wait_for(
        self,
        type: str,
        timeout: float = 10,
        *,
        where: Callable[[Any], bool] | None = None,
        count: int = 1,
        message_id: str | None = None,
    ) -> Any:
        """Block until `count` events of `type` (whose data satisfies `where`) have arrived.

        `message_id` narrows to events about that message. Returns the data of the `count`-th match;
        raises AssertionError listing the types seen on timeout.
        """
        deadline = time.monotonic() + timeout

        def matches() -> list[Any]:
            return [
                e["data"].get("data")
                for e in self.events
                if _type_of(e) == type
                and (message_id is None or e.get("message_id") == message_id)
                and (where is None or where(e["data"].get("data")))
            ]

        with self._cond:
            while True:
                found = matches()
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [_type_of(e) for e in self.events]
                    raise AssertionError(
                        f"{self.name}: no {count}x {type!r} event within {timeout}s; saw {seen} "
                        f"(matching data: {found!r})"
                    )
                self._cond.wait(left)

    def wait_done(self, timeout: float = 60, *, message_id: str | None = None) -> dict:
        """Wait for the final `chat:completion` (done: true) of a background request; returns its data."""
        return self.wait_for(
            "chat:completion",
            timeout,
            where=lambda d: isinstance(d, dict) and bool(d.get("done")),
            message_id=message_id,
        )


def _type_of(payload: dict) -> str:
    data = payload.get("data")
    return str(data.get("type")) if isinstance(data, dict) else ""
