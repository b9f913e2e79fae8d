"""Scale-out tier: one Open WebUI with two uvicorn workers sharing a real Redis, on 127.0.0.1.

Run: `.venv/bin/python -m pytest tests/scaleout -q` (select or skip it with `-m scaleout` /
`-m "not scaleout"`). It runs on Open WebUI 0.12.4 only and needs Debian's `redis-server`
(tests/setup/redis.sh installs it). Without redis-server (or on another version) the tier's files
are not collected and the summary says why in one line; under CI=true a missing redis-server is a
failure instead.

The session starts its own `redis-server` (free port, bound to 127.0.0.1, no persistence), then
`open-webui serve` with UVICORN_WORKERS=2, REDIS_URL and WEBSOCKET_MANAGER=redis laid over the host
tier's environment (tests/host/_server.py): the same DATA_DIR, so both workers share the SQLite file
and the vector store, and the same WEBUI_SECRET_KEY, so a token from one worker is valid on the other.
In 0.12.4 (open_webui/socket/main.py) WEBSOCKET_MANAGER=redis makes python-socketio relay emits and
calls through Redis (WEBSOCKET_REDIS_URL defaults to REDIS_URL) and keeps the session and usage pools
in Redis; `open-webui serve` runs the database migrations once in the supervisor before uvicorn forks
the workers. Both are stopped by PID at the end.

The fixtures are the host tier's (tests/host/conftest.py: `owui`, `fake_openai`, `fake_embeddings`,
`socket`, `socket_for`, `NEVER`), with `owui` being this two-worker server, plus:

`workers` — `Workers`: PINNED_PER_WORKER kept-alive HTTP connections to each worker, told apart by a
  test-only action (tests/scaleout/plugins/worker_probe.py) that answers its process id and the
  Socket.IO sessions that process holds. `.pids` (the two pids), `.client(pid, index=0)` (an
  httpx.Client whose requests all reach that worker), `.probe(pid)` ({"pid", "sids"}),
  `.worker_of(socket)` (the pid holding that socket's session), `.other(pid)`,
  `.action(pid, action_id, body, token=...)` (POST /api/chat/actions/{id} on that worker),
  `.post_action(client, ...)`, `.socket_on(pid, user, connect)` (connects sockets with `connect`
  until one lands on that worker). After every test that used it, each pinned connection is asked
  its worker again, and the test fails if one moved.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket as socketlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.host import _server
from tests.host._server import OpenWebUI, Server, User, add_user, free_port, signup_admin
from tests.host._socket import SocketClient
from tests.host.conftest import (  # the host tier's fixtures, bound here to this tier's `owui`
    _isolate_fakes,
    fake_embeddings,
    fake_openai,
    never_fixture,
    socket,
    socket_for,
)
from tests.host.versions import OWUI_VERSION_TEXT

__all__ = ["_isolate_fakes", "fake_embeddings", "fake_openai", "never_fixture", "socket", "socket_for"]

TIER_DIR = Path(__file__).resolve().parent
PROBE_ID = "scaleout_worker_probe"
WORKERS = 2
# Two workers each import and start all of Open WebUI after the supervisor ran the migrations: on a
# loaded 2-core machine that takes well over the host tier's 180 s.
READY_TIMEOUT = max(_server.READY_TIMEOUT, 420)
PINNED_PER_WORKER = 10  # enough for 20 concurrent requests, half on each worker
TIER_VERSION = "0.12.4"
LOG_TAIL_LINES = 80
_STATE: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scaleout: runs against Open WebUI 0.12.4 with two uvicorn workers and a real redis-server (tests/scaleout)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if TIER_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.scaleout)


def _why_unavailable() -> str | None:
    if OWUI_VERSION_TEXT != TIER_VERSION:
        return f"it runs on Open WebUI {TIER_VERSION} only (this venv has {OWUI_VERSION_TEXT})"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (tests/setup/redis.sh installs it)"
    return None


_UNAVAILABLE = _why_unavailable()
_UNDER_CI = os.environ.get("CI", "").lower() == "true"
# Where the tier cannot run it is not collected, and the summary says why in one line; under CI a
# missing redis-server is a failure instead (the `redis_server` fixture fails every test).
_SKIPPED = _UNAVAILABLE if _UNAVAILABLE and not (_UNDER_CI and OWUI_VERSION_TEXT == TIER_VERSION) else None
collect_ignore_glob = ["test_*.py"] if _SKIPPED else []


class RedisServer:
    """A throwaway `redis-server` on 127.0.0.1: own process group, no persistence, stopped by PID."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.log_path = workdir / "redis.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.log_path.read_text()}")
            if self.ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {timeout:.0f}s")

    def ping(self) -> bool:
        try:
            with socketlib.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if _UNAVAILABLE:
        pytest.fail(f"the scale-out tier cannot run under CI: {_UNAVAILABLE}", pytrace=False)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _wait_for_workers(server: Server, count: int, timeout: float = READY_TIMEOUT) -> None:
    """Waits until `count` workers were forked (the first one to finish its startup answers /ready
    alone; `Workers.discover` then waits until both accept requests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server.log_path.read_text(encoding="utf-8", errors="replace")
        if text.count("Started server process") >= count:
            return
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"open-webui exited before its workers started; log {server.log_path}")
        time.sleep(0.2)
    raise RuntimeError(f"{count} workers did not start within {timeout:.0f}s; log {server.log_path}")


@pytest.fixture(scope="session")
def owui(
    redis_server: RedisServer, fake_openai, fake_embeddings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenWebUI]:
    workdir = tmp_path_factory.mktemp("owui-scaleout")
    extra = {"UVICORN_WORKERS": str(WORKERS), "REDIS_URL": redis_server.url, "WEBSOCKET_MANAGER": "redis"}
    server = Server(workdir, fake_openai.url, fake_embeddings.url, extra_env=extra)
    _STATE["server"] = server
    _STATE["started"] = time.monotonic()
    try:
        host_timeout, _server.READY_TIMEOUT = _server.READY_TIMEOUT, READY_TIMEOUT
        try:
            server.start()
        finally:
            _server.READY_TIMEOUT = host_timeout
        _wait_for_workers(server, WORKERS)
        admin = signup_admin(server.url)
        user = add_user(server.url, admin)
        deploy_root = workdir / "deploy"
        deploy_root.mkdir()
        host = OpenWebUI(server, admin, user, deploy_root)
        try:
            yield host
        finally:
            host.close()
    finally:
        server.stop()
        shutil.rmtree(workdir / "data", ignore_errors=True)


class _Pinned:
    """One keep-alive HTTP connection and the worker that accepted it.

    A connection keeps reaching the worker that accepted it while it stays open; uvicorn closes one
    idle for 5 s, so a thread sends GET /health on it every 2 s.
    """

    def __init__(self, url: str, pid: int, client: httpx.Client) -> None:
        self.url = url
        self.pid = pid
        self.client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_alive, name=f"keep-alive-{pid}", daemon=True)
        self._thread.start()

    def _keep_alive(self) -> None:
        while not self._stop.wait(2):
            with contextlib.suppress(httpx.HTTPError):
                self.client.get("/health", timeout=httpx.Timeout(10, pool=None))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self.client.close()


class Workers:
    """HTTP connections pinned to each worker (see the module docstring)."""

    def __init__(self, owui: OpenWebUI) -> None:
        self._owui = owui
        self._headers = {"Authorization": f"Bearer {owui.admin.token}"}
        self.pool: dict[int, list[_Pinned]] = {}
        self.pids: list[int] = []

    def _probe_on(self, client: httpx.Client) -> dict:
        body = {"model": "fake-gpt", "messages": [], "chat_id": None, "id": None, "session_id": None}
        response = client.post(f"/api/chat/actions/{PROBE_ID}", json=body, headers=self._headers)
        if not response.is_success:
            raise AssertionError(f"the worker probe failed: {response.status_code} {response.text[:500]}")
        return response.json()

    def fill(self, per_worker: int, timeout: float = READY_TIMEOUT) -> None:
        """Opens connections until `per_worker` of them reached each worker (a worker accepts
        connections once its own startup is done; which idle worker accepts one is up to the kernel)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            client = httpx.Client(base_url=self._owui.url, timeout=120, limits=httpx.Limits(max_connections=1))
            pid = self._probe_on(client)["pid"]
            pinned = self.pool.setdefault(pid, [])
            if len(pinned) < per_worker:
                pinned.append(_Pinned(self._owui.url, pid, client))
            else:
                client.close()
            if len(self.pool) == WORKERS and all(len(p) >= per_worker for p in self.pool.values()):
                self.pids = sorted(self.pool)
                return
        found = {pid: len(p) for pid, p in self.pool.items()}
        raise AssertionError(f"within {timeout:.0f} s new connections reached the workers {found} times")

    def client(self, pid: int, index: int = 0) -> httpx.Client:
        """A keep-alive connection to worker `pid` (one of the pinned ones)."""
        pinned = self.pool[pid]
        return pinned[index % len(pinned)].client

    def still_pinned(self) -> dict[int, list[int]]:
        """Each pinned connection's worker, asked now: {pid it was pinned to: [pids reached]}."""
        return {pid: [self._probe_on(p.client)["pid"] for p in pinned] for pid, pinned in self.pool.items()}

    def other(self, pid: int) -> int:
        return next(p for p in self.pids if p != pid)

    def post_action(
        self, client: httpx.Client, action_id: str, body: dict, *, token: User | None = None, timeout: float = 60
    ) -> Any:
        payload = {"chat_id": None, "id": None, "session_id": None, **body}
        headers = {"Authorization": f"Bearer {(token or self._owui.admin).token}"}
        response = client.post(f"/api/chat/actions/{action_id}", json=payload, headers=headers, timeout=timeout)
        if not response.is_success:
            raise AssertionError(f"action {action_id} -> {response.status_code}: {response.text[:2000]}")
        return response.json()

    def action(self, pid: int, action_id: str, body: dict, *, token: User | None = None, timeout: float = 60) -> Any:
        """POST /api/chat/actions/{action_id}, handled by worker `pid`."""
        return self.post_action(self.client(pid), action_id, body, token=token, timeout=timeout)

    def probe(self, pid: int) -> dict:
        """{"pid", "sids"} of worker `pid`: the Socket.IO sessions it holds itself."""
        answer = self._probe_on(self.client(pid))
        if answer["pid"] != pid:
            raise AssertionError(f"a connection pinned to worker {pid} reached worker {answer['pid']}")
        return answer

    def worker_of(self, client: SocketClient) -> int:
        holders = [pid for pid in self.pids if client.sid in self.probe(pid)["sids"]]
        if len(holders) != 1:
            raise AssertionError(f"socket {client.sid} is held by {holders}, expected exactly one worker")
        return holders[0]

    def socket_on(self, pid: int, user: User, connect: Callable[[User], SocketClient], tries: int = 60) -> SocketClient:
        """A connected socket of `user` whose session worker `pid` holds (connects until one lands there)."""
        for _ in range(tries):
            client = connect(user)
            if self.worker_of(client) == pid:
                return client
            client.disconnect()
        raise AssertionError(f"no socket landed on worker {pid} in {tries} connections")

    def close(self) -> None:
        for pinned in self.pool.values():
            for p in pinned:
                p.close()
        self.pool.clear()


