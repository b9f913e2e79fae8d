"""Whole builds: outputs, determinism, --check, manifest, bundles, README table, the real tree."""

import ast
import hashlib
import json
import subprocess
import sys

from buildlib import ROOT
from buildlib.assemble import TABLE_END, TABLE_START, render_all
from buildlib.loader import load_check
from tests.unit.buildlib.conftest import PIPE, build_fails, plugin, read, run, write


def test_two_builds_are_byte_identical(tree):
    run(tree)
    first = {p: p.read_bytes() for p in sorted((tree / "dist").rglob("*")) if p.is_file()}
    first[tree / "manifest.json"] = read(tree, "manifest.json").encode()
    run(tree)
    second = {p: p.read_bytes() for p in sorted((tree / "dist").rglob("*")) if p.is_file()}
    second[tree / "manifest.json"] = read(tree, "manifest.json").encode()
    assert first == second
    assert all(str(tree) not in v.decode() for v in second.values())


def test_check_passes_on_fresh_and_fails_on_stale(tree, capsys):
    run(tree)
    assert run(tree, "--check") == 0
    write(tree, "shared/beta.py", read(tree, "shared/beta.py").replace(".upper()", ".lower()"))
    assert run(tree, "--check") == 1
    out = capsys.readouterr().out
    assert "dist/functions/demo.py (differs)" in out
    assert "manifest.json (differs)" in out
    assert "run `python3 build.py`" in out
    assert "upper()" in out  # the diff of the first stale file (the bundle holds the code)


def test_check_reports_extra_and_missing(tree, capsys):
    run(tree)
    (tree / "dist/functions/old.py").write_text("x")
    (tree / "dist/tools.json").unlink()
    assert run(tree, "--check") == 1
    out = capsys.readouterr().out
    assert "dist/functions/old.py (extra)" in out
    assert "dist/tools.json (missing)" in out
    run(tree)
    assert not (tree / "dist/functions/old.py").exists()
    assert run(tree, "--check") == 0


def test_text_open_webui_would_rewrite(tree):
    for snippet in ("from utils", "from apps", "from main", "from config"):
        write(tree, "plugins/functions/demo.py", plugin(PIPE + f'\n\nHELP = "pick {snippet}uration menu"\n'))
        build_fails(tree, f"contains '{snippet}'", "replace_imports")


def test_rewritable_text_inside_shared_code_is_caught_too(tree):
    write(tree, "shared/beta.py", read(tree, "shared/beta.py") + "\n# loaded from configparser\nSPARE = 1\n")
    write(
        tree,
        "shared/alpha.py",
        read(tree, "shared/alpha.py")
        .replace("from shared.beta import shout", "from shared.beta import SPARE, shout")
        .replace("json.dumps(who)", "json.dumps(who) * SPARE"),
    )
    build_fails(tree, "contains 'from config'")


def test_bad_file_name(tree):
    write(tree, "plugins/functions/Bad-Name.py", plugin("class Pipe:\n    pass\n"))
    build_fails(tree, "file name must be a lower-case Python identifier")


def test_duplicate_id_within_a_host(tree):
    write(tree, "plugins/actions/demo.py", plugin("class Action:\n    pass\n"))
    build_fails(tree, "id 'demo' is also used by plugins/functions/demo.py")


def test_same_id_for_pipe_and_pipeline_is_allowed(tree):
    write(tree, "plugins/pipelines/demo.py", plugin("class Pipeline:\n    pass\n"))
    assert run(tree) == 0
    kinds = [(p["id"], p["kind"]) for p in json.loads(read(tree, "manifest.json"))["plugins"]]
    assert kinds == [("demo", "pipe"), ("demo", "pipeline")]


def test_syntax_error(tree):
    write(tree, "plugins/functions/demo.py", plugin("def broken(:\n"))
    build_fails(tree, "plugins/functions/demo.py:", "syntax error")


def test_underscore_files_are_not_plugins(tree):
    write(tree, "plugins/functions/_notes.py", "not a plugin\n")
    assert run(tree) == 0
    assert not (tree / "dist/functions/_notes.py").exists()


