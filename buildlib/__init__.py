"""The build library behind build.py: frontmatter rules, lean inlining of shared modules, the
table of plugin kinds, the Open WebUI loader emulation, scaffolding and deployment.

Standard library only: build.py must run on a bare Python 3.11.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = "plugins"
SHARED = "shared"
DIST = "dist"
MANIFEST = "manifest.json"
README = "README.md"


class BuildError(Exception):
    """A problem in the sources or the command line, reported as one plain sentence."""
