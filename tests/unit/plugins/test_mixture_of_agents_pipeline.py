"""The Mixture-of-Agents pipeline for the Pipelines server, built and driven like that server drives it.

The pipeline talks to the loopback fake OpenAI server directly (aiohttp), from its own event loop
in a worker thread; the tests call it from a thread pool, as open-webui/pipelines main.py does.
"""

import concurrent.futures
import itertools
import json
import logging
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import load_built
from tests.unit.plugins.strategies import bodies

pipe_mod = load_built("mixture_of_agents", kind="pipe")
pipeline_mod = load_built("mixture_of_agents", kind="pipeline")

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "2"},
    {"role": "user", "content": "Another one?"},
]
AGENTS = ("m-a", "m-b", "m-c")


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(models=(*AGENTS, "m-agg")) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake):
    fake.clear()
    for model in list(fake.behaviours):
        fake.reset(model)
    fake.set("m-agg", reply="The final answer.", chunk_size=4)
    fake.strict_models = False
    fake.api_key = None


def assert_valid_statuses(events: list[dict]) -> None:
    assert events
    for event in events:
        assert event["type"] == "status"
        assert set(event["data"]) == {"description", "done", "hidden"}
    assert events[-1]["data"]["done"] is True


def make_pipeline(fake: FakeOpenAI, **valves: Any) -> Any:
    pipeline = pipeline_mod.Pipeline()
    values = {
        "models": list(AGENTS),
        "aggregator_model": "m-agg",
        "emit_interval": 0,
        "openai_api_base": fake.url,
        "openai_api_key": "sk-test-secret-123",
    } | valves
    # The server rebuilds valves from valves.json: pipeline.valves.__class__(**combined)
    pipeline.valves = pipeline.valves.__class__(**(pipeline.valves.model_dump() | values))
    return pipeline


def serve(pipeline: Any, body: dict) -> tuple[Any, list[Any]]:
    """What open-webui/pipelines main.py does: keyword call in a threadpool, then iterate."""
    messages = body["messages"]
    user_message = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")

    def job() -> tuple[Any, list[Any]]:
        result = pipeline.pipe(user_message=user_message, model_id="mixture_of_agents", messages=messages, body=body)
        if isinstance(result, str):
            return result, [result]
        return result, list(result)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(job).result(timeout=60)


def sse_lines(items: list[Any]) -> list[str]:
    """How the server turns each item into a line (dict -> JSON data line, str -> content chunk)."""
    lines = []
    for item in items:
        if isinstance(item, dict):
            lines.append("data: " + json.dumps(item))
        else:
            assert isinstance(item, str)
            lines.append("data: " + json.dumps({"choices": [{"delta": {"content": item}}]}))
    return lines


def test_pipeline_streams_text_and_wire_statuses(fake) -> None:
    fake.api_key = "sk-test-secret-123"
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": True}
    result, items = serve(make_pipeline(fake), body)
    assert not isinstance(result, str)
    texts = [i for i in items if isinstance(i, str)]
    events = [i["event"] for i in items if isinstance(i, dict)]
    assert all(isinstance(i, str) or set(i) == {"event"} for i in items)
    assert "".join(texts) == "The final answer." and len(texts) == 5
    assert_valid_statuses(events)
    assert len(sse_lines(items)) == len(items)
    requests = fake.chat_requests()
    assert len(requests) == 7 and requests[-1]["model"] == "m-agg"
    assert requests[0]["messages"] == CONVERSATION
    assert all(r.headers["authorization"] == "Bearer sk-test-secret-123" for r in fake.requests)


def test_pipeline_non_stream_returns_plain_text(fake) -> None:
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": False}
    result, _ = serve(make_pipeline(fake, num_layers=1), body)
    assert result == "The final answer."


TAGS_TASK = "### Task:\nGenerate 1-3 tags.\n### Chat History:\n<chat_history>\nUSER: 2+2?\n</chat_history>"
RAG_PROMPT = "### Task:\nRespond to the user query using the provided context.\n<context>\nfacts\n</context>\n2+2?"


