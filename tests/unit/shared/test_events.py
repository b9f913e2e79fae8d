import asyncio
import logging

import pytest

from shared import events as ev

# --- builders: exact payloads the Open WebUI 0.12.4 UI reads (src/lib/components/chat/Chat.svelte) ---


def test_status_plain():
    assert ev.status("Working") == {
        "type": "status",
        "data": {"description": "Working", "done": False, "hidden": False},
    }


def test_status_optional_forms():
    event = ev.status(
        "Searched {{count}} sites",
        done=True,
        hidden=True,
        action="web_search",
        urls=["https://a.example"],
        query="q",
        queries=["q1", "q2"],
        count=3,
    )
    assert event == {
        "type": "status",
        "data": {
            "description": "Searched {{count}} sites",
            "done": True,
            "hidden": True,
            "action": "web_search",
            "urls": ["https://a.example"],
            "query": "q",
            "queries": ["q1", "q2"],
            "count": 3,
        },
    }


@pytest.mark.parametrize("kind", ["info", "success", "warning", "error"])
def test_notification_uses_content_key(kind):
    assert ev.notification("hello", kind) == {"type": "notification", "data": {"type": kind, "content": "hello"}}


def test_citation_shape_and_grouping_key():
    event = ev.citation(["para 1", "para 2"], name="Video", url="https://youtu.be/x")
    assert event["type"] == "citation"
    data = event["data"]
    assert "type" not in data  # only type-less citations are persisted (socket/main.py:1583-1598)
    assert data["document"] == ["para 1", "para 2"]
    assert data["source"] == {"name": "Video", "id": "https://youtu.be/x", "url": "https://youtu.be/x"}
    assert all(m["source"] == "https://youtu.be/x" and m["name"] == "Video" for m in data["metadata"])


def test_citation_keeps_given_metadata_and_source_type():
    event = ev.citation(["a"], name="Doc", metadata=[{"source": "s1", "page": 2}], event_type="source")
    assert event["type"] == "source"
    assert event["data"]["metadata"] == [{"source": "s1", "page": 2, "name": "Doc"}]
    assert event["data"]["source"] == {"name": "Doc", "id": "Doc"}


def test_citation_metadata_length_mismatch():
    with pytest.raises(ValueError, match="one entry per document"):
        ev.citation(["a", "b"], name="x", metadata=[{}])


def test_code_execution_form():
    event = ev.code_execution("run1", name="calc", code="1+1", output="2")
    assert event == {
        "type": "citation",
        "data": {
            "type": "code_execution",
            "id": "run1",
            "name": "calc",
            "code": "1+1",
            "language": "python",
            "result": {"output": "2"},
        },
    }


def test_files_embeds_title_followups_error():
    assert ev.files([{"type": "image", "url": "/img.png"}]) == {
        "type": "files",
        "data": {"files": [{"type": "image", "url": "/img.png"}]},
    }
    assert ev.embeds(["<b>x</b>"], replace=True) == {
        "type": "embeds",
        "data": {"embeds": ["<b>x</b>"], "replace": True},
    }
    assert ev.chat_title("Trip") == {"type": "chat:title", "data": "Trip"}
    assert ev.follow_ups(["a?"]) == {"type": "chat:message:follow_ups", "data": {"follow_ups": ["a?"]}}
    assert ev.message_error("bad") == {"type": "chat:message:error", "data": {"error": {"content": "bad"}}}


def test_message_and_replace_say_they_do_not_show():
    assert ev.message("x") == {"type": "message", "data": {"content": "x"}}
    assert ev.replace("x") == {"type": "replace", "data": {"content": "x"}}
    for builder in (ev.message, ev.replace):
        assert "NOT change the visible reply" in builder.__doc__


def test_call_payloads():
    assert ev.confirmation("T", "M") == {"type": "confirmation", "data": {"title": "T", "message": "M"}}
    assert ev.input_request("T", "M", "ph", "v") == {
        "type": "input",
        "data": {"title": "T", "message": "M", "placeholder": "ph", "value": "v"},
    }
    assert ev.execute_request("return 1") == {"type": "execute", "data": {"code": "return 1"}}


def test_wire_form():
    assert ev.wire(ev.status("x")) == {"event": {"type": "status", "data": ev.status("x")["data"]}}


# --- emitter ---


class Recorder:
    def __init__(self):
        self.events = []

    async def __call__(self, event):
        self.events.append(event)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


