"""Mixture of Agents (after Wang et al. 2024), independent of the host that runs it.

Layer 1: every agent answers the conversation. Layer i > 1: every agent answers again with
the previous layer's answers as references. The aggregator then writes one reply from the
last layer's answers, streamed as it arrives. A host supplies a `ModelClient` (how to call a
model) and an `Emitter` (where statuses go); everything else lives here.

Time is a parameter (`MoaTiming`: the clock and the sleep), so tests run the mixture without
waiting; the `agent_timeout` cut itself runs on the event loop's timers.
"""

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field, field_validator

from shared.events import Emitter
from shared.messages import for_reader
from shared.openai_wire import ModelCallError, ModelUnavailable
from shared.retry import Backoff, OnRetry, RetryPlan, with_retries
from shared.secrets import scrub_upstream
from shared.text import strip_blocks, strip_reasoning

_MOA_LOG = logging.getLogger("openwebui_pack.moa")

ChatMessage = dict[str, Any]


# --- what a host provides --------------------------------------------------------------


class ModelClient(Protocol):
    """How the mixture calls one model. Failures are raised as `ModelCallError`."""

    async def complete(self, model: str, messages: list[ChatMessage]) -> str:
        """The whole answer of one non-streamed call."""
        ...

    def stream(self, model: str, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """The answer's text pieces as they arrive."""
        ...


class MoaError(Exception):
    """The mixture cannot produce an answer.

    `str(error)` is for any user: what happened, and whom to ask when only an administrator can
    fix it (`advice`). `detail` is the administrator's part (which valve, what the upstream said):
    it goes to the server log, and replaces the advice when the reader is an administrator.
    """

    def __init__(self, sentence: str, *, advice: str = "", detail: str = "") -> None:
        self.sentence = sentence.strip()
        self.advice = advice.strip()
        self.detail = " ".join(detail.split())
        super().__init__(f"{self.sentence} {self.advice}".strip())

    def text_for(self, *, admin: bool) -> str:
        return for_reader(self.sentence, self.detail, admin=True) if admin else str(self)


def message_for(error: MoaError, *, admin: bool) -> str:
    """The error's text for this reader; the administrator's detail goes to the server log too."""
    if error.detail:
        _MOA_LOG.warning("%s (%s)", error.sentence, error.detail)
    return scrub_upstream(error.text_for(admin=admin))


ASK_ADMIN = "Ask an administrator to check the Mixture of Agents settings."


# --- settings ------------------------------------------------------------------------------


def split_model_ids(value: Any) -> list[str]:
    """Model ids from a list or a comma-separated string (how the valves form sends arrays)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("models must be a list of model ids or a comma-separated string")
    return [str(item).strip() for item in items if str(item).strip()]


class MoaValves(BaseModel):
    """The valves both hosts share.

    Open WebUI stores valve values under these field names, so a renamed valve would lose what an
    administrator saved: names and defaults stay as they are.
    """

    models: list[str] = Field(
        default_factory=list,
        title="Agent models",
        description="Agent model ids, comma-separated. Agents get them in turn (round-robin), so one "
        "model may serve several agents.",
    )
    aggregator_model: str = Field(
        default="",
        title="Aggregator model",
        description="Model that writes the final answer. Empty: the first agent model.",
    )
    num_layers: int = Field(
        default=2, ge=1, le=10, title="Layers", description="Rounds of agent answers before aggregation."
    )
    num_agents_per_layer: int = Field(
        default=3, ge=1, le=16, title="Agents per layer", description="Agents answering in each layer."
    )
    emit_interval: float = Field(
        default=0.5,
        ge=0,
        le=10,
        title="Status update interval (seconds)",
        description="Minimum seconds between status updates.",
    )
    enable_status_indicator: bool = Field(
        default=True, title="Show progress", description="Show progress under the message."
    )
    agent_timeout: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        title="Agent timeout (seconds)",
        description="Seconds one agent may take, retries included.",
    )
    min_successful_agents: int = Field(
        default=1,
        ge=1,
        le=16,
        title="Minimum answers per layer",
        description="A layer with fewer answers than this (capped at the agent count) stops.",
    )
    show_intermediate: bool = Field(
        default=False,
        title="Show each layer's answers",
        description="Put each layer's answers in a collapsed block before the final answer.",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        title="Retries per call",
        description="Retries for rate limits (429) and server errors.",
    )

    max_answer_chars: int = Field(
        default=100_000,
        ge=1_000,
        le=10_000_000,
        title="Longest agent answer (characters)",
        description="Agent answers are cut to this length before the next layer and the aggregator read them.",
    )
    max_reply_chars: int = Field(
        default=4_000_000,
        ge=1_000,
        le=100_000_000,
        title="Longest reply (characters)",
        description="The aggregator's reply ends with a note once it reaches this length.",
    )

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> list[str]:
        return split_model_ids(value)


@dataclass(frozen=True)
class MoaSettings:
    models: tuple[str, ...]
    aggregator_model: str = ""
    num_layers: int = 2
    num_agents_per_layer: int = 3
    agent_timeout: float = 120.0
    min_successful_agents: int = 1
    show_intermediate: bool = False
    max_retries: int = 2
    enable_status_indicator: bool = True
    max_answer_chars: int = 100_000
    max_reply_chars: int = 4_000_000
    retry_base_delay: float = 1.0  # first backoff; doubles per retry, with jitter
    retry_max_delay: float = 20.0  # longest backoff (a server's Retry-After may ask for longer)

    @classmethod
    def from_valves(cls, valves: MoaValves, **overrides: Any) -> "MoaSettings":
        values: dict[str, Any] = {
            "models": tuple(split_model_ids(valves.models)),
            "aggregator_model": valves.aggregator_model.strip(),
            "num_layers": valves.num_layers,
            "num_agents_per_layer": valves.num_agents_per_layer,
            "agent_timeout": valves.agent_timeout,
            "min_successful_agents": valves.min_successful_agents,
            "show_intermediate": valves.show_intermediate,
            "max_retries": valves.max_retries,
            "enable_status_indicator": valves.enable_status_indicator,
            "max_answer_chars": valves.max_answer_chars,
            "max_reply_chars": valves.max_reply_chars,
        }
        return cls(**(values | overrides))

    @property
    def aggregator(self) -> str:
        return self.aggregator_model or (self.models[0] if self.models else "")

    @property
    def backoff(self) -> Backoff:
        return Backoff(base=self.retry_base_delay, factor=2.0, max_delay=self.retry_max_delay, jitter=0.5)

    @property
    def required_answers(self) -> int:
        return max(1, min(self.min_successful_agents, self.num_agents_per_layer))

    def models_in_use(self) -> list[str]:
        """Every model a run calls, aggregator last, without duplicates."""
        used = dict.fromkeys(assign_models(self.models, self.num_agents_per_layer))
        used[self.aggregator] = None
        return list(used)


# Sampling settings a user sets on the mixture and expects every model to get.
SAMPLING_PARAMS = ("temperature", "top_p", "max_tokens", "seed", "stop", "frequency_penalty", "presence_penalty")


def sampling_params(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        return {}
    return {k: body[k] for k in SAMPLING_PARAMS if body.get(k) is not None}


def valve(name: str) -> str:
    """A valve as an administrator sees it in the valves form: by its title."""
    return f'"{MoaValves.model_fields[name].title}" valve'


MODEL_VALVES = valve("models").replace(" valve", f" and {valve('aggregator_model')}s")


def check_settings(settings: MoaSettings) -> None:
    if not settings.models:
        raise MoaError(
            "Mixture of Agents has no agent models to ask yet.",
            advice="Ask an administrator to set it up.",
            detail=f"Set the {valve('models')} to one or more model ids (comma-separated, as listed in the "
            "model selector).",
        )


def assign_models(models: Iterable[str], agents: int) -> list[str]:
    """Agent i gets models[i % len(models)] in every layer: fewer models than agents is fine."""
    pool = list(models)
    return [pool[i % len(pool)] for i in range(agents)] if pool else []


# --- prompts (our own words) ------------------------------------------------------------------

REFINE_PROMPT = (
    "You are one of several assistants working on the user's latest message. Other assistants "
    "have already drafted the answers below. Use them as material, not as truth: check each one "
    "for mistakes and gaps, keep what is correct and useful, and then write your own complete "
    "answer to the user's latest message. Do not mention the drafts or the other assistants."
)
SYNTHESIZE_PROMPT = (
    "Several assistants have each answered the user's latest message; their answers are below. "
    "Write the one reply the user should get: compare the answers, settle disagreements on the "
    "merits, drop anything wrong or unsupported, combine the strongest points, and follow any "
    "format the user asked for. Reply to the user directly, in your own voice, without mentioning "
    "the assistants or their answers."
)


def with_references(conversation: list[ChatMessage], instructions: str, answers: list[str]) -> list[ChatMessage]:
    """The conversation with the instructions and numbered answers added to its system message.

    One system message, not two: several providers accept only one (or only the first).
    """
    references = "\n\n".join(
        f'<answer number="{number}">\n{answer}\n</answer>' for number, answer in enumerate(answers, 1)
    )
    addition = f"{instructions}\n\n{references}"
    messages = [dict(m) for m in conversation]
    if messages and messages[0].get("role") == "system":
        content = messages[0].get("content")
        if isinstance(content, list):
            messages[0]["content"] = [*content, {"type": "text", "text": addition}]
        elif content:
            messages[0]["content"] = f"{content}\n\n{addition}"
        else:
            messages[0]["content"] = addition
    else:
        messages.insert(0, {"role": "system", "content": addition})
    return messages


# --- text hygiene ------------------------------------------------------------------------------

DETAILS_TYPE = "mixture_of_agents"
# Tags Open WebUI's renderer or reasoning parser would act on inside our collapsed blocks.
# Only the "<" is replaced, with a fixed string: re.sub does that without a Python call per match.
_ACTIVE_TAG = re.compile(r"<(?=/?(?:details|summary|think|thinking|reason|reasoning|thought)\b)", re.I)


def clean_history(conversation: Any) -> list[ChatMessage]:
    """A copy of the conversation the models can take: dict messages only, our own blocks removed.

    Earlier replies of this pipe carry the collapsed layer blocks; agents need only the answer.
    """
    if not isinstance(conversation, list):
        return []
    messages: list[ChatMessage] = []
    for item in conversation:
        if not isinstance(item, dict):
            continue
        message = {k: v for k, v in item.items() if isinstance(k, str)}
        role = message.get("role")
        message["role"] = role if isinstance(role, str) and role else "user"
        content = message.get("content")
        if content is None:
            message["content"] = ""
        elif not isinstance(content, str | list):
            message["content"] = str(content)
        if (
            message["role"] == "assistant"
            and isinstance(message["content"], str)
            and DETAILS_TYPE in message["content"]
        ):
            own_blocks_removed = strip_blocks(message["content"], details={DETAILS_TYPE}, reasoning_tags=False)
            message["content"] = own_blocks_removed.strip()
        messages.append(message)
    return messages


def escape_active_tags(text: str) -> str:
    return _ACTIVE_TAG.sub("&lt;", text) if "<" in text else text


# --- the run ---------------------------------------------------------------------------------


@dataclass
class AgentResult:
    index: int
    model: str
    text: str = ""
    error: str = ""  # why there is no answer, in words any user may read
    detail: str = ""  # the administrator's part of it (server log, admin messages)
    unavailable: ModelUnavailable | None = None
    call_failed: bool = False  # the call failed for good (not an empty answer): not asked again this run
    skipped: bool = False  # not asked: the model failed in an earlier layer

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class MoaTiming:
    """Where the mixture reads the time and how it waits before a retry; tests pass their own.

    `clock` measures the `agent_timeout` budget and the run's duration. Give the event loop's
    clock (or one that moves with it) when the loop's time is not `time.monotonic`: the cut at
    `agent_timeout` runs on the loop's timers.
    """

    clock: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], Awaitable[object]] = field(default=asyncio.sleep)


REAL_TIME = MoaTiming()


def describe_failure(exc: BaseException, timeout: float) -> str:
    """Why a call gave no answer, as a phrase for a status line or a message."""
    if isinstance(exc, ModelCallError):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return "an unexpected error"


def failure_detail(exc: BaseException) -> str:
    """What an administrator needs to know about a failure beyond `describe_failure`."""
    if isinstance(exc, ModelCallError):
        return exc.detail
    if isinstance(exc, TimeoutError):
        return f"the {valve('agent_timeout')} bounds each call"
    return scrub_upstream(f"{type(exc).__name__}: {exc}", limit=500)


def _retry_plan(exc: BaseException) -> RetryPlan:
    """A model error says itself whether another try may help; anything else is not retried."""
    if isinstance(exc, ModelCallError):
        return RetryPlan(exc.retryable, exc.retry_after)
    return RetryPlan(False)


STATUS_LIMIT = 240  # upstream error texts can be long; the status line is one line


def shown(text: str, limit: int) -> str:
    """Text built from upstream words as any reader may see it: key shapes masked, one line, cut.

    The hosts scrub their own keys where they call models; this is the last line behind them.
    """
    return shorten(" ".join(scrub_upstream(text, limit=limit + 64).split()), limit)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Progress:
    """Status lines for one run; silent when the indicator is off."""

    def __init__(self, events: Emitter, settings: MoaSettings) -> None:
        self.events = events
        self.enabled = settings.enable_status_indicator
        self.layers = settings.num_layers

    async def say(self, description: str) -> None:
        if self.enabled:
            await self.events.status(shown(description, STATUS_LIMIT))

    async def finish(self, description: str) -> None:
        if self.enabled:
            await self.events.status(shown(description, STATUS_LIMIT), done=True)

    def layer(self, layer: int) -> str:
        return f"Layer {layer}/{self.layers}"

    def retry_notice(self, label: str, model: str, max_retries: int) -> OnRetry:
        """The status shown before a retry of `model`'s call."""

        async def notice(exc: BaseException, attempt: int, delay: float) -> None:
            reason = exc.reason if isinstance(exc, ModelCallError) else "an unexpected error"
            await self.say(f"{label}: {model} failed ({reason}); retry {attempt}/{max_retries} in {delay:.1f} s")

        return notice


async def complete_within(
    client: ModelClient,
    model: str,
    messages: list[ChatMessage],
    settings: MoaSettings,
    timing: MoaTiming,
    notice: OnRetry | None = None,
) -> str:
    """One whole answer, retried, within `agent_timeout` seconds from now.

    The budget holds twice over: a retry whose wait would end past it is not started (the model's
    own error is raised instead), and a call still running when it ends is cancelled (TimeoutError).
    """
    deadline = timing.clock() + settings.agent_timeout
    async with asyncio.timeout(settings.agent_timeout):
        return await with_retries(
            lambda: client.complete(model, messages),
            classify=_retry_plan,
            max_retries=settings.max_retries,
            backoff=settings.backoff,
            on_retry=notice,
            deadline=deadline,
            clock=timing.clock,
            sleep=timing.sleep,
        )


async def run_agent(
    index: int,
    model: str,
    messages: list[ChatMessage],
    client: ModelClient,
    settings: MoaSettings,
    timing: MoaTiming,
    notice: OnRetry,
) -> AgentResult:
    """One agent's answer; never raises (apart from cancellation): failures become results."""
    result = AgentResult(index, model)
    try:
        text = await complete_within(client, model, messages, settings, timing, notice)
        result.text = capped_answer(text, settings)
        if not result.text:
            result.error = "empty answer"
    except ModelUnavailable as exc:
        result.error, result.detail, result.unavailable = exc.reason, exc.detail, exc
    except Exception as exc:  # ModelCallError, TimeoutError, or a bug in a client
        if not isinstance(exc, ModelCallError | TimeoutError):
            _MOA_LOG.error("agent %d (%s) failed", index + 1, model, exc_info=exc)
        result.error = describe_failure(exc, settings.agent_timeout)
        result.detail = failure_detail(exc)
        result.call_failed = True
    if result.detail:
        _MOA_LOG.warning("agent %d (%s) gave no answer: %s (%s)", index + 1, model, result.error, result.detail)
    return result


ANSWER_CUT_NOTE = "\n\n[The rest of this answer was cut: it was longer than {limit:,} characters.]"


def capped_answer(text: str, settings: MoaSettings) -> str:
    """An agent's answer without its reasoning, cut to `max_answer_chars`.

    The reasoning scan reads at most `max_reply_chars` characters: the work per answer is bounded
    however much an upstream sends.
    """
    answer = strip_reasoning(text[: settings.max_reply_chars])
    if len(answer) <= settings.max_answer_chars:
        return answer
    return answer[: settings.max_answer_chars].rstrip() + ANSWER_CUT_NOTE.format(limit=settings.max_answer_chars)


def left_out(index: int, model: str, failed_in: int) -> AgentResult:
    """An agent whose model failed in an earlier layer of this run: not asked again."""
    return AgentResult(index, model, error=f"not asked again after failing in layer {failed_in}", skipped=True)


def newly_failed(results: list[AgentResult]) -> set[str]:
    """Models whose every call in this layer failed for good (one answer shows the model works)."""
    failed = {r.model for r in results if r.call_failed}
    return failed - {r.model for r in results if r.ok}


async def run_layer(
    layer: int,
    messages: list[ChatMessage],
    client: ModelClient,
    settings: MoaSettings,
    timing: MoaTiming,
    progress: _Progress,
    failed_in: dict[str, int],
) -> list[AgentResult]:
    """All agents of one layer, concurrently; statuses as each one finishes.

    `failed_in` maps each model that failed for good in an earlier layer to that layer: its agents
    are not asked again (a retry already told that it will not answer). The layer adds its own.
    """
    models = assign_models(settings.models, settings.num_agents_per_layer)
    total = len(models)
    label = progress.layer(layer)
    results = [left_out(i, m, failed_in[m]) for i, m in enumerate(models) if m in failed_in]
    asked = [(i, m) for i, m in enumerate(models) if m not in failed_in]

    line = f"{label}: asking {plural(len(asked), 'agent')}"
    if results:
        line += f" ({', '.join(dict.fromkeys(r.model for r in results))} left out after failing)"
    await progress.say(line)
    tasks = [
        asyncio.create_task(
            run_agent(
                i, model, messages, client, settings, timing, progress.retry_notice(label, model, settings.max_retries)
            )
        )
        for i, model in asked
    ]
    try:
        pending: set[asyncio.Task[AgentResult]] = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                result = task.result()
                results.append(result)
                if result.unavailable is not None:
                    raise unavailable_error(result.model, result.unavailable)
            await progress.say(layer_progress(label, results, total))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for model in newly_failed(results):
        failed_in.setdefault(model, layer)
    return sorted(results, key=lambda r: r.index)


def layer_progress(label: str, results: list[AgentResult], total: int) -> str:
    answered = sum(r.ok for r in results)
    line = f"{label}: {answered}/{total} agents answered"
    failed = [r for r in results if not r.ok and not r.skipped]
    if failed:
        last = failed[-1]
        line += f", {len(failed)} dropped ({last.model}: {last.error})"
    return line


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def unavailable_error(model: str, cause: ModelUnavailable | str, *, access: bool = False) -> MoaError:
    """A model the mixture cannot use: the user learns whom to ask, the administrator what to change.

    `cause` is the model's error, or the reason as a phrase; `access`: the user may lack access to
    the model (the error's own flag wins).
    """
    reason = cause.reason if isinstance(cause, ModelUnavailable) else cause
    upstream = cause.detail if isinstance(cause, ModelUnavailable) else ""
    access = cause.access if isinstance(cause, ModelUnavailable) else access
    credentials = isinstance(cause, ModelUnavailable) and cause.status in (401, 403)
    sentence = f"Mixture of Agents cannot use the model `{model}`: {reason}."
    if access:
        advice = f"Ask an administrator to give you access to the model `{model}`."
        detail = f"Give this user access to the model `{model}`, or change the {MODEL_VALVES}."
    elif credentials:
        advice = ASK_ADMIN
        detail = f"Check the API key of the connection that serves `{model}`."
    else:
        advice = ASK_ADMIN
        detail = f"Check the {MODEL_VALVES}."
    return MoaError(sentence, advice=advice, detail=f"{upstream}. {detail}" if upstream else detail)


def layer_block(layer: int, layers: int, results: list[AgentResult]) -> str:
    """One layer's answers as a collapsed block (the UI needs the attribute and the newline)."""
    answered = sum(r.ok for r in results)
    lines = [
        f'<details type="{DETAILS_TYPE}" done="true">',
        f"<summary>Layer {layer} of {layers}: {answered} of {len(results)} agents answered</summary>",
        "",
    ]
    for r in results:
        if r.ok:
            lines += [f"**Agent {r.index + 1}** · `{r.model}`", "", escape_active_tags(r.text), ""]
        else:
            error = escape_active_tags(shown(r.error, STATUS_LIMIT))
            lines += [f"**Agent {r.index + 1}** · `{r.model}`: no answer ({error})", ""]
    lines.append("</details>")
    return "\n".join(lines) + "\n\n"


def layer_failure(layer: int, layers: int, results: list[AgentResult], needed: int) -> MoaError:
    answered = sum(r.ok for r in results)
    reasons = "; ".join(f"{r.model}: {r.error.rstrip('.')}" for r in results if not r.ok)
    details = [f"{r.model}: {r.detail}" for r in results if r.detail]
    if needed > 1:
        details.append(f"The {valve('min_successful_agents')} asks for {needed}.")
    return MoaError(
        f"Mixture of Agents stopped in layer {layer} of {layers}: {answered} of {len(results)} agents "
        f"answered, at least {needed} needed. {reasons}.",
        detail="; ".join(details),
    )


async def _close(pieces: AsyncIterator[str]) -> None:
    closer = getattr(pieces, "aclose", None)
    if closer is not None:
        await closer()


async def _next_text(pieces: AsyncIterator[str], timeout: float) -> str | None:
    """The next non-empty piece, or None at the end; each wait for a piece is bounded by `timeout`."""
    while True:
        try:
            async with asyncio.timeout(timeout):
                piece = await pieces.__anext__()
        except StopAsyncIteration:
            return None
        if piece:
            return piece


async def stream_answer(
    client: ModelClient,
    model: str,
    messages: list[ChatMessage],
    settings: MoaSettings,
    timing: MoaTiming = REAL_TIME,
    notice: OnRetry | None = None,
) -> AsyncIterator[str]:
    """The model's streamed answer; retried while nothing has been sent yet.

    `agent_timeout` bounds the wait for the first piece and every gap between pieces; a retry whose
    wait would end more than `agent_timeout` after the first attempt began is not started.
    """

    async def first_piece() -> tuple[AsyncIterator[str], str | None]:
        pieces = client.stream(model, messages).__aiter__()
        try:
            return pieces, await _next_text(pieces, settings.agent_timeout)
        except BaseException:
            await _close(pieces)
            raise

    pieces, piece = await with_retries(
        first_piece,
        classify=_retry_plan,
        max_retries=settings.max_retries,
        backoff=settings.backoff,
        on_retry=notice,
        deadline=timing.clock() + settings.agent_timeout,
        clock=timing.clock,
        sleep=timing.sleep,
    )
    try:
        while piece is not None:
            yield piece
            piece = await _next_text(pieces, settings.agent_timeout)
    finally:
        await _close(pieces)


def aggregator_failure(aggregator: str, exc: Exception, timeout: float) -> MoaError:
    """The message for an aggregator that gave no answer."""
    if isinstance(exc, ModelUnavailable):
        return unavailable_error(aggregator, exc)
    if isinstance(exc, TimeoutError):
        return MoaError(
            f"The aggregator {aggregator} sent nothing for {timeout:g} s.",
            detail=f"The {valve('agent_timeout')} bounds each wait for the aggregator's next piece.",
        )
    if not isinstance(exc, ModelCallError):
        _MOA_LOG.error("aggregator %s failed", aggregator, exc_info=exc)
    return MoaError(
        f"The aggregator {aggregator} failed: {describe_failure(exc, timeout)}.", detail=failure_detail(exc)
    )


def summary(settings: MoaSettings, answered: int, aggregator: str, seconds: float, ending: str = "") -> str:
    """The last status of a run that produced an answer: what happened, not what was planned."""
    line = (
        f"Mixture of Agents: {plural(settings.num_layers, 'layer')}, {answered} of "
        f"{plural(settings.num_agents_per_layer, 'agent')} answered, combined by {aggregator} in {seconds:.1f} s"
    )
    return f"{line}; {ending}" if ending else line


REPLY_CUT_NOTE = (
    "\n\n*(The reply was cut here: it reached the longest reply this mixture sends, {limit:,} characters.)*"
)
BROKE_OFF_NOTE = "\n\n*(The reply broke off here: {reason}.)*"


@dataclass
class ReplyState:
    """What the aggregator's reply has done so far: characters sent, and why it ended early."""

    sent: int = 0
    ending: str = ""


async def aggregated_reply(
    client: ModelClient,
    aggregator: str,
    messages: list[ChatMessage],
    settings: MoaSettings,
    timing: MoaTiming,
    notice: OnRetry,
    state: ReplyState,
) -> AsyncIterator[str]:
    """The aggregator's streamed reply, at most `max_reply_chars` long.

    A reply that reaches the limit ends with a note, and the stream is closed. A stream that breaks
    after text was sent (a reset, a gap past `agent_timeout`, garbage) ends with the text so far
    and a note, and one log line; before any text, the failure is raised as a `MoaError`.
    """
    limit = settings.max_reply_chars
    try:
        async with aclosing(stream_answer(client, aggregator, messages, settings, timing, notice)) as pieces:
            async for piece in pieces:
                if state.sent + len(piece) >= limit:
                    state.ending = f"cut at {limit:,} characters"
                    yield piece[: limit - state.sent] + REPLY_CUT_NOTE.format(limit=limit)
                    state.sent = limit
                    return
                state.sent += len(piece)
                yield piece
    except Exception as exc:
        if not state.sent:
            raise aggregator_failure(aggregator, exc, settings.agent_timeout) from None
        reason = broke_off_reason(aggregator, exc, settings.agent_timeout)
        _MOA_LOG.warning(
            "the aggregator %s broke off after %d characters: %s (%s)",
            aggregator,
            state.sent,
            reason,
            " ".join(failure_detail(exc).split()) or "no detail",
        )
        state.ending = "the reply broke off"
        yield BROKE_OFF_NOTE.format(reason=shown(reason, STATUS_LIMIT))


def broke_off_reason(aggregator: str, exc: BaseException, timeout: float) -> str:
    """Why a started reply stopped, as a phrase any user may read."""
    if isinstance(exc, TimeoutError):
        return f"the aggregator {aggregator} sent nothing more for {timeout:g} s"
    return f"the aggregator {aggregator} failed ({describe_failure(exc, timeout)})"


async def run_mixture(
    conversation: Any, client: ModelClient, settings: MoaSettings, events: Emitter, timing: MoaTiming = REAL_TIME
) -> AsyncIterator[str]:
    """The mixture's reply as text pieces: optional layer blocks, then the aggregator's answer.

    Raises `MoaError` with a message for the user when no answer can be produced. The last
    status (done=True) is sent whatever happens, when the indicator is on.
    """
    check_settings(settings)
    history = clean_history(conversation)
    if not history:
        raise MoaError("Mixture of Agents got no messages to answer.")
    progress = _Progress(events, settings)
    started = timing.clock()
    final = "Mixture of Agents stopped"
    try:
        answers: list[str] = []
        failed_in: dict[str, int] = {}
        for layer in range(1, settings.num_layers + 1):
            messages = history if layer == 1 else with_references(history, REFINE_PROMPT, answers)
            results = await run_layer(layer, messages, client, settings, timing, progress, failed_in)
            if settings.show_intermediate:
                yield layer_block(layer, settings.num_layers, results)
            answers = [r.text for r in results if r.ok]
            if len(answers) < settings.required_answers:
                raise layer_failure(layer, settings.num_layers, results, settings.required_answers)

        aggregator = settings.aggregator
        notice = progress.retry_notice("Aggregating", aggregator, settings.max_retries)
        await progress.say(f"Aggregating {plural(len(answers), 'answer')} with {aggregator}")
        final_messages = with_references(history, SYNTHESIZE_PROMPT, answers)
        state = ReplyState()
        reply = aggregated_reply(client, aggregator, final_messages, settings, timing, notice, state)
        async with aclosing(reply) as pieces:
            async for piece in pieces:
                yield piece
        if not state.sent:
            raise MoaError(f"The aggregator {aggregator} returned an empty answer.")
        final = summary(settings, len(answers), aggregator, timing.clock() - started, state.ending)
    except MoaError as exc:
        final = f"Stopped: {exc.sentence}"  # the error itself carries the advice
        raise
    finally:
        await progress.finish(final)


async def run_task(conversation: Any, client: ModelClient, settings: MoaSettings, timing: MoaTiming = REAL_TIME) -> str:
    """Open WebUI's title/tags/follow-up tasks: one call to the aggregator, not the mixture.

    Open WebUI 0.12.4 (open_webui/utils/task.py, utils/middleware.py) reads the JSON object
    between the answer's first "{" and last "}": a reasoning block before it would break that,
    so it is removed.
    """
    check_settings(settings)
    model = settings.aggregator
    messages = clean_history(conversation)
    if not messages:
        raise MoaError("Mixture of Agents got no messages to answer.")
    try:
        return strip_reasoning(await complete_within(client, model, messages, settings, timing)).strip()
    except ModelUnavailable as exc:
        raise unavailable_error(model, exc) from None
    except TimeoutError:
        raise MoaError(
            f"The aggregator {model} gave no answer within {settings.agent_timeout:g} s.",
            detail=f"The {valve('agent_timeout')} bounds each call.",
        ) from None
    except Exception as exc:
        if not isinstance(exc, ModelCallError):
            _MOA_LOG.error("task call to %s failed", model, exc_info=exc)
        raise MoaError(
            f"The aggregator {model} failed: {describe_failure(exc, settings.agent_timeout)}.",
            detail=failure_detail(exc),
        ) from None
