"""Host tier: a real Open WebUI on 127.0.0.1 for the whole pytest session.

Run: `.venv/bin/python -m pytest tests/host -q` (0.12.4), or another version with its own venv:
`OWUI_VERSION=0.6.43 bash tests/run.sh tests/host` (0.6.43, 0.8.12, 0.10.2). The version is the
open-webui installed in the running venv; tests/host/versions.py is the one place that says where the
harness differs by version (`OWUI_VERSION`, `at_least("0.10.0")`, `skip_before(...)`, the facts).
Every test under tests/host/ gets the `host` marker (select or skip the tier with `-m host` /
`-m "not host"`). Host tests are plain sync functions.
The server starts on first use of `owui` (~15-20 s, ~800 MB) and is stopped by PID (with its process
group) at the end, also when tests fail or pytest is interrupted. The time-to-ready and the server log
path are printed at the end of the run; a failing test that used `owui` gets the log's last lines
attached to its report.

Server environment: OFFLINE_MODE, temp DATA_DIR/STATIC_DIR, 64-hex-char WEBUI_SECRET_KEY, Ollama off,
the OpenAI connection pointed at `fake_openai`, RAG_EMBEDDING_ENGINE=openai at `fake_embeddings`
(model "fake-embed"), WEBSOCKET_EVENT_CALLER_TIMEOUT=10 (`EVENT_CALL_TIMEOUT`: 10, or 60 on 0.6.43,
which has no such setting), CORS_ALLOW_ORIGIN set.

SESSION FIXTURES

`owui` — the running server, an `OpenWebUI` (tests/host/_server.py):
  - `.url` ("http://127.0.0.1:PORT"), `.log_path`, `.ready_seconds`, `.version` (tuple, e.g. (0, 10, 2)),
    `.version_text` ("0.10.2"), `.at_least("0.10.0")`.
  - `.admin` (first user, role "admin") and `.user` (role "user", created by the admin with
    POST /api/v1/auths/add): `User` with `.token`, `.id`, `.email`, `.name`, `.role`.
  - `.api(method, path, *, token=None, json=None, timeout=60, **httpx_kwargs) -> httpx.Response`;
    `token` is a token string or a `User`; default the admin. `.ok(...)`: the same, asserts 2xx and
    returns the decoded JSON.
  - `.deploy(*plugin_ids, valves=None, args=()) -> str`: builds those plugins from the CURRENT sources
    into a temp root and runs `python3 build.py --root TMP deploy --url URL --only IDS [--valves F]
    [*args]` with the admin token (ids are manifest ids: "template_pipe", "gemini_manifold", ...).
    Deploy creates or updates, activates, makes `global: true` filters/actions global, merges `valves`
    ({plugin_id: {valve: value}}; null = back to the default) into the stored valves and refreshes
    /api/models. Returns the output; AssertionError with the output on failure.
    `.run_deploy(*ids, valves=None, args=(), root=None) -> CompletedProcess` does not check.
  - `.install(plugin_id, text, *, kind="function"|"tool", active=True) -> dict`: create or update a
    test-only plugin straight through REST (no build), e.g. from tests/host/plugins/.
  - `.chat(model, messages, *, stream=False, token=None, session_id=None, timeout=120, **body)`:
    POST /api/chat/completions; `messages` may be a string (one user message). Non-stream → the JSON
    dict; stream → the list of parsed `data:` objects ([DONE] dropped). AssertionError on a non-200
    answer (use `.api` to test refusals). A pipe exception is HTTP 200 with `{"error": {...}}` (or a
    `data: {"error": ...}` chunk): `owui.text_of(result)` raises on those and returns the reply text of
    either shape. Pass `session_id=socket.sid` so `__event_call__` reaches that socket (without it a
    call returns `{'error': 'Client session disconnected.'}`; emitted events still reach all of that
    user's sockets).
  - `.chat_background(model, messages, socket, *, timeout=60, token=None, **body) -> dict`: a UI-like
    request (session_id + chat_id "local:<sid>" + message id, stream), the mode in which filters'
    outlets and the native tool loop run (outlets inline only from 0.10; before, only via
    POST /api/chat/completed); returns that message's final `chat:completion` data (`done: true`,
    `output` items and `content` on every version: 0.6.43's `content` is turned into `output` items,
    0.10+'s `output` gives `content`), read from `socket` (same user as `token`).
  - `.run_tool(tool_id, name, arguments, socket, *, token=None, timeout=60) -> ToolRun`: runs one tool
    function through Open WebUI's real native tool loop, with a test-only driver pipe
    ("host_tool_driver", installed on first use) playing the LLM (before 0.10 the request asks for
    params.function_calling "native", which those versions do not default to). `ToolRun.result` (what the tool
    returned, as the host hands it to the model), `.reply`, `.output`, `.completion`. For `token=owui.user`
    the driver is granted automatically; the tool must be shared (deploy args=("--share-tools",)).
  - `.chat_completed(model, messages, socket, *, message_id=None, token=None) -> dict`: POST
    /api/chat/completed (what the UI sends after a reply): runs the outlet filters on `messages` and
    returns the body they left; before 0.10 the only way outlets run.
  - `.action(action_id, body, *, token=None) -> JSON`: POST /api/chat/actions/{action_id} ("fn" or
    "fn.sub"); the required keys chat_id/id/session_id default to None.
  - `.models(token=None)` / `.model_ids(token=None)`: GET /api/models (also rebuilds the server's
    model cache). `.wait_for_model(model_id, timeout=10)`: polls until listed (Open WebUI caches the
    OpenAI model list for 1 s, so a model just added to `fake_openai` can take a moment).
    `.grant_model(model_id, user=None)`: lets the non-admin user (or `user`) use the model (workspace
    model entry + read grant, as the admin's access dialog does; 0.6.43: the model's `access_control`
    dict through the workspace model create/update forms).

`fake_openai` — `tests.fakes.openai_server.FakeOpenAI`, Open WebUI's OpenAI connection from the start
  (base URL `.url`, key "sk-fake-openai"). Model "fake-gpt" exists (answers "<model> says: <text>").
  `.set(model, reply=str|fn(body), latency=, chunk_delay=, chunk_size=, fail_status=, fail_message=,
  fail_times=, tool_calls=[{"name", "arguments"}], reasoning=, usage=, stream_items=[str | dict])` adds
  or changes a model (`stream_items`: streamed as a Pipelines server sends a pipeline's output);
  `.requests` (RecordedRequest: method, path, headers, json), `.chat_requests(model=None)` (bodies),
  `.requests_to(suffix)`. Note: in background (UI-like) requests Open WebUI sends its builtin tools.
`fake_embeddings` — `tests.fakes.embeddings.FakeEmbeddings`, the embedding engine for memories:
  deterministic vectors; `.fail = True` (or a status) makes /embeddings fail; `.embedded_texts()`.
Per test, both fakes' request logs start empty and every change a test (or its function fixtures)
makes to them is undone afterwards; changes made by module/session fixtures stay.

FUNCTION FIXTURES

`socket` — python-socketio client logged in as the admin (path /ws/socket.io, websocket transport,
  auth {"token"}), in its own thread and event loop; disconnected at teardown. A `SocketClient`
  (tests/host/_socket.py):
  - `.sid` (pass as `session_id`), `.events` (raw `events` payloads `{"chat_id", "message_id",
    "data": {"type", "data"}}`, in arrival order), `.calls` (`Call(type, data, answer, payload)` for
    every `__event_call__`), `.types()`, `.of_type(type)` (the `data` of each event of that type),
    `.clear()`, `.emit(event, data)`.
  - `.answer(type, *values)`: scripted answers to `confirmation` / `input` / `execute` calls, used in
    order, the last one repeating. A value is the answer itself (True/False, a string, any JSON),
    `NEVER` (never acknowledged: the server gives up after `EVENT_CALL_TIMEOUT` s; on 0.12.4 the plugin
    gets `{'error': 'Event call timed out…'}`, older versions raise python-socketio's TimeoutError in
    the plugin), `Late(seconds, value)`, or a function of the call's `data`.
    Unscripted calls are answered with None at once.
  - `.wait_for(type, timeout=10, *, where=None, count=1, message_id=None)`: blocks until `count`
    events of `type` (data passing `where`, about `message_id`) arrived; returns the last one's
    `data`; AssertionError listing the types seen on timeout. `.wait_done(timeout=60, *, message_id=None)`:
    the final `chat:completion` (done) data.
`socket_for(user)` — factory: another connected `SocketClient` for `owui.user` (or any `User`); all
  are disconnected at teardown.
`NEVER` — the never-answer sentinel as a fixture; importable too:
  `from tests.host.conftest import NEVER, Late, EVENT_CALL_TIMEOUT`.

ISOLATION: the server is shared by every host test of the run. Use ids unique to your test file for
things you create; restore valves you change (deploy valves={id: {name: None}} resets to default);
deploy is idempotent, so deploying again in a module fixture is cheap (~0.1 s).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.embeddings import FakeEmbeddings
from tests.fakes.openai_server import FakeOpenAI
from tests.host._server import EVENT_CALL_TIMEOUT, OpenWebUI, Server, User, add_user, signup_admin
from tests.host._socket import NEVER, Late, SocketClient
from tests.host.versions import OWUI_VERSION_TEXT

__all__ = ["EVENT_CALL_TIMEOUT", "NEVER", "Late", "OpenWebUI", "SocketClient", "User"]

HOST_DIR = Path(__file__).resolve().parent
_STATE: dict[str, object] = {}
LOG_TAIL_LINES = 80


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HOST_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.host)


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _isolate_fakes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with empty request logs; what it changes in the fakes is undone after it.

    Runs after module/session fixtures, so models a module fixture sets up survive between its tests.
    """
    openai = request.getfixturevalue("fake_openai") if "fake_openai" in request.fixturenames else None
    embeddings = request.getfixturevalue("fake_embeddings") if "fake_embeddings" in request.fixturenames else None
    saved = openai.snapshot() if openai else None
    failing = embeddings.fail if embeddings else False
    for fake in (openai, embeddings):
        if fake is not None:
            fake.clear()
    yield
    if openai is not None and saved is not None:
        openai.restore(saved)
    if embeddings is not None:
        embeddings.fail = failing


