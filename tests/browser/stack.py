"""One local Open WebUI with the pack deployed: the browser tier's server and `python3 build.py demo`.

    stack = Stack(workdir).start()     # fakes (or real upstreams), server, accounts, pack, shared models
    stack.url, stack.admin, stack.user # the server and the two accounts (tests/host/_server.User)
    stack.gemini, stack.openai         # the loopback fakes (None where a real upstream is used)
    stack.stop()                       # stops the server (by PID, its process group) and the fakes

Run as a program (what `python3 build.py demo` starts, with the suite's venv python):

    .venv/bin/python -m tests.browser.stack --data DIR [--fresh] [--port N]

it starts the stack, prints the URL and the sign-in, and stops everything on Ctrl-C or SIGTERM.

Upstreams: Gemini is the real Google API when GOOGLE_API_KEY is set, else `tests/fakes/gemini.py`;
Open WebUI's OpenAI connection (what Mixture of Agents' agents use) is OPENAI_API_BASE_URL with
OPENAI_API_KEY when both are set, else `tests/fakes/openai_server.py`. The embeddings engine (memories)
is always the loopback fake. The pack is built from the current sources and installed with
`build.py deploy --share-tools --share-models`, as the README says.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fakes import gemini as g
from tests.fakes.embeddings import FakeEmbeddings
from tests.fakes.openai_server import FakeOpenAI
from tests.host._server import ROOT, Server, User, build_subset, free_port

# the pack the demo and the browser tier install (templates are deployed only with --only)
PACK = ("gemini_manifold", "mixture_of_agents", "add_to_memories", "youtube_transcript")
FAKE_GEMINI_KEY = "AIzaSyBROWSER-fake-key-0123456789abcdefg"  # the fake's key: not a Google key
ADMIN = ("Pack Admin", "admin@pack.local", "Admin-Passw0rd!")  # a loopback server's own accounts
USER = ("Pack User", "user@pack.local", "User-Passw0rd!")
FLASH = "gemini_manifold.gemini-2.5-flash"
MOA = "mixture_of_agents"
AGENTS = ("moa-a", "moa-b")
AGGREGATOR = "moa-agg"
MOA_FINAL = "Green is the colour most people name first, and red comes second."
# what the fake Gemini streams for a plain question: words a moment apart, so a page sees it grow
STREAM_DELAY = 0.08
REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"
SOURCES = [(REDIRECT + "lisbon", "Lisbon - City Guide"), (REDIRECT + "tagus", "Tagus river - River Guide")]
GROUNDED_ANSWER = "Lisbon is the capital of Portugal. It lies on the Tagus."
TRIGGERS = {
    "think first": "a reply with thoughts (shown in a collapsible block)",
    "search the web": "a reply grounded in Google Search (sources and citation marks)",
    "blocked prompt": "a prompt Gemini's safety filters block",
    "cut off": "a reply that reaches the output token limit",
}


def words(text: str) -> list[dict]:
    """`text` as one stream chunk per word (the space kept with the word before it)."""
    pieces = text.split(" ")
    return [g.text(p + (" " if i < len(pieces) - 1 else "")) for i, p in enumerate(pieces)]


def gemini_route(request: dict) -> g.Script:
    """What the fake Gemini answers, chosen from the request as a model would (see TRIGGERS)."""
    asked = g.last_user_text(request)
    task = g.task_reply(request)
    if task:
        return task
    if "think first" in asked:
        thoughts = [g.thought("Weighing the options. "), g.thought("Settled on forty-two.")]
        return g.Stream([*thoughts, *words("The answer is forty-two."), g.finish()], delay=STREAM_DELAY)
    if "search the web" in asked:
        supports = [("Lisbon is the capital of Portugal.", [0, 1]), ("It lies on the Tagus.", [1])]
        meta = g.grounded(SOURCES, ["capital of portugal"], supports, answer=GROUNDED_ANSWER)
        thoughts = [g.thought("Looking it up.")]  # Add to Memories leaves thoughts and marks out
        return [*thoughts, *words(GROUNDED_ANSWER), meta, g.finish()]
    if "blocked prompt" in asked:
        return [g.blocked("SAFETY")]
    if "cut off" in asked:
        return g.Stream([*words("Here is the first part of a long story"), g.finish("MAX_TOKENS")], delay=0.05)
    return g.Stream([*words(f"Echo: {asked}. That is all I can say about it."), g.finish()], delay=STREAM_DELAY)


def configure_moa_fakes(openai: FakeOpenAI, *, latency: float = 0.3) -> None:
    """Agents that take a moment (so the status line moves) and an aggregator that streams."""
    openai.set(AGENTS[0], reply="Green.", latency=latency)
    openai.set(AGENTS[1], reply="Red.", latency=latency)
    openai.set(AGGREGATOR, reply=MOA_FINAL, chunk_size=4, chunk_delay=0.04)


@dataclass
class Upstreams:
    """Which upstream each part talks to: real ones from the environment, else the fakes."""

    google_key: str | None = None
    openai_url: str | None = None
    openai_key: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ) -> Upstreams:
        url, key = env.get("OPENAI_API_BASE_URL") or None, env.get("OPENAI_API_KEY") or None
        return cls(env.get("GOOGLE_API_KEY") or None, url if url and key else None, key if url and key else None)

    def lines(self) -> list[str]:
        gemini = "the real Gemini API (GOOGLE_API_KEY)" if self.google_key else "the loopback fake (tests/fakes)"
        openai = (
            f"{self.openai_url} (OPENAI_API_BASE_URL, OPENAI_API_KEY)"
            if self.openai_url
            else "the loopback fake (tests/fakes)"
        )
        return [f"  Gemini:            {gemini}", f"  OpenAI connection: {openai}"]


@dataclass
class Stack:
    workdir: Path
    upstreams: Upstreams = field(default_factory=Upstreams)
    port: int | None = None
    persistent: bool = False  # the demo: keep the data and the secret key for the next run
    moa_latency: float = 0.3
    server: Server | None = None
    gemini: g.FakeGemini | None = None
    openai: FakeOpenAI | None = None
    embeddings: FakeEmbeddings | None = None
    admin: User | None = None
    user: User | None = None
    deploy_output: str = ""
    ready_seconds: float | None = None

    @property
    def url(self) -> str:
        assert self.server is not None, "start() the stack first"
        return self.server.url

    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.embeddings = FakeEmbeddings().start()
        if not self.upstreams.openai_url:
            self.openai = FakeOpenAI().start()
            configure_moa_fakes(self.openai, latency=self.moa_latency)
        if not self.upstreams.google_key:
            self.gemini = g.FakeGemini(api_key=FAKE_GEMINI_KEY).start()
            self.gemini.default = gemini_route
        self.server = Server(
            self.workdir, self.openai.url if self.openai else str(self.upstreams.openai_url), self.embeddings.url,
            extra_env=self._server_env(),
        )  # fmt: skip
        if self.port is not None:
            self._use_port(self.port)
        self.server.start()
        self.ready_seconds = self.server.ready_seconds
        self.admin = account(self.url, *ADMIN)
        self.user = account(self.url, *USER, admin=self.admin)
        self.deploy_output = self.deploy()

    def _server_env(self) -> dict[str, str]:
        env = {"ENABLE_PERSISTENT_CONFIG": "false"}  # the connection URLs change from run to run
        if self.upstreams.openai_key:
            env["OPENAI_API_KEYS"] = self.upstreams.openai_key
        if self.persistent:  # sign-ins survive a restart of the demo
            key_file = self.workdir / "secret_key"
            if not key_file.exists():
                key_file.write_text(secrets.token_hex(32), encoding="utf-8")
                key_file.chmod(0o600)
            env["WEBUI_SECRET_KEY"] = key_file.read_text(encoding="utf-8").strip()
        return env

    def _use_port(self, port: int) -> None:
        server = self.server
        assert server is not None
        server.port, server.url = port, f"http://127.0.0.1:{port}"
        server.env.update({"PORT": str(port), "CORS_ALLOW_ORIGIN": server.url})

    def valves(self) -> dict[str, dict[str, Any]]:
        gemini: dict[str, Any] = {"GOOGLE_API_KEY": self.upstreams.google_key or FAKE_GEMINI_KEY}
        gemini["GOOGLE_API_BASE_URL"] = self.gemini.url if self.gemini else None
        if self.gemini:
            gemini["MAX_RETRIES"] = 1
        valves = {"gemini_manifold": gemini}
        if self.openai:
            valves[MOA] = {
                "models": list(AGENTS),
                "aggregator_model": AGGREGATOR,
                "num_layers": 2,
                "num_agents_per_layer": 3,
                "emit_interval": 0,
            }
        return valves

    def deploy(self, *extra: str) -> str:
        """`build.py deploy` of the pack, built from the current sources, with valves and sharing."""
        built = build_subset(PACK, self.workdir / "pack")
        valves_file = self.workdir / "valves.json"
        valves_file.write_text(json.dumps(self.valves()), encoding="utf-8")
        valves_file.chmod(0o600)  # it holds the Gemini key
        assert self.admin is not None
        command = [sys.executable, str(ROOT / "build.py"), "--root", str(built), "deploy", "--url", self.url]
        command += ["--valves", str(valves_file), "--share-tools", "--share-models", *extra]
        env = {**os.environ, "OPENWEBUI_TOKEN": self.admin.token}
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"build.py deploy failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        if self.openai:  # MoA calls its agents as the chatting user: share them as deploy shared the pipe
            for model in (*AGENTS, AGGREGATOR):
                share_model(self.url, self.admin, model)
        return result.stdout

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        for fake in (self.gemini, self.openai, self.embeddings):
            if fake is not None:
                fake.stop()


def _post(url: str, path: str, payload: dict, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url + path, json=payload, headers=headers, timeout=60)


def account(url: str, name: str, email: str, password: str, *, admin: User | None = None) -> User:
    """Sign in to the account, creating it first when the server does not have it yet.

    The first account signs up (and becomes the admin); the others are added by `admin` as plain users.
    """
    response = _post(url, "/api/v1/auths/signin", {"email": email, "password": password})
    if response.status_code != 200:
        if admin is None:
            response = _post(url, "/api/v1/auths/signup", {"name": name, "email": email, "password": password})
        else:
            form = {"name": name, "email": email, "password": password, "role": "user"}
            response = _post(url, "/api/v1/auths/add", form, admin.token)
        if response.status_code != 200:
            raise RuntimeError(f"could not create the account {email}: {response.status_code} {response.text[:500]}")
        if admin is not None:  # /auths/add answers with the admin's session: sign in as the new user
            response = _post(url, "/api/v1/auths/signin", {"email": email, "password": password})
    data = response.json()
    return User(data["name"], data["email"], data["id"], data["token"], data["role"])


def share_model(url: str, admin: User, model_id: str) -> None:
    """Every user may read `model_id` (an OpenAI-connection model): the access dialog's "Public"."""
    headers = {"Authorization": f"Bearer {admin.token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for _ in range(50):  # Open WebUI caches the connection's model list for a moment
            listed = client.get("/api/models").json().get("data", [])
            if any(m["id"] == model_id for m in listed):
                break
            time.sleep(0.1)
        public = {"principal_type": "user", "principal_id": "*", "permission": "read"}
        response = client.post(
            "/api/v1/models/model/access/update", json={"id": model_id, "name": model_id, "access_grants": [public]}
        )
        if response.status_code != 200:
            raise RuntimeError(f"sharing {model_id} failed: {response.status_code} {response.text[:500]}")


# --- the demo program ------------------------------------------------------------------------


def _port(wanted: int | None) -> int:
    if wanted:
        return wanted
    try:  # 8080, Open WebUI's usual port, when it is free
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 8080))
        return 8080
    except OSError:
        return free_port()