async def test_emit_without_emitter_is_a_no_op():
    emitter = ev.Emitter()
    assert not emitter.can_emit and not emitter.can_call
    assert await emitter.emit(ev.status("x")) is False
    await emitter.status("x")
    await emitter.status("y", done=True)
    assert await emitter.notify("n") is False


async def test_emit_never_raises_and_logs(caplog):
    async def broken(event):
        raise ConnectionError("socket gone")

    emitter = ev.Emitter(broken)
    with caplog.at_level(logging.ERROR, logger="openwebui_pack.events"):
        assert await emitter.emit(ev.status("x")) is False
        await emitter.status("y", done=True)
        await emitter.notify("z", "error")
    assert len(caplog.records) == 3
    assert all(r.exc_info and "socket gone" in str(r.exc_info[1]) for r in caplog.records)


async def test_status_without_interval_sends_everything():
    rec = Recorder()
    emitter = ev.Emitter(rec)
    for i in range(5):
        await emitter.status(f"step {i}")
    assert [e["data"]["description"] for e in rec.events] == [f"step {i}" for i in range(5)]


async def test_coalescing_keeps_latest_and_final():
    rec, clock = Recorder(), Clock()
    emitter = ev.Emitter(rec, status_interval=10, clock=clock)
    await emitter.status("first")
    for i in range(100):
        await emitter.status(f"mid {i}")
    await emitter.status("final", done=True)
    assert [e["data"]["description"] for e in rec.events] == ["first", "final"]
    assert rec.events[-1]["data"]["done"] is True


async def test_pending_status_is_delivered_when_interval_ends():
    rec = Recorder()
    emitter = ev.Emitter(rec, status_interval=0.05)
    await emitter.status("first")
    await emitter.status("second")
    await emitter.status("third")
    assert [e["data"]["description"] for e in rec.events] == ["first"]
    await asyncio.sleep(0.12)
    assert [e["data"]["description"] for e in rec.events] == ["first", "third"]


async def test_final_after_pending_is_last_and_stale_pending_never_follows():
    rec = Recorder()
    emitter = ev.Emitter(rec, status_interval=0.05)
    await emitter.status("first")
    await emitter.status("pending")
    await emitter.status("final", done=True)
    await asyncio.sleep(0.12)
    assert [e["data"]["description"] for e in rec.events] == ["first", "final"]


async def test_flush_sends_pending_now():
    rec, clock = Recorder(), Clock()
    emitter = ev.Emitter(rec, status_interval=10, clock=clock)
    await emitter.status("a")
    await emitter.status("b")
    await emitter.flush()
    await emitter.flush()
    assert [e["data"]["description"] for e in rec.events] == ["a", "b"]


async def test_status_after_interval_goes_straight_out():
    rec, clock = Recorder(), Clock()
    emitter = ev.Emitter(rec, status_interval=1, clock=clock)
    await emitter.status("a")
    clock.now = 1.5
    await emitter.status("b")
    assert [e["data"]["description"] for e in rec.events] == ["a", "b"]


async def test_emitters_do_not_share_state():
    rec1, rec2, clock = Recorder(), Recorder(), Clock()
    one = ev.Emitter(rec1, status_interval=10, clock=clock)
    two = ev.Emitter(rec2, status_interval=10, clock=clock)
    await one.status("one")
    await two.status("two")
    assert len(rec1.events) == len(rec2.events) == 1


# --- interactive calls: anything unclear means cancel ---


def caller(answer=None, *, raises=None, delay=0.0):
    seen = []

    async def call(event):
        seen.append(event)
        if delay:
            await asyncio.sleep(delay)
        if raises:
            raise raises
        return answer

    call.seen = seen
    return call


async def test_confirm_true_is_consent():
    call = caller(True)
    assert await ev.Emitter(None, call).confirm("T", "M") is True
    assert call.seen == [ev.confirmation("T", "M")]


async def test_confirm_stale_input_text_is_a_confirm_click():
    assert await ev.Emitter(None, caller("earlier input")).confirm("T", "M") is True


@pytest.mark.parametrize(
    "answer",
    [False, None, "", 0, {"error": "Client session disconnected."}, {"error": "Event call timed out."}],
)
async def test_confirm_cancel_outcomes(answer):
    assert await ev.Emitter(None, caller(answer)).confirm("T", "M") is False


async def test_confirm_without_caller_is_cancel():
    assert await ev.Emitter(None, None).confirm("T", "M") is False