def test_pipeline_task_prompt_is_one_aggregator_call(fake) -> None:
    fake.set("m-agg", reply='{"tags": ["math"]}')
    body = {"model": "mixture_of_agents", "messages": [{"role": "user", "content": TAGS_TASK}], "stream": False}
    result, _ = serve(make_pipeline(fake), body)
    assert result == '{"tags": ["math"]}'
    assert [r["model"] for r in fake.chat_requests()] == ["m-agg"]


# How Open WebUI 0.12.4's follow-up prompt (DEFAULT_FOLLOW_UP_GENERATION_PROMPT_TEMPLATE) begins and ends
FOLLOW_UP_TASK = (
    "### Task:\nPredict 3-5 useful messages this user might naturally send next to advance their current "
    "objective.\n### Guidelines:\n- ...\n### Chat History:\n<chat_history>\nUSER: 2+2?\nASSISTANT: 4\n</chat_history>"
)


def test_pipeline_follow_up_prompt_is_one_aggregator_call(fake) -> None:
    fake.set("m-agg", reply='<think>hmm {</think>{"follow_ups": ["And 3+3?"]}')
    body = {"model": "mixture_of_agents", "messages": [{"role": "user", "content": FOLLOW_UP_TASK}], "stream": False}
    result, _ = serve(make_pipeline(fake), body)
    assert result == '{"follow_ups": ["And 3+3?"]}'
    [request] = fake.chat_requests()
    assert request["model"] == "m-agg" and request["stream"] is False and "tools" not in request


def test_pipeline_rag_prompt_is_not_a_task(fake) -> None:
    """Open WebUI's RAG template also starts with "### Task:"; such a chat still gets the mixture."""
    body = {"model": "mixture_of_agents", "messages": [{"role": "user", "content": RAG_PROMPT}], "stream": False}
    result, _ = serve(make_pipeline(fake, num_layers=1), body)
    assert result == "The final answer."
    assert len(fake.chat_requests()) == 4


def test_pipeline_non_stream_misconfiguration_is_an_error_dict(fake) -> None:
    fake.strict_models = True
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": False}
    result, _ = serve(make_pipeline(fake, models=["nope"], aggregator_model="nope"), body)
    assert set(result) == {"error"}
    assert "`nope`" in result["error"]["detail"]


def test_pipeline_status_lines_never_echo_the_key(fake) -> None:
    fake.set("m-a", fail_status=500, fail_message="upstream says key sk-test-secret-123 is bad")
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": True}
    _, items = serve(make_pipeline(fake, num_layers=1, max_retries=0), body)
    shown = repr(items)
    assert "m-a: HTTP 500" in shown
    assert "sk-test-secret-123" not in shown


def test_pipeline_retries_and_drops_like_the_pipe(fake) -> None:
    fake.set("m-a", fail_status=503, fail_times=1)
    fake.set("m-b", fail_status=500)
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": True}
    _, items = serve(make_pipeline(fake, num_layers=1, max_retries=1), body)
    assert "".join(i for i in items if isinstance(i, str)) == "The final answer."
    descriptions = " ".join(i["event"]["data"]["description"] for i in items if isinstance(i, dict))
    assert "retry 1/1" in descriptions and "m-b: HTTP 500" in descriptions
    assert len(fake.chat_requests("m-a")) == 2 and len(fake.chat_requests("m-b")) == 2


def test_pipeline_errors_never_show_the_key(fake, caplog) -> None:
    fake.api_key = "another-key"
    caplog.set_level(logging.DEBUG)
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": True}
    _, items = serve(make_pipeline(fake), body)
    error = items[-1]["error"]["detail"]
    assert "refused the credentials (HTTP 401)" in error
    everything = json.dumps(items) + caplog.text
    assert "sk-test-secret-123" not in everything


def test_pipeline_misconfiguration_is_an_error_line(fake) -> None:
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": True}
    _, items = serve(make_pipeline(fake, models=[]), body)
    assert len(items) == 1 and set(items[0]) == {"error"}
    assert items[0]["error"]["detail"] == (
        "Mixture of Agents has no agent models to ask yet. Ask an administrator to set it up."
    )
    fake.strict_models = True
    _, items = serve(make_pipeline(fake, aggregator_model="nope"), body)
    assert "cannot use the model `nope`: the model was not found (HTTP 404" in items[-1]["error"]["detail"]
    _, items = serve(make_pipeline(fake, openai_api_base="http://127.0.0.1:9/v1", max_retries=0), body)
    assert "cannot reach the endpoint" in items[-1]["error"]["detail"]


