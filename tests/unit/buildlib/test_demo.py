"""`python3 build.py demo`: its arguments, the message without the test venv, and one real start and stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import build
from buildlib import ROOT
from buildlib import demo as d


def parse(*argv: str) -> d.DemoOptions:
    return d.options_from(build.parser().parse_args(["demo", *argv]))


def test_defaults_and_options(monkeypatch):
    monkeypatch.delenv("VENV", raising=False)
    assert parse() == d.DemoOptions()
    assert parse("--fresh", "--port", "9123", "--data", "here") == d.DemoOptions(Path("here"), True, 9123, None)
    monkeypatch.setenv("VENV", ".venv-other")
    assert parse().venv == Path(".venv-other")


def test_the_command_runs_the_stack_module_with_the_venvs_python(tmp_path):
    line = d.command(tmp_path, d.DemoOptions())
    assert line == [str(tmp_path / ".venv/bin/python"), "-m", "tests.browser.stack", "--data", str(tmp_path / ".demo")]
    line = d.command(tmp_path, d.DemoOptions(data=tmp_path / "x", fresh=True, port=8181, venv=Path("/opt/v")))
    assert line == ["/opt/v/bin/python", "-m", "tests.browser.stack", "--data", str(tmp_path / "x"), "--fresh",
                    "--port", "8181"]  # fmt: skip


def test_a_missing_venv_says_to_run_the_test_command_first(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VENV", raising=False)
    assert build.main(["--root", str(tmp_path), "demo"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"build.py demo: the test venv {tmp_path / '.venv'} with Open WebUI is missing.")
    assert "`bash tests/run.sh`" in out and "Traceback" not in out
    # a venv without Open WebUI is not enough either
    (tmp_path / ".venv/bin").mkdir(parents=True)
    (tmp_path / ".venv/bin/python").write_text("")
    assert d.missing_venv(tmp_path, d.DemoOptions()) is not None
    (tmp_path / ".venv/bin/open-webui").write_text("")
    assert d.missing_venv(tmp_path, d.DemoOptions()) is None


def test_buildlib_demo_imports_only_the_standard_library():
    code = "import sys, buildlib.demo; print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'tests')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_stop_sends_sigint_then_kills_a_child_that_does_not_stop(monkeypatch):
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"]
    )
    monkeypatch.setattr(d, "STOP_TIMEOUT", 0.5)
    time.sleep(0.3)
    d.stop(stubborn)
    assert stubborn.returncode == -signal.SIGKILL


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_in(folder: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == folder:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.host
def test_the_demo_starts_signs_in_and_stops_on_ctrl_c(tmp_path):
    """A real start (about 30 s): the URL and sign-in printed, the models shared, Ctrl-C stops everything."""
    if d.missing_venv(ROOT, d.DemoOptions()):
        pytest.skip("no test venv with Open WebUI")
    data, port = tmp_path / "demo", _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "OPENAI_API_BASE_URL", "OPENAI_API_KEY")}
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "build.py"), "demo", "--data", str(data), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops everything") or child.poll() is not None:
                break
        out = "".join(lines)
        assert f"Open WebUI with the pack is running: http://127.0.0.1:{port}" in out, out
        assert "Gemini:            the loopback fake (tests/fakes)" in out
        assert f"Data: {data}" in out
        email, password = re.search(
            r"sign in as a plain user: +(\S+) / (\S+)", out.replace("or as", "sign in as")
        ).groups()
        token = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auths/signin", json={"email": email, "password": password}
        ).json()["token"]
        models = httpx.get(f"http://127.0.0.1:{port}/api/models", headers={"Authorization": f"Bearer {token}"}).json()
        ids = {m["id"] for m in models["data"]}
        assert {"gemini_manifold.gemini-2.5-flash", "mixture_of_agents"} <= ids  # shared with plain users
        assert _processes_in(data)  # the server runs in its data directory
    finally:
        child.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest, _ = child.communicate(timeout=90)
    assert child.returncode == 0, rest
    assert rest.strip().endswith("Stopped."), rest
    assert _processes_in(data) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/version", timeout=2)
    assert (data / ".gitignore").read_text() == "*\n" and (data / "data").is_dir()  # kept for the next run
