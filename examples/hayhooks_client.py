#!/usr/bin/env python3
"""Talk to the pack's Hayhooks wrappers the way Open WebUI does, and show what comes back.

    python3 examples/hayhooks_client.py                          # every model of http://localhost:1416
    python3 examples/hayhooks_client.py --url http://127.0.0.1:1416 --model event_pipeline
    python3 examples/hayhooks_client.py --model file_upload_pipeline --file report.txt "What is in it?"

For each wrapper it POSTs /v1/chat/completions with `stream: true`, prints the reply text as it
streams, then, separately, each Open WebUI event the stream carried (`data: {"event": ...}` lines:
statuses, sources, notifications). Hayhooks ends a stream with a `finish_reason` chunk and no
`[DONE]` line. `--file PATH` (repeatable) adds a `files` list to the request body,
`[{"filename", "content" (base64), "size", "type" (the file's extension)}]`, the form
file_upload_pipeline reads; Open WebUI itself never sends it (it puts retrieved file text into the
user message instead). `--no-stream` asks for a plain answer: Hayhooks then drops every event.

Standard library only, so it runs with any Python 3.9 or later. Hayhooks has no authentication:
this script sends no key.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_URL = "http://localhost:1416"
DEFAULT_MESSAGE = "Tell me in two sentences what you can do."


def list_models(url: str, timeout: float) -> list[str]:
    # S310: the URL is the Hayhooks server the user names (http or https)
    with urllib.request.urlopen(f"{url}/v1/models", timeout=timeout) as response:  # noqa: S310
        return [m["id"] for m in json.load(response).get("data", [])]


def file_item(path: Path) -> dict:
    data = path.read_bytes()
    return {
        "filename": path.name,
        "content": base64.b64encode(data).decode("ascii"),
        "size": len(data),
        "type": path.suffix.lower(),
    }


def describe(event: dict) -> str:
    """One line for an Open WebUI event: its type and what a reader would see."""
    kind = event.get("type", "?")
    data = event.get("data")
    if kind == "status" and isinstance(data, dict):
        state = "done" if data.get("done") else "running"
        extra = "" if not data.get("hidden") else ", hidden"
        return f"status ({state}{extra}): {data.get('description', '')}"
    if kind == "notification" and isinstance(data, dict):
        return f"notification ({data.get('type', 'info')}): {data.get('content', '')}"
    if kind in ("source", "citation") and isinstance(data, dict):
        source = data.get("source") or {}
        name = source.get("name") if isinstance(source, dict) else source
        return f"{kind}: {name} ({len(data.get('document') or [])} passage(s))"
    return f"{kind}: {json.dumps(data, ensure_ascii=False)[:300]}"


def post(url: str, body: dict, timeout: float):
    request = urllib.request.Request(  # noqa: S310 (the server the user names)
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        method="POST",
    )
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310


def stream_one(url: str, body: dict, timeout: float, out=sys.stdout) -> tuple[str, list[dict]]:
    """POST one streamed request; print the text as it arrives. Returns (text, events)."""
    text, events = [], []
    with post(url, body, timeout) as response:
        for raw in response:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                item = json.loads(data)
            except ValueError:
                continue
            if isinstance(item, dict) and "event" in item:
                events.append(item["event"])
                continue
            choices = item.get("choices") if isinstance(item, dict) else None
            for choice in choices or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    text.append(piece)
                    out.write(piece)
                    out.flush()
    out.write("\n")
    return "".join(text), events


def plain_one(url: str, body: dict, timeout: float, out=sys.stdout) -> tuple[str, list[dict]]:
    with post(url, body, timeout) as response:
        answer = json.load(response)
    choices = answer.get("choices") or [{}]
    text = str((choices[0].get("message") or {}).get("content") or "")
    out.write(text + "\n")
    return text, []


def run(args: argparse.Namespace, out=sys.stdout) -> int:
    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        print(f"--url must be an http:// or https:// address, not {url!r}", file=sys.stderr)
        return 2
    try:
        models = args.model or list_models(url, args.timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"cannot list the models of {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 2
    files = [file_item(Path(p)) for p in args.file or []]
    status = 0
    for model in models:
        body = {"model": model, "messages": [{"role": "user", "content": args.message}], "stream": not args.no_stream}
        if files:
            body["files"] = files
        out.write(f"=== {model} ===\n")
        try:
            text, events = (plain_one if args.no_stream else stream_one)(url, body, args.timeout, out)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            out.write(f"HTTP {exc.code}: {detail}\n")
            status = 1
            continue
        except (urllib.error.URLError, OSError) as exc:
            out.write(f"the request failed: {getattr(exc, 'reason', exc)}\n")
            status = 1
            continue
        out.write(f"--- {len(events)} event(s) ---\n")
        for event in events:
            out.write(f"  {describe(event)}\n")
        if args.json:
            out.write(json.dumps({"model": model, "text": text, "events": events}, ensure_ascii=False) + "\n")
    return status


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("message", nargs="?", default=DEFAULT_MESSAGE, help="the user message")
    p.add_argument("--url", default=DEFAULT_URL, help=f"the Hayhooks server (default {DEFAULT_URL})")
    p.add_argument(
        "--model", action="append", metavar="NAME", help="a wrapper (model id) to ask; repeatable (default: all)"
    )
    p.add_argument("--file", action="append", metavar="PATH", help="attach a file in the `files` list; repeatable")
    p.add_argument("--no-stream", action="store_true", help="ask for a plain answer (Hayhooks drops the events)")
    p.add_argument("--json", action="store_true", help="also print one JSON line per wrapper: text and events")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    return p


if __name__ == "__main__":
    sys.exit(run(parser().parse_args()))