@pytest.fixture(scope="session")
def workers(owui: OpenWebUI) -> Iterator[Workers]:
    owui.install(PROBE_ID, (TIER_DIR / "plugins" / "worker_probe.py").read_text(encoding="utf-8"))
    found = Workers(owui)
    try:
        found.fill(PINNED_PER_WORKER)
        _STATE["ready_seconds"] = time.monotonic() - _STATE["started"]
        yield found
    finally:
        found.close()


@pytest.fixture(autouse=True)
def _connections_stayed_pinned(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that chose workers also proves its requests reached them: no pinned connection moved."""
    yield
    if "workers" in request.fixturenames:
        found: Workers = request.getfixturevalue("workers")
        moved = {pid: reached for pid, reached in found.still_pinned().items() if set(reached) != {pid}}
        assert not moved, f"pinned connections reached other workers: {moved}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    server = _STATE.get("server")
    if report.failed and isinstance(server, Server) and "owui" in getattr(item, "fixturenames", ()):
        report.sections.append(
            (f"open-webui log (last {LOG_TAIL_LINES} lines of {server.log_path})", server.log_tail(LOG_TAIL_LINES))
        )
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _SKIPPED:
        terminalreporter.write_line(f"scale-out tier skipped: {_SKIPPED}")
        return
    ready = _STATE.get("ready_seconds")
    if isinstance(ready, float):
        server = _STATE["server"]
        terminalreporter.write_line(
            f"open-webui {OWUI_VERSION_TEXT} scale-out ({WORKERS} workers + redis): both workers ready in "
            f"{ready:.1f} s; log {server.log_path}"
        )
