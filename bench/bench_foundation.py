"""Foundation figures: build time, load time of each built file, cost of events.

    .venv/bin/python bench/bench_foundation.py

Targets (issue 2): whole build <= 1 s; each built file exec'd and instantiated <= 50 ms;
one status emit <= 20 us; 10,000 status updates at a 0.5 s interval deliver <= 3 events,
the last being the final one.
"""

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import build  # noqa: E402
from shared.events import Emitter  # noqa: E402


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


def bench_build(runs: int = 5) -> None:
    wall = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "build.py"), "--check"], check=True, capture_output=True)
        wall.append(time.perf_counter() - started)
    full = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "build.py")], check=True, capture_output=True)
        full.append(time.perf_counter() - started)
    print(f"build.py --check (whole tree, new process): median {median_ms(wall)} over {runs} runs")
    print(f"build.py with load check (whole tree, new process): median {median_ms(full)}  target <= 1000 ms")


def bench_load(runs: int = 20) -> None:
    plugins, _ = build.render_all(ROOT)
    # Open WebUI has pydantic, aiohttp, ... imported already: warm the imports once.
    build.load_check(plugins, strict=False)
    print(f"exec + instantiate like Open WebUI (median of {runs}, imports warm; target <= 50 ms):")
    for plugin in plugins:
        try:
            samples = [build.load_like_open_webui(plugin) for _ in range(runs)]
        except build.MissingPackage as exc:
            print(f"  {plugin.dist}: skipped, package {exc} not installed")
            continue
        print(f"  {plugin.dist:48s} {median_ms(samples)}")


async def bench_events() -> None:
    async def sink(event):
        pass

    n = 10_000
    emitter = Emitter(sink)
    started = time.perf_counter()
    for i in range(n):
        await emitter.status(f"step {i}")
    per_sent = (time.perf_counter() - started) / n * 1e6

    emitter = Emitter(sink, status_interval=0.5)
    await emitter.status("warm")
    started = time.perf_counter()
    for i in range(n):
        await emitter.status(f"step {i}")
    per_coalesced = (time.perf_counter() - started) / n * 1e6
    print(f"one status emit, delivered: {per_sent:.2f} us; coalesced: {per_coalesced:.2f} us  target <= 20 us")

    delivered = []

    async def record(event):
        delivered.append(event)

    emitter = Emitter(record, status_interval=0.5)
    started = time.perf_counter()
    for i in range(n - 1):
        await emitter.status(f"step {i}")
    await emitter.status("final", done=True)
    burst = time.perf_counter() - started
    await asyncio.sleep(0.6)  # a pending update must not arrive after the final one
    last = delivered[-1]["data"]
    print(
        f"burst of {n} status updates at 0.5 s interval ({burst * 1000:.0f} ms): {len(delivered)} delivered "
        f"(target <= 3), last = {last['description']!r} done={last['done']}"
    )


def main() -> None:
    bench_build()
    bench_load()
    asyncio.run(bench_events())


if __name__ == "__main__":
    main()
