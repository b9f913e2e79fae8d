"""A bystander's latency while another user sends the Mixture of Agents pipe adversarial history.

    .venv/bin/python bench/bench_worker_stall.py [--size 140000] [--requests 30] [--cases think,lt]
        [--versions original,before,after]

A real Open WebUI (the one in this venv; one worker, so one event loop serves everybody) runs with
its OpenAI connection on the loopback fake server. A bystander asks a plain model ("bystander")
`--requests` times in a row; its p95 latency is measured quiet, then while a second client keeps
sending the pipe a chat whose history holds `--size` characters of one adversarial text (a user
message and an earlier assistant reply), and whose first agent answers with that text too.

The same pipe runs in three versions, each deployed under its own id:
  - original: the pipe as first written (`git show ORIGINAL_COMMIT:dist/...`), with lazy
    `<think>.*?</think>` and `<details …>.*?</details>` patterns;
  - before: the pipe as committed (`git show HEAD:dist/...`);
  - after: the pipe built from the sources in this work tree.
Target: with every case, the bystander's p95 stays <= 1.5x its quiet p95 ("after"), the quiet p95
measured again right before each loaded run. The "plain" case is the control: a history as large
with nothing for a pattern to chew on shows what the load costs the bystander apart from any
pattern (Open WebUI reading and forwarding 280 KB bodies back to back on the same event loop).
Versions whose file is not in the history are skipped.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.embeddings import FakeEmbeddings  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402
from tests.host._server import OpenWebUI, Server, add_user, signup_admin  # noqa: E402

ORIGINAL_COMMIT = "4456bdc"  # the last commit before the shared linear scanner (shared/text.py)
DIST = "dist/functions/mixture_of_agents.py"
CASES = {
    "plain": "plain words ",  # the control: as large, nothing for a pattern to chew on
    "think": "<think>",
    "own-block": '<details type="mixture_of_agents">',
    "close": "</think>",
    "lt": "<",
    "cite": "[1] ",
    "ticks": "`",
    "spaces": " ",
}
AGENTS = ("stall-a", "stall-b")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def git_show(commit: str) -> str | None:
    done = subprocess.run(["git", "show", f"{commit}:{DIST}"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def bystander(owui: OpenWebUI, count: int) -> list[float]:
    """Latencies (ms) of `count` plain chats in a row."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        owui.chat("bystander", "Hello?")
        times.append((time.perf_counter() - started) * 1000)
    return times


class Load:
    """Keeps sending the pipe `pipe_id` the adversarial chat until stopped; counts what it sent."""

    def __init__(self, owui: OpenWebUI, pipe_id: str, text: str) -> None:
        self.url, self.token = owui.url, owui.admin.token
        self.pipe_id, self.text = pipe_id, text
        self.stop = threading.Event()
        self.sent = 0
        self.seconds: list[float] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        history = [
            {"role": "user", "content": self.text},
            {"role": "assistant", "content": self.text},
            {"role": "user", "content": "Summarize all that."},
        ]
        with httpx.Client(base_url=self.url, timeout=600) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                client.post(
                    "/api/chat/completions",
                    json={"model": self.pipe_id, "messages": history, "stream": False},
                    headers={"Authorization": f"Bearer {self.token}"},
                )
                self.seconds.append(time.perf_counter() - started)
                self.sent += 1

    def __enter__(self) -> "Load":
        self.thread.start()
        time.sleep(0.3)  # the first request is under way
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=900)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=140_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--versions", default="original,before,after")
    args = parser.parse_args()
    adversarial = {"text": ""}

    with FakeOpenAI(models=(*AGENTS, "stall-agg", "bystander")) as fake, FakeEmbeddings() as embeddings:
        fake.set("stall-a", reply=lambda body: adversarial["text"])  # an agent that answers garbage
        fake.set("stall-b", reply="A short answer.")
        fake.set("stall-agg", reply="The combined answer.", chunk_size=8)
        fake.set("bystander", reply="Hi!")
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            server = Server(workdir, fake.url, embeddings.url)
            try:
                server.start()
                admin = signup_admin(server.url)
                owui = OpenWebUI(server, admin, add_user(server.url, admin), workdir / "deploy")
                (workdir / "deploy").mkdir()
                print(f"Open WebUI {owui.version_text} ready in {server.ready_seconds:.1f} s")
                run(owui, args, adversarial)
            finally:
                server.stop()
    return 0


def deploy_versions(owui: OpenWebUI, wanted: list[str]) -> dict[str, str]:
    """version -> pipe id, each deployed with one layer of two agents."""
    ids: dict[str, str] = {}
    sources = {"original": git_show(ORIGINAL_COMMIT), "before": git_show("HEAD")}
    for version in wanted:
        if version == "after":
            owui.deploy("mixture_of_agents")
            ids[version] = "mixture_of_agents"
        elif sources.get(version):
            ids[version] = f"moa_{version}"
            owui.install(ids[version], sources[version])
        else:
            print(f"{version}: not in the history, skipped")
    valves = {
        "models": list(AGENTS),
        "aggregator_model": "stall-agg",
        "num_layers": 1,
        "num_agents_per_layer": 2,
        "emit_interval": 0.5,
    }
    for pipe_id in ids.values():
        owui.ok("POST", f"/api/v1/functions/id/{pipe_id}/valves/update", json=valves)
    for model in (*AGENTS, "stall-agg", "bystander"):
        owui.wait_for_model(model)
    return ids


def run(owui: OpenWebUI, args: argparse.Namespace, adversarial: dict[str, str]) -> None:
    ids = deploy_versions(owui, args.versions.split(","))
    bystander(owui, 5)  # warm up
    # Quiet is measured again right before each loaded run: other processes on the machine change
    # the bystander's latency over minutes, and the ratio should compare like with like.
    print(f"bystander: {args.requests} plain chats in a row; target: loaded p95 <= 1.5x the quiet p95 before it")
    header = (
        f"{'case':10} {'version':9} {'quiet p95':>10} {'loaded p95':>11} {'ratio':>6} {'pipe runs':>10} {'s each':>7}"
    )
    print(header)
    for case in args.cases.split(","):
        unit = CASES[case]
        adversarial["text"] = (unit * (args.size // len(unit) + 1))[: args.size]
        for version, pipe_id in ids.items():
            quiet = p95(bystander(owui, args.requests))
            with Load(owui, pipe_id, adversarial["text"]) as load:
                loaded = p95(bystander(owui, args.requests))
            each = statistics.median(load.seconds) if load.seconds else float("nan")
            print(
                f"{case:10} {version:9} {quiet:7.1f} ms {loaded:8.1f} ms {loaded / quiet:5.1f}x "
                f"{load.sent:10d} {each:7.2f}"
            )


if __name__ == "__main__":
    sys.exit(main())
