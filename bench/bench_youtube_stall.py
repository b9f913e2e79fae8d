"""Bench: do YouTube fetches stuck on a dead proxy stall other chats? Before and after, side by side.

    .venv/bin/python bench/bench_youtube_stall.py [--calls 16] [--timeout 10]

Starts a real Open WebUI (tests/host/_server.py, loopback fakes only) and installs two copies of the
youtube_transcript tool: "before" is the last committed build (`git show HEAD:dist/tools/
youtube_transcript.py`, installed as youtube_transcript_before), "after" is built from the current
sources. For each, `--calls` tool calls go through the real native tool loop with PROXY_URL at a
black hole (tests/fakes/youtube.py BlackHole: accepts, never answers) and REQUEST_TIMEOUT =
`--timeout`. While they are in flight it times two kinds of other chats, against the same chats
on a quiet server:
- a plain chat to the fake OpenAI model;
- a chat whose reply needs one job on asyncio's default executor (the test-only stall probe pipe),
  as Open WebUI's own chat path does for an attached image (`Storage.get_file` through
  asyncio.to_thread in open_webui/utils/files.py, 0.12.4).
Target: each within 1.5x of quiet. Also printed: how many connections the fetches opened, how many
opened after the tool had already answered some call (queued fetches started late), and how long
the last fetch held its thread after the last call was answered. Nothing here is asserted by tests
(tests/host/test_youtube_transcript.py proves the same structurally).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.embeddings import FakeEmbeddings  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402
from tests.fakes.youtube import STALL_PROBE_PIPE, BlackHole  # noqa: E402
from tests.host._server import OpenWebUI, Server, add_user, signup_admin  # noqa: E402
from tests.host._socket import SocketClient  # noqa: E402

TOOL = "youtube_transcript"
BEFORE = "youtube_transcript_before"
PROBE = "youtube_stall_probe"
FUNCTION = "get_youtube_transcript"
VIDEO = "https://www.youtube.com/watch?v=abcDEF12_-x"


def timed_ms(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def other_chats(owui: OpenWebUI, rounds: int) -> dict[str, list[float]]:
    """Latency (ms) of a plain chat and of a chat that needs the default executor, `rounds` of each."""
    samples: dict[str, list[float]] = {"plain": [], "executor": []}
    for i in range(rounds):
        samples["plain"].append(timed_ms(lambda i=i: owui.text_of(owui.chat("fake-gpt", f"hello {i}"))))
        samples["executor"].append(timed_ms(lambda: owui.text_of(owui.chat(PROBE, "[]"))))
    return samples


def stalled_run(owui: OpenWebUI, socket: SocketClient, tool_id: str, calls: int, timeout: float) -> dict:
    """`calls` black-holed tool calls; the other chats timed while they are in flight."""
    with BlackHole() as hole:
        owui.ok(
            "POST",
            f"/api/v1/tools/id/{tool_id}/valves/update",
            json={"PROXY_URL": hole.url, "REQUEST_TIMEOUT": timeout, "GET_VIDEO_DETAILS": False},
        )
        answered: list[float] = []
        lock = threading.Lock()

        def one_call() -> str:
            result = owui.run_tool(tool_id, FUNCTION, {"url": VIDEO}, socket, timeout=timeout * 6 + 60).result
            with lock:
                answered.append(time.monotonic())
            return result

        with ThreadPoolExecutor(calls) as clients:
            started = time.monotonic()
            runs = [clients.submit(one_call) for _ in range(calls)]
            # until the fetches that get a thread have all connected (none new for a second)
            last_change, seen = time.monotonic(), 0
            while time.monotonic() - started < timeout * 0.6 and (seen == 0 or time.monotonic() - last_change < 1.0):
                if hole.accepted != seen:
                    last_change, seen = time.monotonic(), hole.accepted
                time.sleep(0.05)
            held_while_timed = hole.accepted
            during = other_chats(owui, 3)
            results = [run.result() for run in runs]
        last_answer = max(answered)
        first_answer = min(answered)
        end = time.monotonic() + timeout * 3
        while hole.closed < hole.accepted and time.monotonic() < end:
            time.sleep(0.05)
        late = sum(1 for at in hole.accepted_at if at > first_answer)
        held_after = max([*hole.closed_at, last_answer]) - last_answer
        return {
            "during": during,
            "connections": hole.accepted,
            "held_while_timed": held_while_timed,
            "late_starts": late,
            "open_at_last_answer": sum(1 for at in hole.accepted_at if at <= last_answer)
            - sum(1 for at in hole.closed_at if at <= last_answer),
            "held_after_s": held_after,
            "answers_s": (first_answer - started, last_answer - started),
            "busy": sum("busy with other requests" in r for r in results),
            "timed_out": sum("did not answer within" in r for r in results),
        }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(quiet: dict[str, list[float]], runs: dict[str, dict], calls: int, timeout: float) -> None:
    print(f"\n{calls} black-holed calls, REQUEST_TIMEOUT {timeout:g} s; other chats: median of the samples (ms)")
    header = f"{'':<44}{'before (HEAD)':>18}{'after':>18}"
    print(header)
    print("-" * len(header))
    for kind, label in (("plain", "plain chat"), ("executor", "chat needing the default executor")):
        base = median(quiet[kind])
        print(f"{label + ', quiet':<44}{base:>18.0f}{base:>18.0f}")
        row = [median(runs[name]["during"][kind]) for name in ("before", "after")]
        print(f"{label + ', during the calls':<44}{row[0]:>18.0f}{row[1]:>18.0f}")
        ratios = [r / base for r in row]
        verdicts = ["ok" if r <= 1.5 else "OVER" for r in ratios]
        cells = [f"{ratio:.2f}x {verdict}" for ratio, verdict in zip(ratios, verdicts, strict=True)]
        print(f"{'  ratio (target <= 1.5x)':<44}{cells[0]:>18}{cells[1]:>18}")
    rows = (
        ("connections the fetches opened", "connections", "{:d}"),
        ("  of them while the chats were timed", "held_while_timed", "{:d}"),
        ("  opened after the tool answered a call", "late_starts", "{:d}"),
        ("  still open at the last answer", "open_at_last_answer", "{:d}"),
        ("thread held after the last answer (s)", "held_after_s", "{:.1f}"),
        ("answers: timed out / busy", None, None),
        ("first / last answer after the start (s)", "answers_s", None),
    )
    for label, key, fmt in rows:
        cells = []
        for name in ("before", "after"):
            run = runs[name]
            if key is None:
                cells.append(f"{run['timed_out']} / {run['busy']}")
            elif key == "answers_s":
                cells.append(f"{run[key][0]:.1f} / {run[key][1]:.1f}")
            else:
                cells.append(fmt.format(run[key]))
        print(f"{label:<44}{cells[0]:>18}{cells[1]:>18}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    before_text = subprocess.run(
        ["git", "show", "HEAD:dist/tools/youtube_transcript.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    with FakeOpenAI() as openai, FakeEmbeddings() as embeddings, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = Server(workdir, openai.url, embeddings.url)
        server.start()
        socket = None
        owui = None
        try:
            admin = signup_admin(server.url)
            user = add_user(server.url, admin)
            (workdir / "deploy").mkdir()
            owui = OpenWebUI(server, admin, user, workdir / "deploy")
            print(f"open-webui {owui.version_text} ready in {server.ready_seconds:.1f} s")
            owui.deploy(TOOL)
            owui.install(BEFORE, before_text, kind="tool")
            owui.install(PROBE, STALL_PROBE_PIPE)
            socket = SocketClient(server.url, admin.token, name="bench-socket").connect()
            owui.run_tool(TOOL, FUNCTION, {"url": "https://vimeo.com/1"}, socket)  # installs the driver pipe
            other_chats(owui, 5)  # warm up
            quiet = other_chats(owui, 5)
            runs = {}
            for name, tool_id in (("before", BEFORE), ("after", TOOL)):
                runs[name] = stalled_run(owui, socket, tool_id, args.calls, args.timeout)
            report(quiet, runs, args.calls, args.timeout)
        finally:
            if socket is not None:
                socket.disconnect()
            if owui is not None:
                owui.close()
            server.stop()


if __name__ == "__main__":
    main()
