"""examples/hayhooks_client.py and `build.py deploy --hayhooks` against the real `hayhooks run`."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.hayhooks._hayhooks import PACK_MODEL, ROOT, stream_chat, text_and_events
from tests.host._server import build_subset

CLIENT = ROOT / "examples" / "hayhooks_client.py"


def client(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CLIENT), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_client_streams_every_wrapper_and_lists_its_events(hayhooks, fake_openai, built):
    fake_openai.set(PACK_MODEL, reply="Hello from the fake.", chunk_size=4)
    result = client("--url", hayhooks.url, "--json", "Say hello")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"model"')]
    assert {line["model"] for line in lines} == set(hayhooks.models()) >= set(built.ids)
    for line in lines:
        assert "Hello from the fake." in line["text"]
        assert line["events"] and line["events"][-1]["type"] == "status" and line["events"][-1]["data"]["done"]
    assert "=== event_pipeline ===" in result.stdout and "status (done): Answered in " in result.stdout


def test_the_client_sends_a_file_to_file_upload_pipeline(hayhooks, fake_openai, need_wrapper, tmp_path):
    model = need_wrapper("file_upload_pipeline")
    fake_openai.set(PACK_MODEL, reply="It is about zebras.")
    path = tmp_path / "zoo.txt"
    path.write_text("Zebras have stripes.")
    result = client("--url", hayhooks.url, "--model", model, "--file", str(path), "What is it about?")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "It is about zebras." in result.stdout
    assert "status (done): Read 1 of 1 files (20 bytes)" in result.stdout
    (request,) = fake_openai.chat_requests()
    assert "Zebras have stripes." in json.dumps(request["messages"])


def test_the_client_says_plainly_when_no_server_answers():
    result = client("--url", "http://127.0.0.1:9", "hi")
    assert result.returncode == 2 and "cannot list the models of http://127.0.0.1:9" in result.stderr


def test_deploy_hayhooks_updates_the_running_server_once(hayhooks, fake_openai, need_wrapper, tmp_path):
    model = need_wrapper("event_pipeline")
    root = build_subset((model, "template_hayhooks"), tmp_path / "root")
    env = {"OPENWEBUI_PACK_HAYHOOKS_RECORD": str(tmp_path / "record.json"), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, str(ROOT / "build.py"), "--root", str(root), "deploy", "--hayhooks", hayhooks.url]

    def deploy(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *extra], capture_output=True, text=True, env=env, timeout=120, check=False)

    first = deploy("--only", model, "template_hayhooks")
    assert first.returncode == 0, first.stdout + first.stderr
    # the server already served both from its pipelines dir; without a record deploy sends them once
    assert f"{model} (hayhooks): updated, model {model}" in first.stdout
    assert "2 changed, 0 failed" in first.stdout and "WARNING" not in first.stdout
    second = deploy("--only", model, "template_hayhooks")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{model} (hayhooks): unchanged" in second.stdout and "nothing to do" in second.stdout
    default = deploy()  # without --only: the pack's wrappers (here only event_pipeline), no templates
    assert "template_hayhooks" not in default.stdout and f"{model} (hayhooks): unchanged" in default.stdout
    # the redeployed wrapper answers
    fake_openai.set(PACK_MODEL, reply="Still here.")
    text, events = text_and_events(stream_chat(hayhooks.url, model, "hi"))
    assert text == "Still here." and events[-1]["data"]["done"] is True