def test_build_runs_on_bare_python(tree):
    """No site-packages (-S -I): the script still builds, and says the load check was skipped."""
    script = str(ROOT / "build.py")
    result = subprocess.run(
        [sys.executable, "-S", "-I", script, "--root", str(tree)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "load check skipped: pydantic is not installed" in result.stdout
    check = subprocess.run(
        [sys.executable, "-S", "-I", script, "--root", str(tree), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout
    broken = subprocess.run(
        [sys.executable, "-S", "-I", script, "--root", str(tree / "nowhere"), "deploy", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        check=False,
        env={},
    )
    assert broken.returncode == 1 and broken.stderr.startswith("build.py: error: no token")


def test_manifest_fields(tree):
    write(tree, "plugins/tools/plain.py", plugin("class Tools:\n    pass\n", extra="requirements: a>=1, b==2\n"))
    write(tree, "plugins/actions/act.py", plugin("class Action:\n    pass\n", extra="global: true\n"))
    run(tree)
    entries = {p["id"]: p for p in json.loads(read(tree, "manifest.json"))["plugins"]}
    assert entries["demo"] == {
        "id": "demo",
        "kind": "pipe",
        "title": "Demo",
        "version": "1.2.3",
        "description": "A test plugin.",
        "requirements": [],
        "required_open_webui_version": "0.12.4",
        "global": False,
        "source": "plugins/functions/demo.py",
        "dist": "dist/functions/demo.py",
        "sha256": hashlib.sha256((tree / "dist/functions/demo.py").read_bytes()).hexdigest(),
        "shared": ["shared/beta.py", "shared/alpha.py"],
    }
    assert entries["plain"]["requirements"] == ["a>=1", "b==2"]
    assert entries["plain"]["kind"] == "tool"
    assert entries["act"]["global"] is True


def test_import_bundles_match_what_the_import_buttons_post(tree):
    write(tree, "plugins/tools/plain.py", plugin("class Tools:\n    pass\n", title="Plain Tool"))
    write(tree, "plugins/templates/pipe.py", plugin("class Pipe:\n    pass\n", title="Template"))
    run(tree)
    functions = json.loads(read(tree, "dist/functions.json"))
    tools = json.loads(read(tree, "dist/tools.json"))
    assert [f["id"] for f in functions] == ["demo"]  # templates are starting points, not the pack
    assert functions[0] == {
        "id": "demo",
        "name": "Demo",
        "content": read(tree, "dist/functions/demo.py"),
        "meta": {"description": "A test plugin."},
    }
    assert [(t["id"], t["name"]) for t in tools] == [("plain", "Plain Tool")]
    assert "template_pipe" in {p["id"] for p in json.loads(read(tree, "manifest.json"))["plugins"]}


def test_readme_table_is_generated_and_checked(tree, capsys):
    (tree / "README.md").write_text(f"# Pack\n\n{TABLE_START}\nold rows\n{TABLE_END}\n\nmore\n")
    write(tree, "plugins/events/audit.py", plugin("class Event:\n    pass\n", title="Audit"))
    assert run(tree) == 0
    readme = read(tree, "README.md")
    assert "old rows" not in readme
    assert (
        "| Demo | Pipe | `demo` | 1.2.3 | 0.12.4+ | A test plugin. | [dist/functions/demo.py](dist/functions/demo.py) |"
        in readme
    )
    assert "| Audit | Event | `audit` |" in readme
    assert readme.endswith(f"{TABLE_END}\n\nmore\n")
    assert run(tree, "--check") == 0
    (tree / "README.md").write_text(readme.replace("A test plugin.", "edited by hand"))
    assert run(tree, "--check") == 1
    assert "README.md (differs)" in capsys.readouterr().out


def test_real_tree_builds_and_every_file_loads_like_open_webui():
    plugins, _ = render_all(ROOT)
    templates = {p.kind for p in plugins if p.folder == "templates"}
    assert templates == {"pipe", "filter", "action", "event", "tool", "pipeline", "hayhooks"}
    assert load_check(plugins, strict=True) == []
    for p in plugins:
        assert p.text.splitlines()[0] == '"""'
        assert p.meta["license"] == "MIT"
        ast.parse(p.text)
