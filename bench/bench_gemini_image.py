"""Gemini manifold media figures: the image reply's latency, and stream overhead with the media features on.

    .venv/bin/python bench/bench_gemini_image.py [--runs 20] [--image-mb 1] [--chunks 500]

Targets:
- image reply: from the moment the SDK hands the pipe Gemini's chunk with a 1 MB image (its last
  byte read and parsed) to the image shown (stored as a file and its markdown yielded): <= 50 ms.
  The store writes the bytes to a temporary folder, as Open WebUI's local storage does.
- streaming 500 chunks with CODE_EXECUTION, URL_CONTEXT and GOOGLE_MAPS_GROUNDING on (YouTube on by
  default), pipe vs. the SDK alone sending the same request: total <= 1.05x. (With the features off,
  bench/bench_gemini_manifold.py measures the same.)
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes import gemini as g  # noqa: E402
from tests.helpers import load_built  # noqa: E402

KEY = "bench-key-0123456789"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


class DiskStore:
    """The file store of a pipe: bytes written to a folder (Open WebUI's local storage does that)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def store_file(self, data: bytes, mime: str, name: str, user: dict, **_: Any) -> str:
        file_id = str(uuid.uuid4())
        await asyncio.to_thread((self.root / f"{file_id}_{name}").write_bytes, data)
        return file_id


class Timed:
    """A stream that notes when each chunk reached the pipe."""

    def __init__(self, stream: Any, arrivals: list[float]) -> None:
        self.stream, self.arrivals = stream, arrivals

    def __aiter__(self) -> "Timed":
        return self

    async def __anext__(self) -> Any:
        item = await self.stream.__anext__()
        self.arrivals.append(time.perf_counter())
        return item

    async def aclose(self) -> None:
        await self.stream.aclose()


async def bench_image(runs: int, size: int) -> None:
    module = load_built("gemini_manifold")
    picture = g.PNG_1PX if hasattr(g, "PNG_1PX") else b"\x89PNG\r\n\x1a\n"
    picture += b"\0" * (size - len(picture))
    with g.FakeGemini(api_key=KEY, models=g.IMAGE_MODELS) as fake, tempfile.TemporaryDirectory() as folder:
        fake.default = lambda body: [g.text("Here it is."), g.image(picture), g.finish()]
        fake.record = lambda rec: None
        pipe = module.Pipe()
        pipe.valves = pipe.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=fake.url, MAX_RETRIES=0)
        pipe.host = DiskStore(Path(folder))
        arrivals: list[float] = []
        client = await pipe._client(KEY, fake.url, 300_000)
        models = client.aio.models
        original = models.generate_content_stream

        async def timed_stream(**kwargs: Any) -> Any:
            return Timed(await original(**kwargs), arrivals)

        pipe._clients = {key: SimpleNamespace(aio=SimpleNamespace(models=SimpleNamespace(
            generate_content_stream=timed_stream)), _real=client) for key in pipe._clients}  # fmt: skip
        body = {"model": "gemini_manifold.gemini-2.5-flash-image", "messages": [{"role": "user", "content": "a cat"}],
                "stream": True}  # fmt: skip
        user = {"id": "bench", "name": "B", "email": "b@x"}
        latencies = []
        for index in range(runs + 2):
            arrivals.clear()
            shown = None
            async for item in await pipe.pipe(body, __user__=user, __metadata__={"chat_id": "c", "message_id": "m"}):
                content = (item.get("choices") or [{}])[0].get("delta", {}).get("content") or ""
                if "/api/v1/files/" in content:
                    shown = time.perf_counter()
            assert shown is not None, "no image shown"
            if index >= 2:  # two warm-up runs
                latencies.append(shown - arrivals[1])  # chunk 0 is the text, chunk 1 the image
    print(f"image reply: {size / 1e6:.1f} MB image, median of {runs}")
    print(f"  image chunk reached the pipe -> stored and its markdown yielded: {ms(statistics.median(latencies))}"
          f" (max {ms(max(latencies))})   target <= 50 ms")  # fmt: skip


SERVER_SNIPPET = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.fakes import gemini as g
chunks = int(sys.argv[2])
script = [g.text(f"token {i} ") for i in range(chunks - 1)] + [g.finish()]
fake = g.FakeGemini(api_key=sys.argv[3]).start()
fake.default = lambda body: script
fake.record = lambda rec: None
print(fake.url, flush=True)
sys.stdin.read()
"""


async def bench_stream(url: str, runs: int, chunks: int) -> None:
    from google import genai
    from google.genai import types as gt

    module = load_built("gemini_manifold")
    pipe = module.Pipe()
    pipe.valves = pipe.Valves(
        GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=url, MAX_RETRIES=0,
        CODE_EXECUTION=True, URL_CONTEXT=True, GOOGLE_MAPS_GROUNDING=True,
    )  # fmt: skip
    await module.load_genai()
    client = genai.Client(
        api_key=KEY,
        vertexai=False,
        http_options=gt.HttpOptions(base_url=url, api_version="v1beta", timeout=300_000,
                                    retry_options=gt.HttpRetryOptions(attempts=1)),
    )  # fmt: skip
    text = "hi, see https://youtu.be/dQw4w9WgXcQ"
    config = {
        "thinking_config": {"include_thoughts": True},
        "tools": [{"code_execution": {}}, {"url_context": {}}, {"google_maps": {}}],
        "automatic_function_calling": {"disable": True},
    }
    contents = [
        {
            "role": "user",
            "parts": [{"file_data": {"file_uri": "https://www.youtube.com/watch?v=dQw4w9WgXcQ"}}, {"text": text}],
        }
    ]
    body = {
        "model": "gemini_manifold.gemini-2.5-flash",
        "messages": [{"role": "user", "content": text}],
        "stream": True,
    }

    async def sdk_alone() -> float:
        started = time.perf_counter()
        count = 0
        async for response in await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents=contents, config=config
        ):
            parts = response.candidates[0].content.parts or []
            count += bool(parts and parts[0].text)
        assert count == chunks - 1
        return time.perf_counter() - started

    async def through_pipe() -> float:
        started = time.perf_counter()
        count = 0
        async for item in await pipe.pipe(body, __user__={"id": "bench"}, __event_emitter__=None):
            count += bool(item["choices"][0]["delta"].get("content"))
        assert count == chunks - 1
        return time.perf_counter() - started

    for _ in range(3):
        await sdk_alone()
        await through_pipe()
    pairs = []
    for index in range(runs):
        if index % 2:
            piped = await through_pipe()
            pairs.append((await sdk_alone(), piped))
        else:
            sdk = await sdk_alone()
            pairs.append((sdk, await through_pipe()))
    ratio = statistics.median(p / s for s, p in pairs)
    print(f"stream with code execution, URL context, Maps and a YouTube video on: {chunks} chunks, {runs} pairs")
    print(
        f"  SDK alone {ms(statistics.median(s for s, _ in pairs))}, pipe {ms(statistics.median(p for _, p in pairs))}"
    )
    print(f"  pipe / SDK total, median of paired runs: {ratio:.3f}x (target <= 1.05x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--image-mb", type=float, default=1.0)
    parser.add_argument("--chunks", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(bench_image(args.runs, int(args.image_mb * 1_000_000)))
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_SNIPPET, str(ROOT), str(args.chunks), KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()
        asyncio.run(bench_stream(url, args.runs, args.chunks))
    finally:
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
