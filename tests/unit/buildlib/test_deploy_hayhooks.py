"""`build.py deploy --hayhooks URL` against a loopback fake of Hayhooks 2.1.0's /status and /deploy_files.

The fake answers as hayhooks/server/routers/deploy.py and status.py do (the request model, 409 without
overwrite, 422 without pipeline_wrapper.py); tests/hayhooks/test_deploy.py runs the real server.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import build as build_command
from buildlib import BuildError
from buildlib import deploy as build
from buildlib.deploy import DeployOptions
from tests.fakes.openai_server import JsonHandler, LoopbackServer

WRAPPER = '''"""
title: W
"""
from hayhooks import BasePipelineWrapper


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        pass

    def run_chat_completion(self, model, messages, body):
        return "{reply}"
'''


class _HayhooksHandler(JsonHandler):
    def do_GET(self) -> None:
        self.record(None)
        fake: FakeHayhooks = self.owner
        if self.path == "/status":
            self.send_json(200, {"status": "Up!", "pipelines": fake.listed(), "durable_mode": fake.durable})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = self.read_json()
        self.record(body)
        fake: FakeHayhooks = self.owner
        if self.path != "/deploy_files":
            self.send_json(404, {"detail": "Not Found"})
            return
        if "pipeline_wrapper.py" not in (body.get("files") or {}):
            self.send_json(422, {"detail": [{"loc": ["body", "files"], "msg": "Missing required file"}]})
            return
        if fake.refuse:
            self.send_json(422, {"detail": fake.refuse})
            return
        if body["name"] in fake.pipelines and not body.get("overwrite"):
            self.send_json(409, {"detail": f"Pipeline '{body['name']}' already exists"})
            return
        fake.pipelines[body["name"]] = body["files"]
        fake.fresh.add(body["name"])
        self.send_json(200, {"name": body["name"], "success": True, "endpoint": f"/{body['name']}/run"})


class FakeHayhooks(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(_HayhooksHandler)
        self.pipelines: dict[str, dict] = {}
        self.durable = False
        self.refuse: str | None = None
        self.two_workers = False  # runtime deploys show on every other /status answer only
        self.fresh: set[str] = set()
        self._status_calls = 0

    def listed(self) -> list[str]:
        self._status_calls += 1
        names = sorted(self.pipelines)
        if self.two_workers and self._status_calls % 2:
            names = [n for n in names if n not in self.fresh]
        return names

    def deploys(self) -> list[dict]:
        return [r.json for r in self.requests_to("/deploy_files")]


@pytest.fixture
def hayhooks():
    with FakeHayhooks() as fake:
        yield fake


@pytest.fixture(autouse=True)
def record_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "record.json"
    monkeypatch.setenv(build.HAYHOOKS_RECORD_ENV, str(path))
    return path


def write_root(path: Path, wrappers: dict[str, str], *, pipe: bool = False) -> Path:
    plugins = []
    for name, reply in wrappers.items():
        text = WRAPPER.replace("{reply}", reply)
        folder = "templates" if name.startswith("template_") else "hayhooks"
        dist = f"dist/{folder}/{name.removeprefix('template_')}/pipeline_wrapper.py"
        (path / dist).parent.mkdir(parents=True, exist_ok=True)
        (path / dist).write_text(text)
        source = f"plugins/{folder}/{name.removeprefix('template_')}.py"
        sha = hashlib.sha256(text.encode()).hexdigest()
        plugins.append({"id": name, "kind": "hayhooks", "title": name, "description": "d", "global": False,
                        "source": source, "dist": dist, "sha256": sha})  # fmt: skip
    if pipe:
        text = "class Pipe:\n    def pipe(self, body):\n        return 'x'\n"
        (path / "dist/functions/p.py").parent.mkdir(parents=True, exist_ok=True)
        (path / "dist/functions/p.py").write_text(text)
        plugins.append({"id": "p", "kind": "pipe", "title": "p", "description": "d", "global": False,
                        "source": "plugins/functions/p.py", "dist": "dist/functions/p.py",
                        "sha256": hashlib.sha256(text.encode()).hexdigest()})  # fmt: skip
    (path / "manifest.json").write_text(json.dumps({"plugins": plugins}))
    return path


def run(root: Path, url: str, *args: str) -> int:
    return build_command.main(["--root", str(root), "deploy", "--hayhooks", url, *args])


def test_deploys_each_wrapper_once_then_changes_nothing(tmp_path, hayhooks, capsys):
    root = write_root(tmp_path, {"alpha": "a", "beta": "b", "template_hayhooks": "t"})
    assert run(root, hayhooks.base) == 0
    out = capsys.readouterr().out
    assert "alpha (hayhooks): created, model alpha" in out and "beta (hayhooks): created, model beta" in out
    assert "template_hayhooks" not in out  # templates only with --only
    assert "deployed 2 of 2 Hayhooks wrappers" in out and "2 changed, 0 failed" in out
    assert "no authentication" in out and "--workers 2" in out  # both warnings are printed
    sent = hayhooks.deploys()
    assert [d["name"] for d in sent] == ["alpha", "beta"]
    assert sent[0] == {
        "name": "alpha",
        "files": {"pipeline_wrapper.py": (root / "dist/hayhooks/alpha/pipeline_wrapper.py").read_text()},
        "save_files": True,
        "overwrite": True,
    }
    hayhooks.clear()
    assert run(root, hayhooks.base) == 0
    out = capsys.readouterr().out
    assert "alpha (hayhooks): unchanged" in out and "beta (hayhooks): unchanged" in out
    assert "0 changed, 0 failed (nothing to do: the server already runs these wrappers)" in out
    assert hayhooks.deploys() == []  # nothing was posted


def test_a_changed_wrapper_is_updated_and_a_restarted_server_gets_it_again(tmp_path, hayhooks, capsys):
    root = write_root(tmp_path, {"alpha": "a", "beta": "b"})
    assert run(root, hayhooks.base) == 0
    write_root(tmp_path, {"alpha": "a2", "beta": "b"})
    hayhooks.clear()
    assert run(root, hayhooks.base) == 0
    out = capsys.readouterr().out
    assert "alpha (hayhooks): updated" in out and "beta (hayhooks): unchanged" in out
    assert [d["name"] for d in hayhooks.deploys()] == ["alpha"]
    # a server that lost its runtime deploys (restarted without saved files) gets them again
    hayhooks.pipelines.clear()
    hayhooks.clear()
    assert run(root, hayhooks.base) == 0
    assert [d["name"] for d in hayhooks.deploys()] == ["alpha", "beta"]


def test_only_picks_wrappers_and_templates_and_notes_other_kinds(tmp_path, hayhooks, capsys):
    root = write_root(tmp_path, {"alpha": "a", "beta": "b", "template_hayhooks": "t"}, pipe=True)
    assert run(root, hayhooks.base, "--only", "beta", "template_hayhooks", "p") == 0
    out = capsys.readouterr().out
    assert [d["name"] for d in hayhooks.deploys()] == ["beta", "template_hayhooks"]
    assert "p (pipe): not a Hayhooks wrapper; deploy it into Open WebUI with --url" in out
    with pytest.raises(BuildError, match=r"no plugin nope .*Hayhooks wrappers: alpha, beta, template_hayhooks"):
        build.deploy(root, DeployOptions(None, None, only=["nope"], hayhooks=hayhooks.base))


def test_dry_run_posts_nothing(tmp_path, hayhooks, capsys, record_file):
    root = write_root(tmp_path, {"alpha": "a"})
    assert run(root, hayhooks.base, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "dry run, nothing is changed" in out and "alpha (hayhooks): would create" in out
    assert hayhooks.deploys() == [] and not record_file.exists()


def test_a_refused_wrapper_fails_the_run_and_is_tried_again_next_time(tmp_path, hayhooks, capsys):
    root = write_root(tmp_path, {"alpha": "a"})
    hayhooks.refuse = "Failed to load pipeline module 'alpha'"
    assert run(root, hayhooks.base) == 1
    out = capsys.readouterr().out
    assert "alpha (hayhooks): FAILED: POST /deploy_files -> HTTP 422: Failed to load pipeline module" in out
    assert "0 of 1 Hayhooks wrappers" in out
    hayhooks.refuse = None
    assert run(root, hayhooks.base) == 0
    assert "alpha (hayhooks): created" in capsys.readouterr().out


def test_several_workers_are_detected_after_a_runtime_deploy(tmp_path, hayhooks, capsys):
    root = write_root(tmp_path, {"alpha": "a"})
    hayhooks.two_workers = True
    assert run(root, hayhooks.base) == 0
    out = capsys.readouterr().out
    assert f"WARNING: 4 of {build.WORKER_PROBES} /status answers did not list alpha" in out
    assert "runs several workers" in out


def test_no_token_is_needed_and_a_target_is(tmp_path, hayhooks):
    root = write_root(tmp_path, {"alpha": "a"})
    assert build.deploy(root, DeployOptions(None, None, hayhooks=hayhooks.base)) == 0
    assert all("authorization" not in r.headers for r in hayhooks.requests)
    with pytest.raises(BuildError, match=r"--url .* and/or --hayhooks"):
        build.deploy(root, DeployOptions(None, None))


def test_unreachable_durable_and_foreign_servers_are_plain_errors(tmp_path, hayhooks):
    root = write_root(tmp_path, {"alpha": "a"})
    with pytest.raises(BuildError, match=r"cannot reach Hayhooks at http://127\.0\.0\.1:9"):
        build.deploy(root, DeployOptions(None, None, hayhooks="http://127.0.0.1:9"))
    hayhooks.durable = True
    with pytest.raises(BuildError, match="durable mode"):
        build.deploy(root, DeployOptions(None, None, hayhooks=hayhooks.base))
    hayhooks.durable = False
    with pytest.raises(BuildError, match="does not answer like a Hayhooks server"):
        build.deploy(root, DeployOptions(None, None, hayhooks=hayhooks.base + "/nothing-here"))


def test_the_record_is_per_server(tmp_path, capsys):
    root = write_root(tmp_path, {"alpha": "a"})
    with FakeHayhooks() as one, FakeHayhooks() as two:
        assert run(root, one.base) == 0 and run(root, two.base) == 0
        assert len(one.deploys()) == 1 and len(two.deploys()) == 1
        assert run(root, two.base) == 0
        assert len(two.deploys()) == 1
        bases = {one.base, two.base}
    record = json.loads(Path(build.hayhooks_record_path()).read_text())
    assert set(record) == bases
