"""Start and stop a real `hayhooks run` for the Hayhooks tier and the bench (see conftest.py).

Hayhooks lives in its own venv (.venv-hayhooks, made by tests/setup/hayhooks.sh): its fastapi,
starlette and openai pins differ from Open WebUI's, so the tier drives it as a subprocess and never
imports it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from buildlib.assemble import build_plugin, discover

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("HAYHOOKS_VENV", ROOT / ".venv-hayhooks"))
HAYHOOKS_EXE = VENV / "bin" / "hayhooks"
WRAPPER_FILE = "pipeline_wrapper.py"
READY_TIMEOUT = float(os.environ.get("HAYHOOKS_READY_TIMEOUT", "120"))
# the model every wrapper asks the fake OpenAI server for (HAYHOOKS_PACK_MODEL)
PACK_MODEL = "pack-llm"
# uvicorn's access log line for one chat call, as `hayhooks run` writes it
CHAT_POST = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" \d{3}')


@dataclass
class BuiltWrappers:
    """What `build_wrappers` wrote: model name -> manifest id, and the sources that did not build."""

    folder: Path
    ids: dict[str, str] = field(default_factory=dict)  # model id (folder) -> plugin id
    failed: dict[str, str] = field(default_factory=dict)  # plugin id -> build error


def is_wrapper(kind_name: str) -> bool:
    """Whether a manifest kind is served by Hayhooks (buildlib/kinds.py: host HAYHOOKS)."""
    from buildlib.kinds import BY_NAME

    row = BY_NAME.get(kind_name)
    return row is not None and row.host == "hayhooks"


def build_wrappers(folder: Path, *, only: set[str] | None = None) -> BuiltWrappers:
    """Build the Hayhooks wrappers (the template too) from the CURRENT sources into `folder`.

    Each goes to `folder/<id>/pipeline_wrapper.py`, so `folder` is a `--pipelines-dir` and the plugin
    id is the model id (for the pack's wrappers the id is also their dist/hayhooks/<id>/ folder). A
    wrapper source that does not build (someone's half-written file) is left out and its error kept in
    `.failed`, so the other wrappers still run.
    """
    from buildlib import BuildError

    built = BuiltWrappers(folder)
    cache: dict = {}
    folder.mkdir(parents=True, exist_ok=True)
    for source_folder, source in discover(ROOT):
        try:
            plugin = build_plugin(ROOT, source_folder, source, cache)
        except BuildError as exc:
            if "hayhooks" in str(source):
                built.failed[Path(source).stem] = str(exc)
            continue
        if not is_wrapper(plugin.kind) or (only is not None and plugin.id not in only):
            continue
        target = folder / plugin.id / WRAPPER_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(plugin.text, encoding="utf-8")
        built.ids[plugin.id] = plugin.id
    return built


def hayhooks_env(openai_url: str, *, model: str = PACK_MODEL, timeout: float = 20.0) -> dict[str, str]:
    """The environment a pack wrapper reads: the LLM's base URL, key, model and timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HAYHOOKS_", "HAYSTACK_"))}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    env.update(
        {
            "OPENAI_API_KEY": "sk-fake-openai",
            "OPENAI_BASE_URL": openai_url,
            "HAYHOOKS_PACK_MODEL": model,
            "HAYHOOKS_PACK_TIMEOUT": str(timeout),
            # Haystack's telemetry would try to reach posthog
            "HAYSTACK_TELEMETRY_ENABLED": "False",
            # Hayhooks 2.1.0's default "parallel" start-up deploy imports the wrappers in threads while
            # another thread iterates sys.modules (server/utils/module_loader.py, pipeline_modules):
            # now and then a wrapper fails with "dictionary changed size during iteration" and is
            # left out. One at a time is reliable.
            "HAYHOOKS_STARTUP_DEPLOY_STRATEGY": "sequential",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class HayhooksServer:
    """`hayhooks run --host 127.0.0.1 --port P --pipelines-dir DIR`: own process group, stopped by PID."""

    def __init__(self, workdir: Path, pipelines_dir: Path, env: dict[str, str], port: int | None = None) -> None:
        from tests.host._server import free_port

        self.workdir = workdir
        self.pipelines_dir = pipelines_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "hayhooks.log"
        self.env = env
        self.process: subprocess.Popen | None = None
        self.ready_seconds: float | None = None

    def start(self, expect: tuple[str, ...] = ()) -> HayhooksServer:
        """Start and wait until /status answers and lists `expect` (the wrappers that must load)."""
        if not HAYHOOKS_EXE.exists():
            raise RuntimeError(f"{HAYHOOKS_EXE} not found: run tests/setup/hayhooks.sh")
        started = time.monotonic()
        command = [
            str(VENV / "bin" / "python"),
            str(HAYHOOKS_EXE),
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--pipelines-dir",
            str(self.pipelines_dir),
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self.stop)
        self._wait_ready(started, expect)
        return self

    def _wait_ready(self, started: float, expect: tuple[str, ...]) -> None:
        deadline = started + READY_TIMEOUT
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"hayhooks exited with {self.process.returncode} before it was ready; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    response = client.get(f"{self.url}/status")
                    if response.status_code == 200:
                        listed = set(response.json().get("pipelines") or ())
                        if set(expect) <= listed:
                            self.ready_seconds = time.monotonic() - started
                            return
                        if "Application startup complete" in self.log_text():
                            missing = ", ".join(sorted(set(expect) - listed))
                            self.stop()
                            raise RuntimeError(
                                f"hayhooks started without {missing}; log {self.log_path}:\n{self.log_tail()}"
                            )
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"hayhooks not ready after {READY_TIMEOUT:.0f}s; log {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        pid = process.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)  # its own session: the group id is its PID
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            process.wait(timeout=10)

    def rss_mib(self) -> float | None:
        if self.process is None:
            return None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no log)"

    def chat_posts(self) -> int:
        """How many chat completion calls the server has answered so far (from its access log)."""
        return len(CHAT_POST.findall(self.log_text()))

    def models(self) -> list[str]:
        response = httpx.get(f"{self.url}/v1/models", timeout=10)
        response.raise_for_status()
        return [m["id"] for m in response.json()["data"]]


def stream_chat(url: str, model: str, messages: list[dict] | str, *, timeout: float = 60, **body) -> list[dict]:
    """POST {url}/v1/chat/completions with stream true; the parsed `data:` objects, in order.

    Hayhooks ends a stream with a `finish_reason` chunk and no `[DONE]` line.
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    payload = {"model": model, "messages": messages, "stream": True, **body}
    out: list[dict] = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=payload, timeout=timeout) as response:
        if response.status_code != 200:
            response.read()
            raise AssertionError(f"{model} -> {response.status_code}: {response.text[:2000]}")
        for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                out.append(json.loads(line[5:]))
    return out


def text_and_events(items: list[dict]) -> tuple[str, list[dict]]:
    """The reply text of a Hayhooks stream and the Open WebUI events it carried (`{"type", "data"}`)."""
    text, events = [], []
    for item in items:
        if "event" in item:
            events.append(item["event"])
            continue
        for choice in item.get("choices") or []:
            text.append(str((choice.get("delta") or {}).get("content") or ""))
    return "".join(text), events


# --- driving a chat through Open WebUI like the UI ---------------------------------------------------


@dataclass
class UITurn:
    """One UI-like chat turn through Open WebUI -> Hayhooks (see `ui_turn`)."""

    completion: dict  # the final `chat:completion` data (content, output)
    events: list[dict]  # the `{"type", "data"}` events about this message, in arrival order (no completions)
    wrapper_calls: int  # chat calls Hayhooks answered during the turn
    llm_requests: list[dict]  # the bodies the fake LLM got during the turn

    @property
    def content(self) -> str:
        return str(self.completion.get("content") or "")

    def of_type(self, kind: str) -> list:
        return [e.get("data") for e in self.events if e.get("type") == kind]

    def statuses(self) -> list[tuple[str, bool]]:
        """(description, done) of each status; Open WebUI's own retrieval statuses show as `<action>`."""
        return [
            (str(d.get("description") or f"<{d.get('action')}>"), bool(d.get("done"))) for d in self.of_type("status")
        ]


def ui_turn(owui, hayhooks: HayhooksServer, fake_openai, socket, model: str, messages, **body) -> UITurn:
    """`owui.chat_background` (session id, `local:` chat id, message id, stream) plus what it caused."""
    posts, seen = hayhooks.chat_posts(), len(fake_openai.chat_requests())
    socket.clear()
    completion = owui.chat_background(model, messages, socket, **body)
    message_id = next(
        (e.get("message_id") for e in reversed(socket.events) if e["data"].get("type") == "chat:completion"), None
    )
    events = [
        e["data"]
        for e in list(socket.events)
        if e.get("message_id") == message_id and e["data"].get("type") != "chat:completion"
    ]
    wait_until(lambda: hayhooks.chat_posts() > posts, 5)  # the access log line follows the response
    return UITurn(completion, events, hayhooks.chat_posts() - posts, fake_openai.chat_requests()[seen:])


def wait_until(check, timeout: float = 20.0):
    """Poll `check()` until it returns something truthy or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def saved_chat_turn(owui, socket, model: str, text: str, timeout: float = 60) -> tuple[dict, dict]:
    """A saved chat (POST /api/v1/chats/new), answered as the UI asks; (final completion, stored message)."""
    import uuid

    from tests.host import versions

    user_id, reply_id = str(uuid.uuid4()), str(uuid.uuid4())
    user = {"id": user_id, "parentId": None, "childrenIds": [reply_id], "role": "user", "content": text}
    reply = {"id": reply_id, "parentId": user_id, "childrenIds": [], "role": "assistant", "content": "",
             "model": model}  # fmt: skip
    chat = owui.ok("POST", "/api/v1/chats/new", json={"chat": {
        "title": "New Chat", "models": [model], "history": {"messages": {user_id: user, reply_id: reply},
        "currentId": reply_id}, "messages": [user, reply]}})  # fmt: skip
    try:
        response = owui.api("POST", "/api/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": text}], "stream": True,
            "session_id": socket.sid, "chat_id": chat["id"], "id": reply_id, "parent_id": user_id,
            "user_message": user, "parent_message": user})  # fmt: skip
        assert response.status_code == 200, response.text
        completion = versions.normalise_completion(socket.wait_done(timeout, message_id=reply_id))

        def stored() -> dict | None:
            message = owui.ok("GET", f"/api/v1/chats/{chat['id']}")["chat"]["history"]["messages"][reply_id]
            return message if message.get("done") is not False and (message.get("content") or "").strip() else None

        message = (
            wait_until(stored, 10)
            or owui.ok("GET", f"/api/v1/chats/{chat['id']}")["chat"]["history"]["messages"][reply_id]
        )
        return completion, message
    finally:
        owui.ok("DELETE", f"/api/v1/chats/{chat['id']}")