async def test_pipeline_works_with_a_loop_running_in_the_calling_thread(fake) -> None:
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": True}
    pipeline = make_pipeline(fake, num_layers=1)
    items = list(
        pipeline.pipe(user_message="Another one?", model_id="mixture_of_agents", messages=CONVERSATION, body=body)
    )
    assert "".join(i for i in items if isinstance(i, str)) == "The final answer."


def test_pipeline_closing_early_cancels_the_run(fake) -> None:
    gate = threading.Event()  # the agents answer only once the run is gone

    def held(body: dict) -> str:
        gate.wait(30)
        return "too late"

    for model in AGENTS:
        fake.set(model, reply=held)
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": True}
    try:
        stream = make_pipeline(fake).pipe(
            user_message="x", model_id="mixture_of_agents", messages=CONVERSATION, body=body
        )
        first = next(stream)
        assert first["event"]["data"]["description"] == "Layer 1/2: asking 3 agents"
        workers = [t for t in threading.enumerate() if t.name == "mixture-of-agents"]
        assert len(workers) == 1
        stream.close()
        workers[0].join(timeout=30)  # a guard against a hang, not a timing claim
        assert not workers[0].is_alive()  # the run was cancelled while every agent was still thinking
    finally:
        gate.set()
    assert fake.chat_requests("m-agg") == []  # and nothing runs after it: no aggregator call, ever


def test_pipeline_valves_keep_their_names(fake) -> None:
    fields = set(pipeline_mod.Pipeline.Valves.model_fields)
    assert fields == {
        "models",
        "aggregator_model",
        "num_layers",
        "num_agents_per_layer",
        "emit_interval",
        "enable_status_indicator",
        "agent_timeout",
        "min_successful_agents",
        "show_intermediate",
        "max_retries",
        "max_answer_chars",
        "max_reply_chars",
        "openai_api_base",
        "openai_api_key",
    }
    assert set(pipe_mod.Pipe.Valves.model_fields) == fields - {"openai_api_base", "openai_api_key"}
    assert not hasattr(pipeline_mod.Pipeline(), "type")  # a `type` attribute hides a pipe from the server


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=bodies,
    messages=st.one_of(
        st.none(), st.just(CONVERSATION), st.lists(st.dictionaries(st.text(max_size=3), st.text(max_size=3)))
    ),
    models=st.lists(st.sampled_from([*AGENTS, "unknown"]), max_size=3),
    aggregator=st.sampled_from(["", "m-agg", "unknown"]),
    layers=st.integers(1, 2),
    agents=st.integers(1, 3),
    show=st.booleans(),
    failing=st.sets(st.sampled_from([*AGENTS, "m-agg"])),
)
def test_pipeline_any_valves_and_body_give_text_events_or_an_error_line(
    fake, body, messages, models, aggregator, layers, agents, show, failing
) -> None:
    fake.strict_models = True
    for model in (*AGENTS, "m-agg"):
        fake.set(model, fail_status=400 if model in failing else None)
    pipeline = make_pipeline(
        fake,
        models=models,
        aggregator_model=aggregator,
        num_layers=layers,
        num_agents_per_layer=agents,
        show_intermediate=show,
        max_retries=0,
    )
    # not streaming: the run happens in the call, and a failure is an error dict
    result = pipeline.pipe(user_message="x", model_id="mixture_of_agents", messages=messages, body=body)
    if isinstance(result, str):
        return
    if isinstance(result, dict):
        assert set(result) == {"error"} and result["error"]["detail"]
        assert isinstance(body, dict) and body.get("stream") is False
        return
    for item in result:  # streaming: failures arrive as one error line
        assert isinstance(item, str) or set(item) in ({"event"}, {"error"})


# --- upstream text that is not an answer, or carries the key ------------------------------------------

