"""Time `python3 build.py deploy` of the whole pack into a running Open WebUI.

    .venv/bin/python bench/bench_deploy.py                       # starts its own 0.12.4 (host harness)
    .venv-owui-0.6.43/bin/python bench/bench_deploy.py           # ... or another version's venv (tests/run.sh)
    .venv/bin/python bench/bench_deploy.py --url URL --token T   # or use a running one (changes it!)
    .venv/bin/python bench/bench_deploy.py --url URL --token T --share-models   # ... and share its models

Builds the current sources into a temp root (dist/ in the tree may be stale), then times, as
subprocesses (Python start-up included): the pack (default set: no templates) first run and second run
with --share-models (its own server: the Gemini manifold's valves point at the fake Gemini server, so
it lists several sub-models to share), the pack again without sharing, and the pack plus templates
(every id via --only) first and second run. Prints the server's time-to-ready too when it starts one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from buildlib import MANIFEST  # noqa: E402
from buildlib.assemble import render_all  # noqa: E402
from buildlib.deploy import is_template  # noqa: E402
from buildlib.kinds import kind  # noqa: E402
from tests.fakes.embeddings import FakeEmbeddings  # noqa: E402
from tests.fakes.gemini import FakeGemini  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402
from tests.host._server import Server, signup_admin  # noqa: E402
from tests.host.versions import OWUI_VERSION_TEXT  # noqa: E402


def write_pack(root: Path) -> list[dict]:
    _, outputs = render_all(ROOT)
    for rel, text in outputs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return json.loads(outputs[MANIFEST])["plugins"]


def timed_deploy(root: Path, url: str, token: str, only: list[str] | None, args: list[str]) -> tuple[float, str]:
    command = [sys.executable, str(ROOT / "build.py"), "--root", str(root), "deploy", "--url", url, *args]
    if only:
        command += ["--only", *only]
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "OPENWEBUI_TOKEN": token}, check=False
    )
    took = time.perf_counter() - started
    summary = (result.stdout.strip().splitlines() or [""])[-1]
    if result.returncode != 0:
        summary = f"FAILED ({result.returncode}): {result.stdout}{result.stderr}"
    return took, summary


def run(url: str, token: str, root: Path, entries: list[dict], share: list[str] | None) -> None:
    """`share`: the deploy options of the sharing rows (None: no sharing rows)."""
    pack = [e for e in entries if not is_template(e) and kind(e["kind"]).deployable]
    everything = sorted({e["id"] for e in entries})
    print(f"pack: {len(pack)} deployable plugins (+ templates: {len(everything)} ids in total)")
    rows = []
    if share is not None:
        rows += [
            ("pack + sharing, first run", None, share),
            ("pack + sharing, second run", None, share),
        ]
    else:
        rows.append(("pack, first run", None, []))
    rows += [
        ("pack, unchanged, no sharing" if share is not None else "pack, second run (unchanged)", None, []),
        ("pack + templates, first run", everything, []),
        ("pack + templates, second run", everything, []),
    ]
    for label, only, args in rows:
        took, summary = timed_deploy(root, url, token, only, args)
        print(f"  {label:<32} {took:6.2f} s   | {summary}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--token", default=os.environ.get("OPENWEBUI_TOKEN"))
    parser.add_argument("--share-models", action="store_true", help="with --url: time the sharing rows too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        root = Path(tmp) / "pack"
        entries = write_pack(root)
        if args.url:
            if not args.token:
                parser.error("--url needs --token or OPENWEBUI_TOKEN")
            run(args.url, args.token, root, entries, ["--share-models"] if args.share_models else None)
            return 0
        with FakeOpenAI() as openai, FakeEmbeddings() as embeddings, FakeGemini(api_key="bench-key") as gemini:
            valves = Path(tmp) / "valves.json"
            valves.write_text(
                json.dumps({"gemini_manifold": {"GOOGLE_API_KEY": "bench-key", "GOOGLE_API_BASE_URL": gemini.url}})
            )
            workdir = Path(tmp) / "owui"
            workdir.mkdir()
            server = Server(workdir, openai.url, embeddings.url)
            try:
                server.start()
                rss = server.rss_mib()
                print(f"open-webui {OWUI_VERSION_TEXT} ready in {server.ready_seconds:.1f} s (RSS {rss or 0:.0f} MiB)")
                admin = signup_admin(server.url)
                run(server.url, admin.token, root, entries, ["--share-models", "--valves", str(valves)])
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
