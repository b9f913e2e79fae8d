"""Upload reuse, measured: Files API uploads and bytes sent for a large PDF over several turns.

    .venv/bin/python bench/bench_gemini_uploads.py [--mb 20] [--turns 5] [--before REV]

In-process: the built plugin, the real google-genai SDK and the fake Google of
tests/fakes/gemini_vertex.py (Files with sha256Hash and expirationTime, per-key file lists). The
same PDF is attached to every turn, as Open WebUI sends a chat's files with each message. Runs:
- one pipe: all turns in one process;
- restarted: a new Pipe instance before every other turn (a server restart, a second worker, a
  changed function: the pipe's memory is gone, Google still has the file);
- two chats: the turns alternate between two chats of the same key.
"Before" is the built plugin of git revision `--before` (read with `git show`, default HEAD);
"after" is dist/ as built now.
"""

import argparse
import asyncio
import subprocess
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from buildlib.loader import load_module_like_open_webui  # noqa: E402
from tests.fakes.gemini_vertex import FakeGoogle  # noqa: E402
from tests.helpers import find_built  # noqa: E402

KEY = "AIzaSyBENCH-key-0123456789abcdefghijkl"
MiB = 1024 * 1024


class Host:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def file_record(self, file_id: str) -> object:
        meta = {"content_type": "application/pdf"}
        return SimpleNamespace(user_id="u1", path=str(self.path), filename="report.pdf", meta=meta)

    async def local_file_path(self, stored_path: str) -> str:
        return stored_path


def load_revision(rev: str) -> types.ModuleType:
    plugin = find_built("gemini_manifold")
    text = subprocess.run(
        ["git", "show", f"{rev}:dist/functions/gemini_manifold.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return load_module_like_open_webui(type(plugin)(**{**vars(plugin), "text": text}))


def new_pipe(mod: types.ModuleType, fake: FakeGoogle, host: Host) -> object:
    pipe = mod.Pipe()
    pipe.valves = pipe.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=fake.url)
    pipe.host = host
    return pipe


async def run(mod: types.ModuleType, host: Host, turns: int, mode: str) -> dict[str, float]:
    files = [{"type": "file", "id": "f1", "name": "report.pdf", "file": {"meta": {"content_type": "application/pdf"}}}]
    with FakeGoogle(keys=(KEY,)) as fake:
        pipe = new_pipe(mod, fake, host)
        started = time.perf_counter()
        for turn in range(turns):
            if mode == "restarted" and turn and turn % 2 == 0:
                pipe = new_pipe(mod, fake, host)
            chat_id = f"c{turn % 2}" if mode == "two chats" else "c0"
            body = {"model": "gemini_manifold.gemini-2.5-flash", "stream": False,
                    "messages": [{"role": "user", "content": f"turn {turn}: summarise"}]}  # fmt: skip
            meta = {"chat_id": chat_id, "message_id": f"m{turn}"}
            await pipe.pipe(body, __user__={"id": "u1", "role": "user"}, __files__=files, __metadata__=meta)
        elapsed = time.perf_counter() - started
        return {"uploads": len(fake.uploads()), "mb": fake.uploaded_bytes() / MiB, "s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--before", default="HEAD")
    args = parser.parse_args()
    pdf = Path("/tmp/bench_gemini_uploads.pdf")
    pdf.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * (args.mb * MiB // 256))
    host = Host(pdf)
    builds = {"before": load_revision(args.before), "after": find_and_load()}
    print(f"{args.mb} MB PDF, {args.turns} turns")
    print(f"{'run':<12} {'build':<7} {'uploads':>7} {'MB sent':>8} {'time s':>7}")
    for mode in ("one pipe", "restarted", "two chats"):
        for label, mod in builds.items():
            result = asyncio.run(run(mod, host, args.turns, mode))
            print(f"{mode:<12} {label:<7} {result['uploads']:>7} {result['mb']:>8.1f} {result['s']:>7.2f}")
    pdf.unlink()


def find_and_load() -> types.ModuleType:
    return load_module_like_open_webui(find_built("gemini_manifold"))


if __name__ == "__main__":
    main()
