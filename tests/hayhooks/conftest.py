"""Hayhooks tier: the pack's Hayhooks wrappers in a real `hayhooks run`, behind a real Open WebUI 0.12.4.

Run: `bash tests/setup/hayhooks.sh` once (makes .venv-hayhooks), then
`.venv/bin/python -m pytest tests/hayhooks -q` (select or skip the tier with `-m hayhooks` /
`-m "not hayhooks"`). It runs on Open WebUI 0.12.4 only: elsewhere, and without .venv-hayhooks, the
tier is left out with one line in the summary ("Hayhooks tier skipped (N tests): why"), except that
under CI=true a missing .venv-hayhooks fails each of its tests.

The chain, all on 127.0.0.1:

    Open WebUI 0.12.4 --OpenAI connection--> hayhooks run --Haystack OpenAIChatGenerator--> fake_openai

- `fake_openai` (tests/fakes/openai_server.py) is the LLM the wrappers call: every wrapper asks for
  the model PACK_MODEL ("pack-llm"; `fake_openai.set(PACK_MODEL, ...)` scripts it per test: reply,
  chunk_size, tool_calls + tool_reply, cut_after, fail_status, ...).
- `hayhooks` — `HayhooksServer` (tests/hayhooks/_hayhooks.py): `hayhooks run` from .venv-hayhooks with
  `--pipelines-dir` = a temp build of every Hayhooks wrapper from the CURRENT sources (one folder per
  wrapper, folder name = model id) and the environment the wrappers read: OPENAI_API_KEY,
  OPENAI_BASE_URL=<fake>/v1, HAYHOOKS_PACK_MODEL, HAYHOOKS_PACK_TIMEOUT, HAYSTACK_TELEMETRY_ENABLED=False.
  `.url`, `.log_path`, `.chat_posts()` (chat calls answered so far, from the access log), `.models()`,
  `.ready_seconds`, `.rss_mib()`. Stopped by PID with its process group; the log's last lines are
  attached to a failing test's report.
- `built` — `BuiltWrappers`: `.ids` (model name -> manifest id) and `.failed` (sources that did not build).
  `wrapper(name)` (function fixture factory `need_wrapper`) skips a test whose wrapper is not written yet.
- `owui` — Open WebUI 0.12.4 (`tests/host/_server.py`, `Server(..., extra_env=...)`) whose only OpenAI
  connection is the Hayhooks server (`OPENAI_API_BASE_URLS=<hayhooks>/v1`, key "x") with the header
  templates of the pack's README: OPENAI_API_CONFIGS = `HEADER_CONFIG` (X-OWUI-Chat-Id,
  X-OWUI-Message-Id, X-OWUI-Task; 0.12.4 fills them in open_webui/utils/headers.py,
  get_custom_headers, from the request's metadata). Same interface as the host tier's `owui`.
- `socket`, `socket_for`, `fake_embeddings`, `NEVER` and the per-test fake isolation are the host
  tier's (tests/host/conftest.py), bound here to this tier's `owui`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.hayhooks._hayhooks import (
    HAYHOOKS_EXE,
    PACK_MODEL,
    BuiltWrappers,
    HayhooksServer,
    build_wrappers,
    hayhooks_env,
)
from tests.host._server import OpenWebUI, Server, add_user, signup_admin
from tests.host.conftest import (  # the host tier's fixtures, bound here to this tier's `owui`
    _isolate_fakes,
    fake_embeddings,
    never_fixture,
    socket,
    socket_for,
)
from tests.host.versions import OWUI_VERSION_TEXT

__all__ = ["_isolate_fakes", "fake_embeddings", "never_fixture", "socket", "socket_for"]

TIER_DIR = Path(__file__).resolve().parent
TIER_VERSION = "0.12.4"
LOG_TAIL_LINES = 80
# seconds a wrapper waits for the LLM (HAYHOOKS_PACK_TIMEOUT)
PACK_TIMEOUT = 10.0
HEADER_CONFIG = {
    "0": {
        "headers": {
            "X-OWUI-Chat-Id": "{{CHAT_ID}}",
            "X-OWUI-Message-Id": "{{MESSAGE_ID}}",
            "X-OWUI-Task": "{{TASK}}",
        }
    }
}
WRAPPERS = ("event_pipeline", "enhanced_event_pipeline", "interactive_pipeline", "file_upload_pipeline")
_STATE: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hayhooks: runs the Hayhooks wrappers in a real `hayhooks run` behind Open WebUI 0.12.4 (tests/hayhooks)",
    )


def _unavailable() -> str | None:
    """Why the tier cannot run here, or None."""
    if OWUI_VERSION_TEXT != TIER_VERSION:
        return f"the Hayhooks tier runs on Open WebUI {TIER_VERSION} only (this is {OWUI_VERSION_TEXT})"
    if not HAYHOOKS_EXE.exists():
        return "no .venv-hayhooks (tests/setup/hayhooks.sh makes it)"
    return None


def _must_run() -> bool:
    """Under CI=true a missing .venv-hayhooks is a failure (another Open WebUI version is not)."""
    return os.environ.get("CI", "").lower() == "true" and OWUI_VERSION_TEXT == TIER_VERSION


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tier = [item for item in items if TIER_DIR in Path(str(item.path)).resolve().parents]
    for item in tier:
        item.add_marker(pytest.mark.hayhooks)
    reason = _unavailable()
    if tier and reason and not _must_run():
        # the tier is left out as a whole and named in one line of the summary
        config.hook.pytest_deselected(items=tier)
        items[:] = [item for item in items if item not in tier]
        _STATE["left_out"] = (len(tier), reason)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if "left_out" in _STATE and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK  # `pytest tests/hayhooks` where it cannot run is not an error


def _tier_available() -> None:
    """Fails the tier's tests under CI=true where it cannot run (elsewhere they are left out)."""
    reason = _unavailable()
    if reason:
        pytest.fail(f"{reason}: the Hayhooks tier cannot run under CI", pytrace=False)


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    _tier_available()
    with FakeOpenAI(models=(PACK_MODEL,)) as fake:
        yield fake


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltWrappers:
    _tier_available()
    return build_wrappers(tmp_path_factory.mktemp("hayhooks-pipelines"))


