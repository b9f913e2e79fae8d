"""Start, drive and stop one real Open WebUI for the host tier (see conftest.py for the interface).

The version is the one installed in the running venv; where driving it differs by version, the
harness asks tests/host/versions.py.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import socket as socketlib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from buildlib import MANIFEST
from buildlib.assemble import build_plugin, discover, manifest_entry
from buildlib.kinds import plugin_id
from tests.host import versions

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "Admin-Passw0rd!"  # test-only accounts on a throwaway loopback server
USER_PASSWORD = "User-Passw0rd!"
READY_TIMEOUT = float(os.environ.get("OWUI_READY_TIMEOUT", "180"))
# what the server waits for an unanswered __event_call__: the setting below, or 60 s on 0.6.43
EVENT_CALL_TIMEOUT = versions.event_call_timeout(10)
HOST_PLUGINS = Path(__file__).resolve().parent / "plugins"
DRIVER_ID = "host_tool_driver"


@dataclass
class User:
    name: str
    email: str
    id: str
    token: str
    role: str

    def __repr__(self) -> str:  # never show the token in assertion output
        return f"User({self.email!r}, role={self.role!r}, id={self.id!r})"


def free_port() -> int:
    with socketlib.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(workdir: Path, port: int, openai_url: str, embeddings_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OLLAMA_", "RAG_", "WEBUI_"))}
    env.update(
        {
            "DATA_DIR": str(workdir / "data"),
            "STATIC_DIR": str(workdir / "static"),
            "WEBUI_SECRET_KEY": secrets.token_hex(32),
            "OFFLINE_MODE": "true",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "ENABLE_VERSION_UPDATE_CHECK": "false",
            "ANONYMIZED_TELEMETRY": "false",
            "DO_NOT_TRACK": "true",
            "SCARF_NO_ANALYTICS": "true",
            "WEBUI_AUTH": "true",
            "ENABLE_SIGNUP": "true",
            "ENABLE_OLLAMA_API": "false",
            "ENABLE_OPENAI_API": "true",
            "OPENAI_API_BASE_URLS": openai_url,
            "OPENAI_API_KEYS": "sk-fake-openai",
            "RAG_EMBEDDING_ENGINE": "openai",
            "RAG_EMBEDDING_MODEL": "fake-embed",
            "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "false",
            "RAG_RERANKING_MODEL_AUTO_UPDATE": "false",
            "RAG_OPENAI_API_BASE_URL": embeddings_url,
            "RAG_OPENAI_API_KEY": "sk-fake-embeddings",
            "CORS_ALLOW_ORIGIN": f"http://127.0.0.1:{port}",
            "WEBSOCKET_EVENT_CALLER_TIMEOUT": str(EVENT_CALL_TIMEOUT),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "GLOBAL_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "PORT": str(port),
        }
    )
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    return env


class Server:
    """The `open-webui serve` process: started in its own process group, stopped by PID."""

    def __init__(
        self, workdir: Path, openai_url: str, embeddings_url: str, extra_env: dict[str, str] | None = None
    ) -> None:
        """`extra_env` is laid over the tier's environment: other tiers (Hayhooks as the OpenAI
        connection, several workers with Redis) start the same server with a few settings changed."""
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.env = server_env(workdir, self.port, openai_url, embeddings_url)
        self.env.update(extra_env or {})
        self.process: subprocess.Popen | None = None
        self.ready_seconds: float | None = None

    def start(self) -> None:
        exe = Path(sys.executable).parent / "open-webui"
        if not exe.exists():
            raise RuntimeError(f"{exe} not found: run the host tier with a venv that holds open-webui")
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            # the python of this venv runs the script: a copied venv's shebang may point elsewhere
            self.process = subprocess.Popen(
                [sys.executable, str(exe), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        atexit.register(self.stop)
        self.wait_ready(started)

    def wait_ready(self, started: float) -> None:
        deadline = started + READY_TIMEOUT
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"open-webui exited with {self.process.returncode} before it was ready; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get(f"{self.url}{versions.READY_PATH}")
                    if response.status_code == 200 and "json" in response.headers.get("content-type", ""):
                        self.ready_seconds = time.monotonic() - started
                        return
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"open-webui not ready after {READY_TIMEOUT:.0f}s; log {self.log_path}:\n{self.log_tail()}")

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

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child: get SIGTERM if pytest dies without cleaning up (Linux; best effort)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: atexit and the fixture finalizer still stop it
        pass


def _bearer(token: str | User | None, default: str) -> dict[str, str]:
    value = token.token if isinstance(token, User) else (token or default)
    return {"Authorization": f"Bearer {value}"}


def as_messages(messages: str | list[dict]) -> list[dict]:
    return [{"role": "user", "content": messages}] if isinstance(messages, str) else messages


def text_of(result: Any) -> str:
    """The reply text of a `chat()` result: non-stream dict or the list of stream chunks."""
    if isinstance(result, dict):
        if "error" in result and "choices" not in result:
            raise AssertionError(f"the completion failed: {result['error']!r}")
        message = (result.get("choices") or [{}])[0].get("message") or {}
        return str(message.get("content") or "")
    parts = []
    for chunk in result:
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk and "choices" not in chunk:
            raise AssertionError(f"the stream carried an error: {chunk['error']!r}")
        for choice in chunk.get("choices") or []:
            parts.append(str((choice.get("delta") or {}).get("content") or ""))
    return "".join(parts)


def parse_sse(lines: list[str]) -> list[Any]:
    out: list[Any] = []
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            continue
        try:
            out.append(json.loads(data))
        except ValueError:
            out.append(data)
    return out


class OpenWebUI:
    """Client for the running server; see conftest.py for the documented interface."""

    def __init__(self, server: Server, admin: User, user: User, deploy_root: Path) -> None:
        self.server = server
        self.url = server.url
        self.admin = admin
        self.user = user
        self.log_path = server.log_path
        self.ready_seconds = server.ready_seconds
        self.version = versions.OWUI_VERSION  # comparable tuple, e.g. (0, 10, 2)
        self.version_text = versions.OWUI_VERSION_TEXT
        self.at_least = versions.at_least
        self._deploy_root = deploy_root
        self._installed: set[str] = set()
        self._driver_grants: set[str] = set()
        self._driver_lock = threading.Lock()
        # no keep-alive: after an unhandled server exception uvicorn resets the connection, and a
        # pooled one would fail the next, unrelated request
        self._http = httpx.Client(base_url=self.url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0))

    def close(self) -> None:
        self._http.close()

    # --- raw REST ----------------------------------------------------------------

    def api(
        self,
        method: str,
        path: str,
        *,
        token: str | User | None = None,
        json: Any = None,
        timeout: float = 60,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = {**_bearer(token, self.admin.token), **kwargs.pop("headers", {})}
        return self._http.request(method, path, json=json, headers=headers, timeout=timeout, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """`api()` that asserts a 2xx answer and returns the decoded JSON."""
        response = self.api(method, path, **kwargs)
        if not response.is_success:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json()

    # --- models ------------------------------------------------------------------------

    def models(self, token: str | User | None = None) -> list[dict]:
        """GET /api/models (also rebuilds the server's model cache) -> the `data` list."""
        return self.ok("GET", "/api/models", token=token)["data"]

    def model_ids(self, token: str | User | None = None) -> list[str]:
        return [m["id"] for m in self.models(token)]

    def wait_for_model(self, model_id: str, timeout: float = 10, token: str | User | None = None) -> dict:
        """Poll /api/models until `model_id` is listed (Open WebUI caches the OpenAI model list for 1 s)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.models(token) if m["id"] == model_id]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"model {model_id!r} not listed within {timeout}s")
            time.sleep(0.2)

    def grant_model(self, model_id: str, user: User | None = None) -> None:
        """Let `user` (default: the non-admin user) use `model_id` via a workspace model read grant."""
        user = user or self.user
        existing = self.api("GET", "/api/v1/models/model", params={"id": model_id})
        record = existing.json() if existing.status_code == 200 else None
        name = (
            (record or {}).get("name")
            or next((m.get("name") for m in self.models() if m["id"] == model_id), None)
            or model_id
        )
        if versions.ACCESS_GRANTS:
            self._grant_model_access_grants(model_id, name, user, record)
        else:
            self._grant_model_access_control(model_id, name, user, record)
        self.models()

    def _grant_model_access_grants(self, model_id: str, name: str, user: User, record: dict | None) -> None:
        grant = {"principal_type": "user", "principal_id": user.id, "permission": "read"}
        grants = [
            {k: g[k] for k in ("principal_type", "principal_id", "permission")}
            for g in (record or {}).get("access_grants") or []
        ]
        if grant not in grants:
            # the UI's "access" dialog: creates a minimal workspace entry when the model has none
            self.ok(
                "POST",
                "/api/v1/models/model/access/update",
                json={"id": model_id, "name": name, "access_grants": [*grants, grant]},
            )

    def _grant_model_access_control(self, model_id: str, name: str, user: User, record: dict | None) -> None:
        """0.6.43: the model's `access_control` dict, through the workspace model create/update forms."""
        if record is None:
            form = {"id": model_id, "base_model_id": None, "name": name, "meta": {}, "params": {}}
            access = versions.access_control_with_reader(None, user.id)
            self.ok("POST", "/api/v1/models/create", json={**form, "access_control": access})
            return
        if record.get("access_control") is None:
            return  # public: every user may read it
        access = versions.access_control_with_reader(record["access_control"], user.id)
        if access != record["access_control"]:
            form = {k: record.get(k) for k in ("id", "base_model_id", "name", "meta", "params", "is_active")}
            self.ok("POST", "/api/v1/models/model/update", json={**form, "access_control": access})

    # --- plugins -------------------------------------------------------------------------

    def deploy(self, *plugin_ids: str, valves: dict | None = None, args: tuple[str, ...] = ()) -> str:
        """`python3 build.py deploy --only IDS` against this server, from a fresh build of the sources.

        Returns the command's output; raises AssertionError with the output when it fails.
        """
        if not plugin_ids:
            raise TypeError("deploy() needs the plugin ids to deploy")
        result = self.run_deploy(*plugin_ids, valves=valves, args=args)
        if result.returncode != 0:
            raise AssertionError(f"build.py deploy failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        return result.stdout

    def run_deploy(
        self, *plugin_ids: str, valves: dict | None = None, args: tuple[str, ...] = (), root: Path | None = None
    ) -> subprocess.CompletedProcess:
        """Run deploy and return the completed process (for tests of deploy's failures)."""
        if root is None:
            root = build_subset(plugin_ids, self._deploy_root / uuid.uuid4().hex[:8])
        command = [sys.executable, str(ROOT / "build.py"), "--root", str(root), "deploy", "--url", self.url]
        if plugin_ids:
            command += ["--only", *plugin_ids]
        if valves is not None:
            valves_file = Path(tempfile.mkstemp(suffix=".json", dir=self._deploy_root)[1])
            valves_file.write_text(json.dumps(valves), encoding="utf-8")
            command += ["--valves", str(valves_file)]
        command += list(args)
        env = {**os.environ, "OPENWEBUI_TOKEN": self.admin.token}
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)

    def install(self, plugin_id: str, text: str, *, kind: str = "function", active: bool = True) -> dict:
        """Create or update a test-only function/tool straight through the REST API (no build, no manifest).

        `kind` is "function" (pipe, filter, action: the server detects which) or "tool". Functions are
        activated unless `active=False`. Refreshes /api/models. Returns the stored record.
        """
        api = "tools" if kind == "tool" else "functions"
        form = {"id": plugin_id, "name": plugin_id, "content": text, "meta": {"description": f"test-only {plugin_id}"}}
        found = self.api("GET", f"/api/v1/{api}/id/{plugin_id}")
        if found.status_code == 200:
            record = self.ok("POST", f"/api/v1/{api}/id/{plugin_id}/update", json=form)
        else:
            record = self.ok("POST", f"/api/v1/{api}/create", json=form)
        if api == "functions" and bool(record.get("is_active")) != active:
            record = self.ok("POST", f"/api/v1/functions/id/{plugin_id}/toggle")
        self.models()
        return record

    def run_tool(
        self,
        tool_id: str,
        name: str,
        arguments: dict,
        socket: Any,
        *,
        token: str | User | None = None,
        timeout: float = 60,
        **body: Any,
    ) -> ToolRun:
        """Run tool `tool_id`'s function `name` through the real native tool loop.

        A test-only driver pipe (tests/host/plugins/tool_driver.py, model "host_tool_driver") asks
        for the call with OpenAI `tool_calls`; Open WebUI executes the tool (valves, `__user__`,
        `__event_emitter__` bound; arguments coerced to the declared types) and hands the result back.
        `socket` must belong to the user of `token` (default admin); for the non-admin user the
        driver model is granted automatically, the tool must be readable by them (deploy
        --share-tools).
        """
        # tests call run_tool from several threads at once: the first install must happen once
        with self._driver_lock:
            if DRIVER_ID not in self._installed:
                self.install(DRIVER_ID, (HOST_PLUGINS / "tool_driver.py").read_text(encoding="utf-8"))
                self._installed.add(DRIVER_ID)
            if isinstance(token, User) and token.role != "admin" and token.id not in self._driver_grants:
                self.grant_model(DRIVER_ID, token)
                self._driver_grants.add(token.id)
        if versions.NATIVE_TOOLS_NEED_PARAM:
            body["params"] = {"function_calling": "native", **(body.get("params") or {})}
        completion = self.chat_background(
            DRIVER_ID,
            json.dumps({"name": name, "arguments": arguments}),
            socket,
            token=token,
            timeout=timeout,
            tool_ids=[tool_id],
            **body,
        )
        output = completion["output"]
        reply = output_text(output, "message") or str(completion.get("content") or "")
        return ToolRun(output_text(output, "function_call_output"), reply, output, completion)

    # --- completions ---------------------------------------------------------------------

    def chat(
        self,
        model: str,
        messages: str | list[dict],
        *,
        stream: bool = False,
        token: str | User | None = None,
        session_id: str | None = None,
        timeout: float = 120,
        **body: Any,
    ) -> Any:
        payload = {"model": model, "messages": as_messages(messages), "stream": stream, **body}
        if session_id is not None:
            payload["session_id"] = session_id
        headers = _bearer(token, self.admin.token)
        if not stream:
            response = self._http.post("/api/chat/completions", json=payload, headers=headers, timeout=timeout)
            if response.status_code != 200:
                raise AssertionError(f"chat {model!r} -> {response.status_code}: {response.text[:2000]}")
            return response.json()
        with self._http.stream(
            "POST", "/api/chat/completions", json=payload, headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                response.read()
                raise AssertionError(f"chat {model!r} (stream) -> {response.status_code}: {response.text[:2000]}")
            if "text/event-stream" not in response.headers.get("content-type", ""):
                response.read()
                return [response.json()]
            return parse_sse(list(response.iter_lines()))

    text_of = staticmethod(text_of)

    def chat_background(
        self,
        model: str,
        messages: str | list[dict],
        socket: Any,
        *,
        timeout: float = 60,
        token: str | User | None = None,
        **body: Any,
    ) -> dict:
        """A UI-like request (session + `local:` chat + message id), as the native tool loop needs.

        Returns the final `chat:completion` data (`done: true`; `output` items, `content`), read from
        `socket` (which must belong to the same user as `token`). Both keys are there on every version
        (versions.normalise_completion); `socket` keeps the raw event.
        """
        message_id = str(uuid.uuid4())
        response = self.api(
            "POST",
            "/api/chat/completions",
            token=token,
            timeout=timeout,
            json={
                "model": model,
                "messages": as_messages(messages),
                "stream": True,
                "session_id": socket.sid,
                "chat_id": f"local:{socket.sid}",
                "id": message_id,
                **body,
            },
        )
        if response.status_code != 200 or not response.json().get("status"):
            raise AssertionError(f"background chat {model!r} -> {response.status_code}: {response.text[:2000]}")
        return versions.normalise_completion(socket.wait_done(timeout, message_id=message_id))

    def chat_completed(
        self,
        model: str,
        messages: list[dict],
        socket: Any,
        *,
        message_id: str | None = None,
        token: str | User | None = None,
        timeout: float = 60,
    ) -> dict:
        """POST /api/chat/completed, the UI's call after a reply finished: runs the outlet filters.

        Before 0.10 this is the only way outlets run (versions.OUTLET_INLINE). Returns the answer: the
        request body with `messages` as the outlets left them.
        """
        payload = {
            "model": model,
            "messages": messages,
            "chat_id": f"local:{socket.sid}",
            "id": message_id or str(uuid.uuid4()),
            "session_id": socket.sid,
        }
        return self.ok("POST", "/api/chat/completed", token=token, json=payload, timeout=timeout)

    def action(self, action_id: str, body: dict, *, token: str | User | None = None, timeout: float = 60) -> Any:
        """POST /api/chat/actions/{action_id}; fills the keys the endpoint requires (chat_id, id, session_id)."""
        payload = {"chat_id": None, "id": None, "session_id": None, **body}
        return self.ok("POST", f"/api/chat/actions/{action_id}", token=token, json=payload, timeout=timeout)


@dataclass
class ToolRun:
    """One trip through Open WebUI's native tool loop (see OpenWebUI.run_tool)."""

    result: str  # what the tool returned, as the host handed it back to the model
    reply: str  # the final assistant text (the driver pipe echoes `result`)
    output: list[dict]  # the final message's output items (function_call, function_call_output, message)
    completion: dict  # the final `chat:completion` event data


def output_text(output: list[dict], kind: str) -> str:
    texts = []
    for item in output:
        if item.get("type") != kind:
            continue
        parts = item.get("output") if kind == "function_call_output" else item.get("content")
        if isinstance(parts, str):
            texts.append(parts)
            continue
        for part in parts or []:
            if isinstance(part, dict):
                texts.append(str(part.get("text", "")))
    return "\n".join(texts)


def build_subset(plugin_ids: tuple[str, ...], root: Path) -> Path:
    """Build the named plugins from the current sources into `root` (manifest.json + dist/).

    Deploying a fresh build means host tests never run a stale dist/, and a half-written plugin of
    someone else does not break them.
    """
    wanted = set(plugin_ids)
    cache: dict = {}
    plugins = []
    for folder, source in discover(ROOT):
        if plugin_id(folder, Path(source).stem) in wanted:
            plugins.append(build_plugin(ROOT, folder, source, cache))
    unknown = wanted - {p.id for p in plugins}
    if unknown:
        raise AssertionError(f"no plugin source for id(s) {sorted(unknown)}")
    for plugin in plugins:
        path = root / plugin.dist
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(plugin.text, encoding="utf-8")
    entries = [manifest_entry(p) for p in sorted(plugins, key=lambda p: (p.id, p.kind))]
    (root / MANIFEST).write_text(json.dumps({"plugins": entries}, indent=2) + "\n", encoding="utf-8")
    return root


def signup_admin(url: str) -> User:
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.post(
            "/api/v1/auths/signup",
            json={"name": "Host Admin", "email": "admin@host.test", "password": ADMIN_PASSWORD},
        )
        if response.status_code != 200:
            raise RuntimeError(f"admin signup failed: {response.status_code} {response.text}")
        data = response.json()
    return User(data["name"], data["email"], data["id"], data["token"], data["role"])


def add_user(url: str, admin: User) -> User:
    """The second, non-admin user: created by the admin (POST /api/v1/auths/add, role "user")."""
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.post(
            "/api/v1/auths/add",
            headers=_bearer(admin, admin.token),
            json={"name": "Host User", "email": "user@host.test", "password": USER_PASSWORD, "role": "user"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"adding the second user failed: {response.status_code} {response.text}")
        data = response.json()
    return User(data["name"], data["email"], data["id"], data["token"], data["role"])
