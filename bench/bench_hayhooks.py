"""The Hayhooks wrappers: what their events cost, and what `hayhooks run` with the pack costs.

    bash tests/setup/hayhooks.sh            # once: .venv-hayhooks
    .venv/bin/python bench/bench_hayhooks.py [--runs 7] [--chunks 1000]

The loopback fake OpenAI server streams a reply of `chunks` content chunks to every wrapper.

(a) Through Hayhooks alone (a streamed POST /v1/chat/completions read to the end): event_pipeline
    with a status every 10 chunks (HAYHOOKS_PACK_PROGRESS_EVERY=10, HAYHOOKS_PACK_STATUS_INTERVAL=0,
    so every one goes out: 100 statuses) against the same wrapper with none. Two `hayhooks run`
    processes, one per setting (the wrappers read the environment at setup). Target: ratio <= 1.10.
(b) Through Open WebUI 0.12.4 (a UI-like chat, to the final `chat:completion` on the socket):
    interactive_pipeline with its defaults (a "writing" status every 10 chunks, coalesced to one per
    0.5 s, sources, follow-ups, plus its follow-up LLM call) against a bench-only wrapper that streams
    the same text through the same generator with no events. Target: ratio <= 1.20.
(c) `hayhooks run` start-up: until /status lists every wrapper, and its RSS then, with the pack's
    wrappers and with an empty pipelines dir.

Figures are medians of `runs` runs after one warm-up run; timing is never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.embeddings import FakeEmbeddings
from tests.fakes.openai_server import FakeOpenAI
from tests.hayhooks._hayhooks import (
    HAYHOOKS_EXE,
    PACK_MODEL,
    HayhooksServer,
    build_wrappers,
    hayhooks_env,
    stream_chat,
    text_and_events,
)

WRAPPERS = ("event_pipeline", "enhanced_event_pipeline", "interactive_pipeline", "file_upload_pipeline")
PLAIN = "bench_plain"
EVERY = "bench_interactive_every_status"
LABELS = {
    PLAIN: "no events (passthrough wrapper)",
    "interactive_pipeline": "interactive_pipeline (defaults)",
    EVERY: "interactive_pipeline, no coalescing",
}
# a passthrough wrapper: the LLM's text through Hayhooks' streaming generator, no events at all
PLAIN_WRAPPER = """
import os

from hayhooks import BasePipelineWrapper, async_streaming_generator
from haystack import Pipeline
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.dataclasses import ChatMessage
from haystack.utils import Secret


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        self.pipeline = Pipeline()
        self.pipeline.add_component("llm", OpenAIChatGenerator(
            api_key=Secret.from_token(os.environ["OPENAI_API_KEY"]), model=os.environ["HAYHOOKS_PACK_MODEL"],
            api_base_url=os.environ["OPENAI_BASE_URL"], max_retries=0, timeout=60))

    async def run_chat_completion_async(self, model, messages, body):
        chat = [ChatMessage.from_user(str(m.get("content") or "")) for m in messages if m.get("role") == "user"]

        async def text():
            async for chunk in async_streaming_generator(self.pipeline, pipeline_run_args={"llm": {"messages": chat}}):
                if getattr(chunk, "content", None):
                    yield chunk.content

        return text()