@pytest.fixture(scope="session")
def fake_embeddings() -> Iterator[FakeEmbeddings]:
    with FakeEmbeddings() as fake:
        yield fake


@pytest.fixture(scope="session")
def owui(
    fake_openai: FakeOpenAI, fake_embeddings: FakeEmbeddings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenWebUI]:
    workdir = tmp_path_factory.mktemp("owui")
    server = Server(workdir, fake_openai.url, fake_embeddings.url)
    _STATE["server"] = server
    try:
        server.start()
        _STATE["ready_seconds"] = server.ready_seconds
        _STATE["rss_mib"] = server.rss_mib()
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
        # the data dir holds a Chroma DB and the uploads; the log stays for failing tests
        shutil.rmtree(workdir / "data", ignore_errors=True)


@pytest.fixture
def socket_for(owui: OpenWebUI) -> Iterator[Callable[[User], SocketClient]]:
    clients: list[SocketClient] = []

    def connect(user: User) -> SocketClient:
        client = SocketClient(owui.url, user.token, name=f"socket[{user.email}]")
        clients.append(client)
        return client.connect()

    yield connect
    for client in clients:
        client.disconnect()


@pytest.fixture
def socket(socket_for: Callable[[User], SocketClient], owui: OpenWebUI) -> SocketClient:
    return socket_for(owui.admin)


@pytest.fixture(name="NEVER")
def never_fixture() -> object:
    return NEVER


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    server = _STATE.get("server")
    if report.failed and isinstance(server, Server) and "owui" in getattr(item, "fixturenames", ()):
        report.sections.append(
            (f"open-webui log (last {LOG_TAIL_LINES} lines of {server.log_path})", server.log_tail(LOG_TAIL_LINES))
        )
        _STATE["failed"] = True
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    server = _STATE.get("server")
    if not isinstance(server, Server):
        return
    ready = _STATE.get("ready_seconds")
    rss = _STATE.get("rss_mib")
    figures = f"ready in {ready:.1f} s" if isinstance(ready, float) else "never became ready"
    if isinstance(rss, float):
        figures += f", RSS {rss:.0f} MiB at ready"
    terminalreporter.write_line(f"open-webui {OWUI_VERSION_TEXT} host: {figures}; log {server.log_path}")
    if _STATE.get("failed") or exitstatus not in (0, 5):
        terminalreporter.write_line(f"(host tests failed: the full server log is {server.log_path})")