async def test_confirm_exception_is_cancel(caplog):
    with caplog.at_level(logging.ERROR, logger="openwebui_pack.events"):
        assert await ev.Emitter(None, caller(raises=RuntimeError("boom"))).confirm("T", "M") is False
    assert "boom" in caplog.text


async def test_confirm_timeout_is_cancel():
    emitter = ev.Emitter(None, caller(True, delay=5), call_timeout=0.05)
    assert await emitter.confirm("T", "M") is False
    assert await ev.Emitter(None, caller(True, delay=5)).confirm("T", "M", timeout=0.05) is False


async def test_ask_returns_text_or_none():
    call = caller("Alice")
    assert await ev.Emitter(None, call).ask("Name", "Your name?", "name", "Bob") == "Alice"
    assert call.seen[0]["data"] == {"title": "Name", "message": "Your name?", "placeholder": "name", "value": "Bob"}
    assert await ev.Emitter(None, caller("")).ask("T", "M") == ""
    for answer in (False, None, True, {"error": "x"}, 3):
        assert await ev.Emitter(None, caller(answer)).ask("T", "M") is None
    assert await ev.Emitter(None, caller("x", delay=5), call_timeout=0.05).ask("T", "M") is None
    assert await ev.Emitter(None, caller(raises=OSError())).ask("T", "M") is None


async def test_execute_returns_value_or_none():
    call = caller(2)
    assert await ev.Emitter(None, call).execute("return 1+1") == 2
    assert call.seen == [ev.execute_request("return 1+1")]
    assert await ev.Emitter(None, caller({"error": "x"})).execute("x") is None
    assert await ev.Emitter(None, None).execute("x") is None


async def test_call_problem_says_why_there_was_no_answer():
    emitter = ev.Emitter(None, caller(False))
    assert await emitter.confirm("T", "M") is False
    assert emitter.call_problem is None  # a Cancel click is an answer
    emitter = ev.Emitter(None, caller({"error": "Client session disconnected."}))
    await emitter.ask("T", "M")
    assert emitter.call_problem == "Client session disconnected"
    emitter = ev.Emitter(None, caller(True, delay=5), call_timeout=0.05)
    await emitter.confirm("T", "M")
    assert emitter.call_problem == "No answer within 0.05 s"
    emitter = ev.Emitter(None, caller(raises=OSError()))
    await emitter.execute("x")
    assert emitter.call_problem == "The dialog failed"
    emitter = ev.Emitter()
    await emitter.ask("T", "M")
    assert emitter.call_problem == "There is no open chat to ask in"
    emitter = ev.Emitter(None, caller("ok"))
    await emitter.ask("T", "M")
    assert emitter.call_problem is None


async def test_status_arriving_during_a_slow_flush_is_still_delivered():
    """A status that comes in while the timer's flush is still sending must get its own flush."""
    sent = []

    async def slow(event):
        await asyncio.sleep(0.05)
        sent.append(event["data"]["description"])

    emitter = ev.Emitter(slow, status_interval=0.1)
    await emitter.status("A")  # sent at once (takes 50 ms)
    await emitter.status("B")  # pending; flushed by the timer
    await asyncio.sleep(0.07)  # t = 120 ms: the timer fired at 100 ms and B is being sent
    await emitter.status("C")  # arrives while B is being sent
    await asyncio.sleep(0.5)
    assert sent == ["A", "B", "C"]


async def test_concurrent_status_callers_end_with_the_final_one():
    sent = []

    async def slow(event):
        await asyncio.sleep(0.005)
        sent.append(event["data"])

    emitter = ev.Emitter(slow, status_interval=0.02)

    async def agent(name):
        for i in range(10):
            await emitter.status(f"{name} {i}")
            await asyncio.sleep(0.003)

    await asyncio.gather(*(agent(n) for n in "abc"))
    await emitter.status("all done", done=True)
    await asyncio.sleep(0.1)
    assert sent[-1] == {"description": "all done", "done": True, "hidden": False}
    assert sum(1 for d in sent if d["done"]) == 1


def test_the_payload_type_does_not_use_a_name_open_webui_looks_up():
    # Open WebUI 0.12.4 loads a module with a top-level `Event` as an event function: code
    # inlined into a plugin must not bind that name.
    assert not hasattr(ev, "Event")
    assert ev.EventPayload.__annotations__.keys() == {"type", "data"}
