"""`python3 build.py demo`: a local Open WebUI 0.12.4 with the pack, from the suite's venv.

The work happens in a child process run by the venv's python (`-m tests.browser.stack`): Open WebUI,
the loopback fakes and the deploy need the venv's packages, and build.py must stay stdlib-only. This
module only finds the venv, builds the command and stops the child (by its PID) on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUNNER = "tests.browser.stack"  # starts the fakes, the server, the accounts and the deploy
DEFAULT_DATA = ".demo"  # under the repository; it holds its own .gitignore
DEFAULT_VENV = ".venv"  # what `bash tests/run.sh` (the README's test command) makes
STOP_TIMEOUT = 60.0  # seconds the child gets to stop the server after Ctrl-C


@dataclass
class DemoOptions:
    data: Path | None = None
    fresh: bool = False
    port: int | None = None
    venv: Path | None = None


def add_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run a local Open WebUI with the pack deployed (needs the test venv)")
    demo.add_argument(
        "--data", type=Path, default=None, help=f"data directory, reused next time (default: {DEFAULT_DATA}/)"
    )
    demo.add_argument("--fresh", action="store_true", help="delete the data directory first")
    demo.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: 8080 when free)")


def options_from(args: argparse.Namespace) -> DemoOptions:
    venv = os.environ.get("VENV")  # as tests/run.sh takes it
    return DemoOptions(data=args.data, fresh=args.fresh, port=args.port, venv=Path(venv) if venv else None)


def venv_python(root: Path, venv: Path | None = None) -> Path:
    folder = venv if venv is not None else root / DEFAULT_VENV
    return (folder if folder.is_absolute() else root / folder) / "bin" / "python"


def missing_venv(root: Path, options: DemoOptions) -> str | None:
    """The sentence to print when the suite's venv (with Open WebUI) is not there, else None."""
    python = venv_python(root, options.venv)
    if python.exists() and (python.parent / "open-webui").exists():
        return None
    where = python.parent.parent
    return (
        f"build.py demo: the test venv {where} with Open WebUI is missing. Run the README's test command "
        "first (`bash tests/run.sh`, which makes it), then `python3 build.py demo` again."
    )


def command(root: Path, options: DemoOptions) -> list[str]:
    data = options.data if options.data is not None else root / DEFAULT_DATA
    line = [str(venv_python(root, options.venv)), "-m", RUNNER, "--data", str(data.resolve())]
    if options.fresh:
        line.append("--fresh")
    if options.port is not None:
        line += ["--port", str(options.port)]
    return line


def demo(root: Path, options: DemoOptions) -> int:
    problem = missing_venv(root, options)
    if problem:
        print(problem)
        return 1
    child = subprocess.Popen(command(root, options), cwd=root)  # noqa: S603 (our own venv and module)
    try:
        return child.wait()
    except KeyboardInterrupt:
        # the terminal sent SIGINT to the child too; send it again for a child started otherwise
        stop(child)
        return 0


def stop(child: subprocess.Popen) -> None:
    """Ask the child to stop everything it started; kill it (by PID) if it does not in time."""
    if child.poll() is not None:
        return
    try:
        child.send_signal(signal.SIGINT)
        child.wait(timeout=STOP_TIMEOUT)
    except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
        child.terminate()
        child.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
