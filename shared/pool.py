"""A small, bounded thread pool for blocking calls that must be over by a deadline.

Plugins that drive a synchronous library (requests, an SDK) run it here rather than on asyncio's
default executor (`asyncio.to_thread`, `loop.run_in_executor(None, ...)`). Open WebUI runs its own
blocking work on that executor (0.12.4: `Storage.get_file` for attached images in
open_webui/utils/files.py, password hashing in open_webui/utils/auth.py, URL checks before web
fetches), and it has only min(32, CPUs + 4) threads: a plugin call stuck on a dead network there
stalls other users' chats. Here a stuck call holds one of the plugin's own few threads.

- At most `workers` calls run at once and at most `queue` more wait; past that `submit` raises
  `PoolFull` at once (the caller answers "busy" instead of queueing without end).
- Every call has a `Deadline` on the pool's `clock`. A call still waiting for a thread when its
  deadline passes never starts (`DeadlinePassed`); one that starts gets the deadline as its first
  argument, to give its own I/O timeouts what is left, so its thread is free soon after the caller
  stopped waiting.
- Make one pool per plugin module (module level): Open WebUI loads a plugin's module once per
  worker process and every user's call goes through that module.
The clock is a parameter, so tests move time by hand.
"""

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any


class PoolFull(Exception):
    """Every thread of the pool is busy and its queue is full: the call was not queued."""

    def __init__(self, name: str, workers: int, queue: int) -> None:
        super().__init__(f"{name}: {workers} calls running and {queue} waiting")
        self.workers = workers
        self.queue = queue


class DeadlinePassed(TimeoutError):
    """The call waited for a thread until its deadline had passed, and so never started."""

    def __init__(self, name: str, workers: int) -> None:
        super().__init__(f"{name}: none of the {workers} threads was free before the deadline")
        self.workers = workers


class Deadline:
    """A point in time on `clock` by which a call must be over."""

    __slots__ = ("at", "clock")

    def __init__(self, at: float, clock: Callable[[], float]) -> None:
        self.at = at
        self.clock = clock

    def remaining(self) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.at - self.clock())

    def passed(self) -> bool:
        return self.clock() >= self.at


class DeadlinePool:
    """`workers` threads named `name`-N (started on first use), `queue` waiting calls at most."""

    def __init__(
        self, name: str, *, workers: int = 3, queue: int = 8, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.workers = workers
        self.queue = queue
        self.clock = clock
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending = 0  # submitted and not yet over (waiting or running)
        self._running = 0
        self._started = 0
        self._expired = 0  # never started: the deadline passed while waiting
        self._refused = 0

    def deadline(self, seconds: float) -> Deadline:
        return Deadline(self.clock() + seconds, self.clock)

    def stats(self) -> dict[str, int]:
        """What the pool is doing now (`running`, `waiting`) and has done (`started`, `expired`, `refused`)."""
        with self._lock:
            return {
                "workers": self.workers,
                "queue": self.queue,
                "running": self._running,
                "waiting": self._pending - self._running,
                "started": self._started,
                "expired": self._expired,
                "refused": self._refused,
            }

    def submit(self, deadline: Deadline, fn: Callable[..., Any], *args: Any) -> "concurrent.futures.Future[Any]":
        """Queue `fn(deadline, *args)`; `PoolFull` when `workers + queue` calls are already pending."""
        with self._lock:
            if self._pending >= self.workers + self.queue:
                self._refused += 1
                raise PoolFull(self.name, self.workers, self.queue)
            self._pending += 1
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
            executor = self._executor
        try:
            future = executor.submit(self._call, deadline, fn, args)
        except BaseException:
            self._finished(None)
            raise
        # runs when the call is over and when a waiting call is cancelled (it then never starts)
        future.add_done_callback(self._finished)
        return future

    async def run(self, deadline: Deadline, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(deadline, *args)` on a pool thread, awaited until `deadline` at most.

        Raises `PoolFull` at once when the pool is full, `DeadlinePassed` when the call never got
        a thread in time, `TimeoutError` when it started but was not over by the deadline (it then
        ends on its own I/O timeouts; nothing waits for it).
        """
        future = self.submit(deadline, fn, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), deadline.remaining())
        except TimeoutError:
            if self._cancel(future):
                raise DeadlinePassed(self.name, self.workers) from None
            raise
        finally:
            # cancelled from outside (the chat was stopped): a call still waiting never starts
            self._cancel(future)

    def _cancel(self, future: "concurrent.futures.Future[Any]") -> bool:
        """Cancel a call that is still waiting; True when it never started."""
        return future.cancel() or future.cancelled()

    def _call(self, deadline: Deadline, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if deadline.passed():
            with self._lock:
                self._expired += 1
            raise DeadlinePassed(self.name, self.workers)
        with self._lock:
            self._running += 1
            self._started += 1
        try:
            return fn(deadline, *args)
        finally:
            with self._lock:
                self._running -= 1

    def _finished(self, future: "concurrent.futures.Future[Any] | None") -> None:
        with self._lock:
            self._pending -= 1
            if future is not None and future.cancelled():
                self._expired += 1
