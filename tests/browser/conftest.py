"""Browser tier: the pack as a person sees it, in headless Chromium against a real Open WebUI 0.12.4.

Run: `.venv/bin/python -m pytest tests/browser -q` after `bash tests/setup/browser.sh` (Playwright for
Python from PyPI into .venv; Debian's chromium with apt-get when root). Without Playwright or a
Chromium the tier is skipped with one line saying so; under `CI=true` that skip fails the run.
Chromium is Debian's (`chromium` on PATH, or the file BROWSER_CHROMIUM names), launched through
Playwright's `executable_path`: Playwright's own browser download cannot work offline.

One server for the session (tests/browser/stack.py: the host tier's Server and fakes, the pack built
from the sources and installed with `build.py deploy --share-tools --share-models`), one Chromium, one
browser context per account, each signed in once through the login page. Every test gets the `browser`
marker (`-m browser` / `-m "not browser"`).

SESSION FIXTURES
`stack` — the running tests.browser.stack.Stack: `.url`, `.admin`, `.user` (User with `.token`),
  `.gemini` (FakeGemini; `gemini_route` answers), `.openai` (FakeOpenAI: moa-a, moa-b, moa-agg),
  `.server.log_path`. `api(method, path, token=None, json=None)` → decoded JSON (asserts 2xx).
`admin_page`, `user_page` — a Playwright Page signed in as that account (function fixtures over
  session-wide contexts; the page is where the last test left it: start with page.new_chat or goto).

FUNCTION FIXTURES
`shots` — `shots.step("name")` keeps a screenshot of the page when `--screenshots DIR` (or env
  BROWSER_SCREENSHOTS=DIR) is given; a failing test always leaves `<test>.png` and `<test>.console.log`
  next to the server log (the path is printed at the end).

NO REQUEST LEAVES 127.0.0.1: each context routes every request; any other host is aborted and
recorded, and a test during which one was tried fails at teardown.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

BROWSER_DIR = Path(__file__).resolve().parent
ENABLE = "bash tests/setup/browser.sh"
_STATE: dict[str, Any] = {"figures": {}, "artifacts": []}
# what the page's buttons are called in Open WebUI 0.12.4 (src/lib/components)
CHANGELOG_OK = "Okay, Let's Go!"  # the "what's new" dialog an admin gets on first sign-in


def chromium_path() -> str | None:
    named = os.environ.get("BROWSER_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the tier cannot run here (one plain sentence), or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed in this venv"
    if chromium_path() is None:
        return "no Chromium found (chromium on PATH, or BROWSER_CHROMIUM)"
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        default=os.environ.get("BROWSER_SCREENSHOTS"),
        metavar="DIR",
        help="browser tier: keep a screenshot of every step in DIR (env BROWSER_SCREENSHOTS)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: runs in headless Chromium against a real Open WebUI")
    config.addinivalue_line(
        "markers",
        "tolerate_blocked(pattern, reason): requests to URLs matching `pattern` that Open WebUI's own "
        "frontend makes are still blocked, but do not fail this test",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name.startswith("test_") and BROWSER_DIR in collection_path.resolve().parents:
        reason = missing()
        if reason:
            _STATE["skipped"] = reason
            return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _STATE.get("skipped") and os.environ.get("CI") == "true" and exitstatus in (0, 5):
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    write = terminalreporter.write_line
    if _STATE.get("skipped"):
        ci = " (CI=true: a skipped browser tier fails the run)" if os.environ.get("CI") == "true" else ""
        write(f"browser tier skipped: {_STATE['skipped']}; run `{ENABLE}` to enable it{ci}")
        return
    stack = _STATE.get("stack")
    if stack is None:
        return
    checks = _STATE.get("checks", 0)
    started = _STATE.get("started")
    took = f", {time.monotonic() - started:.0f} s since the server start" if started else ""
    write(f"browser tier: {checks} page checks{took}; open-webui log {stack.server.log_path}")
    for name, seconds in sorted(_STATE["figures"].items()):
        write(f"  Enter to first streamed word, {name}: {seconds * 1000:.0f} ms")
    for path in _STATE["artifacts"]:
        write(f"  failure artifact: {path}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# --- the server -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.browser.stack import Stack

    _STATE["started"] = time.monotonic()
    running = Stack(tmp_path_factory.mktemp("browser"))
    _STATE["stack"] = running
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(running.workdir / "data", ignore_errors=True)  # the log and the artifacts stay


def api(stack: Any, method: str, path: str, *, token: str | None = None, json: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token or stack.admin.token}"}
    response = httpx.request(method, stack.url + path, headers=headers, json=json, timeout=60)
    if not response.is_success:
        raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text[:1000]}")
    return response.json()


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            # --no-sandbox: Chromium's sandbox needs user namespaces, which containers and root lack
            args=["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


class Session:
    """One account's browser context and page, signed in through the login page."""

    def __init__(self, browser: Any, url: str, email: str, password: str) -> None:
        self.url = url
        self.blocked: list[str] = []
        self.console: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
        self.context.set_default_timeout(20_000)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.console.append(f"[{m.type}] {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"[pageerror] {e}"))
        # the "what's new" dialog (admins, first sign-in) is closed whenever it is in the way
        self.page.add_locator_handler(
            self.page.get_by_role("button", name=CHANGELOG_OK), lambda button: button.click(), no_wait_after=True
        )
        self.sign_in(email, password)

    def _route(self, route: Any) -> None:
        url = route.request.url
        scheme, host = urlsplit(url).scheme, urlsplit(url).hostname
        if scheme in ("data", "blob") or host == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def sign_in(self, email: str, password: str) -> None:
        page = self.page
        page.goto(self.url + "/auth")
        page.locator("input[name=email]").fill(email)
        page.locator("input[name=password]").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda u: "/auth" not in u, timeout=60_000)
        page.locator("#chat-input").wait_for()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.context.close()


