#!/usr/bin/env python3
"""Build the Open WebUI plugin pack: one self-contained file per plugin in dist/.

    python3 build.py                 build dist/, manifest.json and the import bundles
    python3 build.py --check         exit 1 if the committed output differs from a rebuild
    python3 build.py new KIND NAME   start a plugin from a template
    python3 build.py demo [--data DIR] [--fresh] [--port N]
                                     a local Open WebUI 0.12.4 with the pack (needs the test venv)
    python3 build.py deploy [--url URL] [--hayhooks URL] [--token T] [--only ID ...] [--valves F.json] [--dry-run]
                     [--share-tools] [--share-models] [--share-models-with GROUP[,GROUP]]

Standard library only: it must run on a bare Python 3.11. The work is done by buildlib/.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `python3 -I build.py` does not put the script's folder on the path
    sys.path.insert(0, str(ROOT))

from buildlib import BuildError  # noqa: E402
from buildlib import demo as demo_command  # noqa: E402
from buildlib.assemble import build, check  # noqa: E402
from buildlib.deploy import DeployOptions, deploy  # noqa: E402
from buildlib.kinds import STARTERS  # noqa: E402
from buildlib.scaffold import new_plugin  # noqa: E402


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="build.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    top.add_argument("--check", action="store_true", help="fail if dist/ or manifest.json is stale")
    top.add_argument("--strict-load", action="store_true", help="fail instead of skipping the load check")
    top.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    sub = top.add_subparsers(dest="command")
    new = sub.add_parser("new", help="start a plugin from a template")
    new.add_argument("kind", choices=sorted(STARTERS))
    new.add_argument("name")
    new.add_argument("--author", default="Your Name")
    new.add_argument("--description", default="What this plugin does, in one line.")
    demo_command.add_parser(sub)
    ship = sub.add_parser("deploy", help="install the built pack into a running Open WebUI")
    ship.add_argument("--url", default=None, help="Open WebUI base URL, e.g. http://127.0.0.1:8080")
    ship.add_argument(
        "--hayhooks", default=None, metavar="URL", help="deploy the Hayhooks wrappers to this Hayhooks server"
    )
    ship.add_argument("--token", default=None, help="admin token (default: env OPENWEBUI_TOKEN)")
    ship.add_argument(
        "--only", nargs="+", default=None, metavar="ID", help="deploy only these plugin ids (templates too)"
    )
    ship.add_argument("--valves", type=Path, default=None, help="JSON file {plugin_id: {valve: value}}")
    ship.add_argument("--share-tools", action="store_true", help="give all users read access to the tools")
    ship.add_argument(
        "--share-models",
        action="store_true",
        help="let all users see and chat with the pipes' models (each model listed now: run again for new ones)",
    )
    ship.add_argument(
        "--share-models-with",
        action="append",
        default=None,
        metavar="GROUP[,GROUP]",
        help="let these groups (names or ids) see and chat with the pipes' models; may be repeated",
    )
    ship.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    ship.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    root = args.root.resolve()
    try:
        if args.command == "demo":
            return demo_command.demo(root, demo_command.options_from(args))
        if args.command == "new":
            return new_plugin(root, args.kind, args.name, args.author, args.description)
        if args.command == "deploy":
            token = args.token or os.environ.get("OPENWEBUI_TOKEN")
            options = DeployOptions(
                url=args.url,
                token=token,
                only=args.only,
                valves=args.valves,
                share_tools=args.share_tools,
                dry_run=args.dry_run,
                timeout=args.timeout,
                share_models=args.share_models,
                share_models_with=args.share_models_with,
                hayhooks=args.hayhooks,
            )
            return deploy(root, options)
        if args.check:
            return check(root)
        return build(root, args.strict_load)
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