KEY = "sk-test-secret-123"
KEY_ERROR = {"error": {"message": f"proxy refused key Bearer {KEY}", "code": 502}}
PLAIN_KEY_ERROR = {"error": {"message": f"the key {KEY} is not valid here"}}
# Each way an upstream can put the key in text the pipeline shows: (model, FakeOpenAI.set changes)
KEY_PATHS = {
    "HTTP 500 body": ("m-b", {"fail_status": 500, "fail_message": f"upstream says key {KEY} is bad"}),
    "HTTP 200 error body": ("m-b", {"fail_status": 200, "fail_body": json.dumps(KEY_ERROR)}),
    "HTTP 200 error body, the key alone": ("m-b", {"fail_status": 200, "fail_body": json.dumps(PLAIN_KEY_ERROR)}),
    "HTTP 200 body not JSON": ("m-b", {"fail_status": 200, "fail_body": f"<html>{KEY}</html>"}),
    "aggregator SSE error line": ("m-agg", {"stream_items": [KEY_ERROR]}),
    "aggregator SSE error line, the key alone": ("m-agg", {"stream_items": [PLAIN_KEY_ERROR]}),
    "aggregator SSE error line after text": ("m-agg", {"stream_items": ["Half", PLAIN_KEY_ERROR]}),
    "aggregator answer quoting the key": ("m-agg", {"reply": f"your key is {KEY}"}),
}


@pytest.mark.parametrize("path", KEY_PATHS)
@pytest.mark.parametrize("role", ["admin", "user"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_no_key_reaches_statuses_blocks_errors_or_the_log(fake, path, role, stream, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    model, changes = KEY_PATHS[path]
    fake.set(model, **changes)
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": stream, "user": {"role": role}}
    result, items = serve(make_pipeline(fake, num_layers=1, show_intermediate=True, max_retries=0), body)
    everything = json.dumps(items) + caplog.text + (json.dumps(result) if not stream else "")
    assert KEY not in everything


def test_a_body_that_is_not_json_is_a_failed_agent_and_a_broken_stream_keeps_its_text(fake, caplog) -> None:
    fake.set("m-b", fail_mode="garbage")
    fake.set("m-agg", fail_mode="cut")
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": True}
    _, items = serve(make_pipeline(fake, num_layers=1, max_retries=0), body)
    texts = [i for i in items if isinstance(i, str)]
    assert texts == [
        "Half",
        "\n\n*(The reply broke off here: the aggregator m-agg failed (the connection to the endpoint broke off).)*",
    ]
    assert not any("error" in i for i in items if isinstance(i, dict))
    descriptions = [i["event"]["data"]["description"] for i in items if isinstance(i, dict)]
    assert "Layer 1/1: 2/3 agents answered, 1 dropped (m-b: the endpoint did not answer with JSON)" in descriptions
    assert descriptions[-1].endswith("; the reply broke off")
    assert "Traceback" not in caplog.text


def test_a_reset_that_aiohttp_lets_through_is_a_broken_connection(fake) -> None:
    endpoint = pipeline_mod.OpenAIEndpoint(None, "http://127.0.0.1:9/v1", KEY, {})
    failure = endpoint.unreachable("m", ConnectionResetError(104, f"Connection reset by peer {KEY}"))
    assert failure.reason == "the connection to the endpoint broke off" and failure.retryable
    assert KEY not in failure.detail
    assert issubclass(ConnectionResetError, pipeline_mod.TRANSPORT_ERRORS)


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(st.sampled_from(["sk-test-secret-123", "sk-", "s", "k", "x ", "secret", "-123"]), max_size=8),
    cuts=st.lists(st.integers(0, 200), max_size=6),
)
def test_the_key_filter_replaces_a_key_split_anywhere(text, cuts) -> None:
    whole = "".join(text)
    bounds = sorted({min(c, len(whole)) for c in cuts} | {0, len(whole)})
    key_filter = pipeline_mod.KeyFilter(KEY)
    out = "".join(key_filter.feed(whole[a:b]) for a, b in itertools.pairwise(bounds)) + key_filter.flush()
    assert out == whole.replace(KEY, "[redacted]")