@pytest.fixture(scope="session")
def sessions(chromium: Any, stack: Any) -> Iterator[dict[str, Session]]:
    from tests.browser.stack import ADMIN, USER

    made: dict[str, Session] = {}
    try:
        made["admin"] = Session(chromium, stack.url, ADMIN[1], ADMIN[2])
        made["user"] = Session(chromium, stack.url, USER[1], USER[2])
        yield made
    finally:
        for session in made.values():
            session.close()


class Shots:
    def __init__(self, request: pytest.FixtureRequest, folder: str | None) -> None:
        self.name = re.sub(r"[^\w.-]+", "_", request.node.name)
        self.folder = Path(folder) if folder else None
        self.pages: list[Any] = []
        self.count = 0

    def step(self, label: str, page: Any | None = None) -> None:
        if self.folder is None:
            return
        self.count += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        target = page or self.pages[-1]
        slug = re.sub(r"[^\w.-]+", "_", label)
        name = f"{self.name}-{self.count:02d}-{slug}.png"
        with contextlib.suppress(Exception):
            target.screenshot(path=str(self.folder / name), full_page=True)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request, request.config.getoption("--screenshots"))


def _page_fixture(request: pytest.FixtureRequest, who: str) -> Iterator[Any]:
    sessions: dict[str, Session] = request.getfixturevalue("sessions")
    stack = request.getfixturevalue("stack")
    shots: Shots = request.getfixturevalue("shots")
    session = sessions[who]
    session.blocked.clear()
    session.console.clear()
    page = session.page  # where the last test left it: each test opens the page it needs
    shots.pages.append(page)
    yield page
    shots.step("end", page)
    failed = any(getattr(getattr(request.node, f"report_{w}", None), "failed", False) for w in ("setup", "call"))
    if failed:  # the page and its console, next to the server log
        base = stack.workdir / f"{shots.name}.{who}"
        with contextlib.suppress(Exception):
            page.screenshot(path=f"{base}.png", full_page=True)
            _STATE["artifacts"].append(f"{base}.png")
        Path(f"{base}.console.log").write_text("\n".join(session.console) + "\n", encoding="utf-8")
        _STATE["artifacts"].append(f"{base}.console.log")
    tolerated = [re.compile(m.args[0]) for m in request.node.iter_markers("tolerate_blocked")]
    tried = [url for url in session.blocked if not any(p.search(url) for p in tolerated)]
    assert not tried, f"the page tried to reach hosts other than 127.0.0.1: {tried}"


@pytest.fixture
def admin_page(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _page_fixture(request, "admin")


@pytest.fixture
def user_page(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _page_fixture(request, "user")


def count_check(n: int = 1) -> None:
    """Counts page checks for the closing figures (`check()` in tests/browser/page.py calls it)."""
    _STATE["checks"] = _STATE.get("checks", 0) + n


def record_figure(name: str, seconds: float) -> None:
    _STATE["figures"][name] = seconds
