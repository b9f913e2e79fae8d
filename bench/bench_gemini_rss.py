"""Memory of the Gemini manifold over many requests: in-process, the real google-genai SDK, the fake Gemini.

    .venv/bin/python bench/bench_gemini_rss.py [--requests 3000] [--keys 1] [--tracemalloc]

Runs the built plugin's pipe() like Open WebUI does (streamed chat replies, each with its own chat
message id, Google Search sources every tenth reply, a user key per request out of `--keys`), and
prints the process RSS after warm-up and every 500 requests, then the growth per request. With
`--tracemalloc` it also prints the ten allocation sites that grew most between warm-up and the end
(slower). In-process rather than through a real Open WebUI: on this 2-core machine shared with other
work, the host's own noise (its database, socket.io, logging) swamps a per-request figure.
"""

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes import gemini as g  # noqa: E402
from tests.helpers import load_built  # noqa: E402

KEY = "AIzaSyBENCH-key-0123456789abcdefghijkl"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(pipe, n: int, keys: int, offset: int) -> None:
    for i in range(offset, offset + n):
        user = {"id": f"u{i % keys}", "role": "user", "valves": pipe.UserValves()}
        if keys > 1:
            user["valves"] = pipe.UserValves(GOOGLE_API_KEY=f"{KEY}{i % keys}")
        body = {
            "model": "gemini_manifold.gemini-2.5-flash",
            "messages": [{"role": "user", "content": f"question {i}"}],
            "stream": True,
        }
        metadata = {"chat_id": f"c{i}", "message_id": f"m{i}"}
        result = await pipe.pipe(body, __user__=user, __event_emitter__=_sink, __metadata__=metadata)
        async for _ in result:
            pass


async def _sink(event: dict) -> None:
    pass


def script(fake: g.FakeGemini, n: int) -> None:
    items = []
    for i in range(n):
        if i % 10 == 0:
            answer = f"Answer {i} about Lisbon."
            items.append(
                [
                    g.text(answer),
                    g.grounded([(f"https://s.example/{i}", f"Source {i}")], [f"q{i}"], [(answer, [0])], answer=answer),
                    g.finish(),
                ]
            )
        else:
            items.append(g.reply(f"Answer {i} " + "x" * 200))
    fake.script(*items)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--keys", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    mod = load_built("gemini_manifold")
    with g.FakeGemini() as fake:
        pipe = mod.Pipe()
        pipe.valves = pipe.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=fake.url)
        loaded = rss_mib()
        print(f"plugin loaded, SDK not yet imported: RSS {loaded:.1f} MiB")
        script(fake, 1)
        await drive(pipe, 1, args.keys, 0)
        print(
            f"after the first request (SDK imported, one client): RSS {rss_mib():.1f} MiB ({rss_mib() - loaded:+.1f})"
        )
        script(fake, args.warmup)
        await drive(pipe, args.warmup, args.keys, 1)
        fake.requests.clear()
        gc.collect()
        if args.tracemalloc:
            tracemalloc.start(12)
            before = tracemalloc.take_snapshot()
        start_rss, started = rss_mib(), time.perf_counter()
        print(f"after {args.warmup} warm-up requests: RSS {start_rss:.1f} MiB")
        done = 0
        while done < args.requests:
            step = min(500, args.requests - done)
            script(fake, step)
            await drive(pipe, step, args.keys, 1 + args.warmup + done)
            fake.requests.clear()  # the fake's own log of requests is not the plugin's memory
            done += step
            gc.collect()
            print(f"after {done:5d} requests: RSS {rss_mib():.1f} MiB")
        growth = rss_mib() - start_rss
        seconds = time.perf_counter() - started
        print(
            f"growth over {args.requests} requests: {growth:+.1f} MiB "
            f"({growth * 1024 * 1024 / args.requests:+.0f} B per request), {args.requests / seconds:.0f} requests/s"
        )
        caches = {
            "clients": len(pipe._clients),
            "listings": len(pipe._listings),
            "uploads": len(pipe._uploads),
            "server_parts": len(pipe._server_parts),
            "shown": len(pipe._shown),
        }
        print("plugin caches:", caches)
        if args.tracemalloc:
            after = tracemalloc.take_snapshot()
            for stat in after.compare_to(before, "traceback")[:10]:
                frame = stat.traceback[-1]
                print(f"  {stat.size_diff / 1024:+8.1f} KiB {stat.count_diff:+6d}  {frame.filename}:{frame.lineno}")


if __name__ == "__main__":
    asyncio.run(main())