def banner(stack: Stack, data: Path) -> str:
    assert stack.admin is not None and stack.user is not None
    lines = [
        "",
        f"Open WebUI with the pack is running: {stack.url}",
        f"  sign in as the admin: {ADMIN[1]} / {ADMIN[2]}",
        f"  or as a plain user:   {USER[1]} / {USER[2]}",
        "Upstreams:",
        *stack.upstreams.lines(),
    ]
    if stack.gemini:
        lines.append("  The fake Gemini echoes a question; these words pick another answer:")
        lines += [f"    {word!r}: {what}" for word, what in TRIGGERS.items()]
    if not stack.openai:
        lines.append("  Mixture of Agents keeps its valves: pick its agent models in Admin Panel → Functions.")
    lines += [
        f"Data: {data} (reused next time; --fresh starts over)",
        f"Server log: {stack.server.log_path if stack.server else '-'}",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.stack", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="directory for the server's data and log")
    parser.add_argument("--fresh", action="store_true", help="delete the data directory first")
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default 8080 when free)")
    args = parser.parse_args(argv)
    data = args.data.resolve()
    if args.fresh and data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    ignore = data / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    # Ctrl-C (SIGINT) and SIGTERM both end the run through the `finally` below, also during the start
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background (SIGINT ignored)
    upstreams = Upstreams.from_env(os.environ)
    print(f"Starting Open WebUI from {sys.prefix} (about 20-40 s)...", flush=True)
    stack = Stack(data, upstreams, port=_port(args.port), persistent=True)
    try:
        stack.start()
        print(banner(stack, data), flush=True)
        process = stack.server.process if stack.server else None
        while process is not None and process.poll() is None:
            time.sleep(0.5)
        print("Open WebUI exited; see the server log.", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"The demo could not start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("Stopping...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