"""


def reply_of(chunks: int) -> str:
    return "".join(f"w{i:04d} " for i in range(chunks))  # 6 characters a chunk


def median_seconds(run, runs: int) -> float:
    run()  # warm-up: imports, connections, the first pipeline run
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def hayhooks_alone(fake: FakeOpenAI, workdir: Path, runs: int, chunks: int) -> dict:
    built = build_wrappers(workdir / "pipelines-a", only={"event_pipeline"})
    results = {}
    for label, every in (("none", "0"), ("status every 10 chunks", "10")):
        env = hayhooks_env(fake.url)
        env.update({"HAYHOOKS_PACK_PROGRESS_EVERY": every, "HAYHOOKS_PACK_STATUS_INTERVAL": "0"})
        run_dir = workdir / f"a-{every}"
        run_dir.mkdir()
        server = HayhooksServer(run_dir, built.folder, env).start(expect=("event_pipeline",))
        try:
            seen: dict = {}

            def once(server=server, seen=seen) -> None:
                text, events = text_and_events(stream_chat(server.url, "event_pipeline", "go", timeout=120))
                seen["events"], seen["chars"] = len(events), len(text)

            results[label] = (median_seconds(once, runs), seen["events"], seen["chars"])
        finally:
            server.stop()
    return results


def through_open_webui(fake: FakeOpenAI, workdir: Path, runs: int) -> dict:
    from tests.host._server import Server, signup_admin
    from tests.host._socket import SocketClient

    built = build_wrappers(workdir / "pipelines-b", only={"interactive_pipeline"})
    (built.folder / PLAIN).mkdir()
    (built.folder / PLAIN / "pipeline_wrapper.py").write_text(PLAIN_WRAPPER, encoding="utf-8")
    # a bench-only copy that sends every status (no 0.5 s coalescing): the wrappers read their
    # settings from the server's environment, which one `hayhooks run` shares
    wrapper = (built.folder / "interactive_pipeline" / "pipeline_wrapper.py").read_text(encoding="utf-8")
    every = wrapper.replace(
        "PackConfig.from_env(progress_every=10)",
        'PackConfig.from_env({**os.environ, "HAYHOOKS_PACK_STATUS_INTERVAL": "0"}, progress_every=10)',
    )
    if every != wrapper and "\nimport os\n" in every:
        (built.folder / EVERY).mkdir()
        (built.folder / EVERY / "pipeline_wrapper.py").write_text(every, encoding="utf-8")
    hayhooks_dir = workdir / "b-hayhooks"
    hayhooks_dir.mkdir()
    hayhooks = HayhooksServer(hayhooks_dir, built.folder, hayhooks_env(fake.url))
    variants = (PLAIN, "interactive_pipeline", *((EVERY,) if (built.folder / EVERY).is_dir() else ()))
    hayhooks.start(expect=variants)
    results = {}
    with FakeEmbeddings() as embeddings:
        owui_dir = workdir / "b-owui"
        owui_dir.mkdir()
        server = Server(owui_dir, f"{hayhooks.url}/v1", embeddings.url, extra_env={"OPENAI_API_KEYS": "x"})
        socket = None
        try:
            server.start()
            admin = signup_admin(server.url)
            from tests.host._server import OpenWebUI

            owui = OpenWebUI(server, admin, admin, owui_dir)
            owui.wait_for_model("interactive_pipeline")
            socket = SocketClient(server.url, admin.token).connect()
            for model in variants:
                label = LABELS[model]
                seen: dict = {}

                def once(model=model, seen=seen) -> None:
                    socket.clear()
                    done = owui.chat_background(model, "go", socket, timeout=300)
                    seen["statuses"] = sum(1 for e in socket.events if e["data"].get("type") == "status")
                    seen["chars"] = len(str(done.get("content") or ""))

                results[label] = (median_seconds(once, runs), seen["statuses"], seen["chars"])
            owui.close()
        finally:
            if socket is not None:
                socket.disconnect()
            server.stop()
            hayhooks.stop()
    return results


def startup(fake: FakeOpenAI, workdir: Path, runs: int) -> dict:
    built = build_wrappers(workdir / "pipelines-c", only=set(WRAPPERS))
    empty = workdir / "pipelines-empty"
    empty.mkdir()
    results = {}
    for label, folder, expect in (
        ("empty pipelines dir", empty, ()),
        ("the pack's 4 wrappers", built.folder, WRAPPERS),
    ):
        ready, rss = [], []
        for n in range(max(3, runs // 2)):
            run_dir = workdir / f"c-{len(results)}-{n}"
            run_dir.mkdir()
            server = HayhooksServer(run_dir, folder, hayhooks_env(fake.url)).start(expect=tuple(expect))
            try:
                ready.append(server.ready_seconds or 0.0)
                rss.append(server.rss_mib() or 0.0)
            finally:
                server.stop()
        results[label] = (statistics.median(ready), statistics.median(rss))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--skip-open-webui", action="store_true", help="leave out (b)")
    args = parser.parse_args()
    if not HAYHOOKS_EXE.exists():
        print(f"{HAYHOOKS_EXE} not found: run `bash tests/setup/hayhooks.sh` first", file=sys.stderr)
        return 1
    text = reply_of(args.chunks)
    with FakeOpenAI(models=(PACK_MODEL,)) as fake, tempfile.TemporaryDirectory() as tmp:
        # the streamed answer: `chunks` chunks; a plain call (interactive_pipeline's follow-ups): a list
        fake.set(PACK_MODEL, reply=lambda body: text if body.get("stream") else json.dumps(["Next?"]), chunk_size=6)
        workdir = Path(tmp)
        print(f"reply: {args.chunks} chunks of 6 characters; medians of {args.runs} runs after a warm-up\n")
        a = hayhooks_alone(fake, workdir, args.runs, args.chunks)
        print("(a) through Hayhooks alone, event_pipeline")
        for label, (seconds, events, chars) in a.items():
            print(f"    {label:<34} {seconds * 1000:8.1f} ms   {events:4d} events  {chars} characters")
        ratio_a = a["status every 10 chunks"][0] / a["none"][0]
        print(f"    ratio {ratio_a:.3f} (target <= 1.10)\n")
        if not args.skip_open_webui:
            b = through_open_webui(fake, workdir, args.runs)
            print("(b) through Open WebUI 0.12.4 and Hayhooks, UI-like chat to the final chat:completion")
            for label, (seconds, statuses, chars) in b.items():
                print(f"    {label:<34} {seconds * 1000:8.1f} ms   {statuses:4d} statuses  {chars} characters")
            plain = b[LABELS[PLAIN]][0]
            print(f"    ratio {b[LABELS['interactive_pipeline']][0] / plain:.3f} (target <= 1.20)")
            if LABELS[EVERY] in b:
                print(f"    ratio without coalescing {b[LABELS[EVERY]][0] / plain:.3f} (for comparison)")
            print()
        c = startup(fake, workdir, args.runs)
        print("(c) `hayhooks run` start-up (until /status lists every wrapper) and RSS then")
        for label, (seconds, rss) in c.items():
            print(f"    {label:<34} {seconds:6.2f} s   RSS {rss:5.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
