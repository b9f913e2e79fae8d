"""Foundation figures: build time, load time and size of each built file, cost of events.

    .venv/bin/python bench/bench_foundation.py

Targets: whole-tree build <= 300 ms; each built file exec'd and instantiated as Open WebUI does
<= 10 ms with imports warm, <= 40 ms in a fresh interpreter that has only pydantic imported (the
loader's own few stdlib modules come along); one status emit <= 20 us; 10,000 status updates at a
0.5 s interval deliver <= 3 events, the last being the final one. Timing is printed, never asserted.

Two more columns explain the load figures: `compile` is the part of the warm figure spent compiling
the text (Open WebUI compiles it on every load), and `host-like` is the fresh interpreter once
pydantic has built one model and asyncio is imported, the least any process that can host a plugin
has done: the "fresh" figure also pays for pydantic's first model and the asyncio import.
"""

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from buildlib.assemble import Plugin, render_all  # noqa: E402
from buildlib.loader import MissingPackage, compile_like_open_webui, load_check, load_like_open_webui  # noqa: E402
from shared.events import Emitter  # noqa: E402

# Runs in a fresh interpreter: pydantic, then the loader, then one load of one built file.
COLD_SNIPPET = """
import sys, time, types
sys.path.insert(0, sys.argv[1])
import pydantic
if sys.argv[3] == "host-like":
    import asyncio
    class _First(pydantic.BaseModel):
        x: int = pydantic.Field(default=1, description="pydantic builds its schema machinery once")
from buildlib.loader import load_like_open_webui
spec = types.SimpleNamespace(**__import__("json").loads(open(sys.argv[2]).read()))
spec.kind_row = types.SimpleNamespace(host=spec.host)
try:
    print(load_like_open_webui(spec))
except ModuleNotFoundError as exc:
    print("missing", exc.name)
"""


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bench_build(runs: int = 7) -> None:
    in_process = []
    for _ in range(runs):
        started = time.perf_counter()
        render_all(ROOT)
        in_process.append(time.perf_counter() - started)
    check = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "build.py"), "--check"], check=False, capture_output=True)
        check.append(time.perf_counter() - started)
    print(f"whole-tree build in memory (render_all): median {median_ms(in_process):.1f} ms   target <= 300 ms")
    print(f"python3 build.py --check (new process):   median {median_ms(check):.1f} ms")


def compile_ms(plugin: Plugin, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        compile_like_open_webui(plugin.text, plugin.dist)
        samples.append(time.perf_counter() - started)
    return median_ms(samples)


def cold_load_ms(plugin: Plugin, runs: int, mode: str = "fresh") -> float | str:
    spec = {"id": plugin.id, "text": plugin.text, "dist": plugin.dist, "cls": plugin.cls, "host": plugin.kind_row.host}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    samples = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-c", COLD_SNIPPET, str(ROOT), f.name, mode], capture_output=True, text=True, check=False
        )
        out = result.stdout.strip()
        if result.returncode != 0 or out.startswith("missing"):
            Path(f.name).unlink()
            return out or result.stderr.strip().splitlines()[-1]
        samples.append(float(out))
    Path(f.name).unlink()
    return median_ms(samples)


def bench_plugins(runs: int = 20, cold_runs: int = 3) -> None:
    plugins, _ = render_all(ROOT)
    load_check(plugins, strict=False)  # Open WebUI has pydantic, aiohttp, ... imported already
    print(
        f"\n{'built file':44s} {'lines':>6s} {'warm ms':>8s} {'compile':>8s} {'fresh ms':>9s} {'host-like':>9s}   "
        f"(warm: median of {runs}, target <= 10; fresh interpreter + pydantic: median of {cold_runs}, target <= 40)"
    )
    for plugin in sorted(plugins, key=lambda p: p.dist):
        lines = len(plugin.text.splitlines())
        try:
            warm = f"{median_ms([load_like_open_webui(plugin) for _ in range(runs)]):8.2f}"
        except MissingPackage as exc:
            warm = f"{'(no ' + str(exc) + ')':>8s}"
        compiling = compile_ms(plugin, runs)
        cold = cold_load_ms(plugin, cold_runs)
        shown = f"{cold:9.2f}" if isinstance(cold, float) else f"  {cold}"
        hostlike = cold_load_ms(plugin, cold_runs, "host-like")
        shown += f" {hostlike:9.2f}" if isinstance(hostlike, float) else f"  {hostlike}"
        print(f"{plugin.dist:44s} {lines:6d} {warm} {compiling:8.2f} {shown}")


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
    print(f"\none status emit, delivered: {per_sent:.2f} us; coalesced: {per_coalesced:.2f} us  target <= 20 us")

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
    bench_plugins()
    asyncio.run(bench_events())


if __name__ == "__main__":
    main()