@pytest.fixture(scope="session")
def hayhooks(
    fake_openai: FakeOpenAI, built: BuiltWrappers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HayhooksServer]:
    workdir = tmp_path_factory.mktemp("hayhooks")
    server = HayhooksServer(workdir, built.folder, hayhooks_env(fake_openai.url, timeout=PACK_TIMEOUT))
    _STATE["hayhooks"] = server
    try:
        server.start(expect=tuple(built.ids))
        _STATE["hayhooks_ready"] = server.ready_seconds
        _STATE["hayhooks_rss"] = server.rss_mib()
        yield server
    finally:
        server.stop()


@pytest.fixture
def need_wrapper(built: BuiltWrappers) -> Callable[[str], str]:
    """`need_wrapper(name)`: the model id, or skip the test while that wrapper's source is missing."""

    def need(name: str) -> str:
        if name in built.failed:
            pytest.fail(f"plugins/hayhooks/{name}.py does not build: {built.failed[name]}", pytrace=False)
        if name not in built.ids:
            pytest.skip(f"pending: plugins/hayhooks/{name}.py is not written yet")
        return name

    return need


@pytest.fixture(scope="session")
def owui(hayhooks: HayhooksServer, fake_embeddings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenWebUI]:
    workdir = tmp_path_factory.mktemp("owui-hayhooks")
    extra = {"OPENAI_API_KEYS": "x", "OPENAI_API_CONFIGS": json.dumps(HEADER_CONFIG)}
    server = Server(workdir, f"{hayhooks.url}/v1", fake_embeddings.url, extra_env=extra)
    _STATE["server"] = server
    try:
        server.start()
        _STATE["ready_seconds"] = server.ready_seconds
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if not report.failed or TIER_DIR not in Path(str(item.path)).resolve().parents:
        return report
    names = getattr(item, "fixturenames", ())
    hayhooks = _STATE.get("hayhooks")
    if isinstance(hayhooks, HayhooksServer) and ("hayhooks" in names or "owui" in names):
        report.sections.append(
            (f"hayhooks log (last {LOG_TAIL_LINES} lines of {hayhooks.log_path})", hayhooks.log_tail(LOG_TAIL_LINES))
        )
    server = _STATE.get("server")
    if isinstance(server, Server) and "owui" in names:
        report.sections.append(
            (f"open-webui log (last {LOG_TAIL_LINES} lines of {server.log_path})", server.log_tail(LOG_TAIL_LINES))
        )
    _STATE["failed"] = True
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if "left_out" in _STATE:
        count, reason = _STATE["left_out"]
        terminalreporter.write_line(f"Hayhooks tier skipped ({count} tests): {reason}")
    hayhooks = _STATE.get("hayhooks")
    if not isinstance(hayhooks, HayhooksServer):
        return
    ready, rss = _STATE.get("hayhooks_ready"), _STATE.get("hayhooks_rss")
    figures = f"ready in {ready:.1f} s" if isinstance(ready, float) else "never became ready"
    if isinstance(rss, float):
        figures += f", RSS {rss:.0f} MiB"
    line = f"hayhooks tier: hayhooks {figures}; log {hayhooks.log_path}"
    server = _STATE.get("server")
    if isinstance(server, Server):
        owui_ready = _STATE.get("ready_seconds")
        state = f"ready in {owui_ready:.1f} s" if isinstance(owui_ready, float) else "not ready"
        line += f"; open-webui {state}, log {server.log_path}"
    terminalreporter.write_line(line)
