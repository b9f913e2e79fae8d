"""The Gemini manifold's limits, measured: SSRF forms refused, image download budget, download time.

    .venv/bin/python bench/bench_gemini_limits.py [--slow-links 3] [--big-links 20]

In-process: the built plugin, the real SDK, the fake Gemini and a loopback image server.
- SSRF: every non-public host form of tests/unit/shared/test_attachments_ssrf.py is tried against
  fetch_image (the loopback ones point at a live server): how many were refused, how many
  downloaded, and how many different sentences a user read.
- Budget: `--big-links` links of 14 MB each in one message: bytes the server sent, with the
  default valves (MAX_IMAGE_DOWNLOADS, MAX_IMAGE_BYTES_TOTAL).
- Time: `--slow-links` links that send 64 bytes a second: how long the request waited for them.
"""

import argparse
import ast
import asyncio
import base64
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes import gemini as g  # noqa: E402
from tests.helpers import load_built  # noqa: E402

KEY = "AIzaSyBENCH-key-0123456789abcdefghijkl"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def ssrf_forms() -> tuple[list[str], list[str]]:
    tree = ast.parse((ROOT / "tests/unit/shared/test_attachments_ssrf.py").read_text())
    found = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("LOOPBACK_FORMS", "OTHER_FORMS")
    }
    return found["LOOPBACK_FORMS"], found["OTHER_FORMS"]


async def ssrf(mod) -> None:
    os.environ.pop("ENABLE_LOCAL_WEB_FETCH", None)
    loopback, other = ssrf_forms()
    server = g.ImageServer({"/cat.png": (200, "image/png", PNG, {})})
    port = server.server.server_address[1]
    downloaded, sentences = [], set()
    for host in loopback + other:
        try:
            await mod.fetch_image(f"http://{host}:{port if host in loopback else 80}/cat.png", timeout=3)
            downloaded.append(host)
        except mod.AttachmentError as exc:
            sentences.add(str(exc))
    server.close()
    tried = len(loopback) + len(other)
    print(f"SSRF: {tried} forms tried, {tried - len(downloaded)} refused, {len(downloaded)} downloaded {downloaded}")
    print(f"      sentences a user read: {sorted(sentences)}")


def pipe_for(mod, fake: g.FakeGemini, **valves):
    pipe = mod.Pipe()
    pipe.valves = pipe.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=fake.url, **valves)
    return pipe


async def ask(pipe, urls: list[str]) -> None:
    content = [{"type": "image_url", "image_url": {"url": u}} for u in urls] + [{"type": "text", "text": "?"}]
    body = {"model": "g.gemini-2.5-flash", "messages": [{"role": "user", "content": content}], "stream": False}

    async def sink(event: dict) -> None:
        pass

    await pipe.pipe(body, __user__={"id": "u", "role": "user"}, __event_emitter__=sink)


async def budget(mod, links: int) -> None:
    os.environ["ENABLE_LOCAL_WEB_FETCH"] = "true"
    big = PNG + b"\0" * (14 * 1024 * 1024 - len(PNG))
    server = g.ImageServer({f"/{n}.png": (200, "image/png", big, {}) for n in range(links)})
    with g.FakeGemini(api_key=KEY) as fake:
        pipe = pipe_for(mod, fake)
        pipe.inline_budget = 1 << 40  # measure the download, not the Files API
        started = time.perf_counter()
        await ask(pipe, [f"{server.url}/{n}.png" for n in range(links)])
        seconds = time.perf_counter() - started
        parts = fake.last_generate()["contents"][-1]["parts"]
        kept = sum(len(base64.urlsafe_b64decode((p.get("inlineData") or p.get("inline_data"))["data"])) for p in parts
                   if p.get("inlineData") or p.get("inline_data"))  # fmt: skip
    server.close()
    print(
        f"budget: {links} links of 14 MB: {kept / 2**20:.0f} MiB of images kept for the request, "
        f"the server sent {server.served / 2**20:.0f} MiB in full responses "
        f"(budget {pipe.valves.MAX_IMAGE_BYTES_TOTAL / 2**20:.0f} MiB, {pipe.valves.MAX_IMAGE_DOWNLOADS} links) "
        f"in {seconds:.1f} s"
    )


async def slow(mod, links: int) -> None:
    os.environ["ENABLE_LOCAL_WEB_FETCH"] = "true"
    server = g.ImageServer({}, drip={f"/{n}.png": (PNG * 40, 1.0) for n in range(links)})
    with g.FakeGemini(api_key=KEY) as fake:
        pipe = pipe_for(mod, fake)
        started = time.perf_counter()
        await ask(pipe, [f"{server.url}/{n}.png" for n in range(links)])
        seconds = time.perf_counter() - started
    server.close()
    limit = pipe.valves.REQUEST_TIMEOUT
    print(f"time: {links} links at 64 B/s held the request {seconds:.1f} s (REQUEST_TIMEOUT {limit} s)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-links", type=int, default=3)
    parser.add_argument("--big-links", type=int, default=20)
    args = parser.parse_args()
    mod = load_built("gemini_manifold")
    await ssrf(mod)
    await budget(mod, args.big_links)
    await slow(mod, args.slow_links)


if __name__ == "__main__":
    asyncio.run(main())
