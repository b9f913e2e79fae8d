"""
title: Add to Memories
author: Open WebUI Pack contributors
version: 0.1.0
description: Saves a reply to your memories (edit first; reasoning and citation marks removed) so later chats recall it.
license: MIT
required_open_webui_version: 0.6.43
global: true
icon_url: data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAyNCAyNCIgZmlsbD0ibm9uZSIgc3Ryb2tlPSJibGFjayIgc3Ryb2tlLXdpZHRoPSIyIiBzdHJva2UtbGluZWNhcD0icm91bmQiIHN0cm9rZS1saW5lam9pbj0icm91bmQiPjxwYXRoIGQ9Ik02IDNoMTJ2MThsLTYtNC02IDR6Ii8+PHBhdGggZD0iTTEyIDd2Nk05IDEwaDYiLz48L3N2Zz4=
"""

import asyncio
import logging
import unicodedata
import weakref
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from shared.events import Emitter
from shared.host import MemoryHost, as_refusal
from shared.messages import for_reader, is_admin
from shared.secrets import mask_key_shapes
from shared.text import content_text, strip_blocks, strip_citation_marks, tidy_lines

_LOG = logging.getLogger("openwebui_pack.add_to_memories")

# --- the text to remember ------------------------------------------------------------

# Stored text keeps what was typed except characters that only do harm in a memory: C0 controls
# (NUL, which PostgreSQL refuses in text, and the rest but tab and newline; DEL too) and the bidi
# embedding, override and isolate controls, which can make a memory read differently from what it
# holds. A carriage return ends a line, so it becomes a newline.
_DROPPED = {code: None for code in [*range(0x20), 0x7F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}
_DROPPED.update({ord("\t"): ord("\t"), ord("\n"): ord("\n"), ord("\r"): ord("\n")})


def without_controls(text: str) -> str:
    """`text` without control characters and bidi controls; tabs and line breaks stay."""
    return text.replace("\r\n", "\n").translate(_DROPPED)


def memory_text(text: str) -> str:
    """What a reply's text becomes as a memory: no citation marks outside code, tidy lines."""
    # every <details> block goes (reasoning, tool calls, code runs), and raw reasoning tags too
    return tidy_lines(strip_citation_marks(strip_blocks(without_controls(text), details="all", reasoning_tags=True)))


def clicked_text(body: dict) -> str:
    """The clicked message (body["id"]), else the last assistant message, ready to remember."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    clicked = body.get("id")
    target = next((m for m in messages if clicked and m.get("id") == clicked), None)
    if target is None:
        target = next((m for m in reversed(messages) if m.get("role") == "assistant"), {})
    return memory_text(content_text(target.get("content")))


def normalized(text: str) -> str:
    """The form two memories are compared in: case, width, spacing and end punctuation ignored."""
    flat = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return flat.rstrip(" .!?;:,…")


# --- where memories live ----------------------------------------------------------------


@dataclass(frozen=True)
class StoredMemory:
    id: str
    content: str
    created_at: int = 0  # epoch seconds, as Open WebUI stores it


def _age(memory: StoredMemory) -> tuple[int, str]:
    """The order every worker agrees on for copies of one memory: oldest first, then by id."""
    return memory.created_at, memory.id


class MemoriesUnavailable(Exception):
    """Open WebUI refused: memories are off (404) or the user lacks the permission (403)."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(
            "Memories are turned off on this server; an administrator can turn them on."
            if status_code == 404
            else "You don't have permission to use memories; ask an administrator."
        )

    @property
    def admin_detail(self) -> str:
        if self.status_code == 404:
            return "turn on Memories in Admin Panel → Settings → General."
        return "the Memories feature permission is off for this user (Admin Panel → Users → Groups)."


def memory_switched_off(settings: Any, *, on_when_unset: bool = True) -> bool:
    """Whether the user's Memory switch in Settings → Personalization is off.

    Open WebUI 0.6.43 through 0.12.4 keep that switch in the user's settings as `ui.memory`
    (frontend Personalization.svelte saves it; Chat.svelte sends `features.memory` only when it is
    on). Unset (or null, which the settings update stores before 0.12) means the page's default:
    `on_when_unset`, which the host knows (MemoryHost.memory_on_when_unset).
    `settings` is `__user__["settings"]` (a dict) or a user record's settings (an object).
    """
    ui = settings.get("ui") if isinstance(settings, dict) else getattr(settings, "ui", None)
    switch = ui.get("memory") if isinstance(ui, dict) else None
    return not on_when_unset if switch is None else switch is False


class MemoryStore(Protocol):
    """One user's memories. Every method acts on that user only."""

    user_id: str

    async def check_access(self) -> None: ...  # raises MemoriesUnavailable
    async def existing(self) -> list[StoredMemory]: ...
    async def add(self, content: str) -> str: ...  # the new memory's id
    async def delete(self, memory_id: str) -> bool: ...


def _refusal(exc: Exception) -> MemoriesUnavailable | None:
    """Memories off (404) or not permitted (403), told by the error's type; None for anything else."""
    refusal = as_refusal(exc)
    if refusal is None or refusal.status_code not in (403, 404):
        return None
    return MemoriesUnavailable(refusal.status_code)


class _HostMemories:
    """One user's memories through Open WebUI (shared/host.py); the user is the signed-in one."""

    def __init__(self, host: MemoryHost, request: Any, user: Any) -> None:
        self._host = host
        self._request = request
        self._user = user
        self.user_id: str = user.id

    async def check_access(self) -> None:
        try:
            await self._host.check_memories_permission(self._request, self._user)
        except Exception as exc:
            refusal = _refusal(exc)
            if refusal is None:
                raise
            raise refusal from exc

    async def existing(self) -> list[StoredMemory]:
        rows = await self._host.memories(self.user_id)
        return [StoredMemory(row.id, row.content, int(getattr(row, "created_at", 0) or 0)) for row in rows]

    async def add(self, content: str) -> str:
        try:
            # stored and embedded like a memory added in Settings, so it is recalled when relevant
            return await self._host.add_memory(self._request, self._user, content)
        except Exception as exc:
            refusal = _refusal(exc)
            if refusal is None:
                raise
            raise refusal from exc

    async def delete(self, memory_id: str) -> bool:
        return await self._host.delete_memory(memory_id, self.user_id)


# --- saving -------------------------------------------------------------------------------------

Outcome = Literal["saved", "duplicate", "cancelled", "empty", "too_long", "unavailable", "failed"]

_EDIT_ROUNDS = 3  # the first edit plus two more when the text is too long
_TITLE = "Add to memories"
# one writer per user in this worker, so the duplicate check and the rollback see a stable list;
# across workers, _kept_after_twins settles what this lock cannot see
_WRITE_LOCKS: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class SaveOptions:
    edit: bool = True
    confirm: bool = False
    max_length: int = 1000
    deduplicate: bool = True
    # who clicked: an administrator reads the detail behind a failure; Memory off gets a hint
    admin: bool = False
    memory_on: bool = True


_MEMORY_OFF = "Memory is off in your settings, so chats won't use it until you turn it on."


def _failure_detail(step: str, exc: BaseException, check: str = "") -> str:
    """What an administrator reads about a failure: the step, the error without secrets, where to look."""
    said = mask_key_shapes(" ".join(str(exc).split())).rstrip(".")
    where = f"check {check} and the server log" if check else "the server log has more"
    return f"{step} failed: {said}; {where}." if said else f"{step} failed; {where}."


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


async def _edited(text: str, events: Emitter, limit: int) -> tuple[Outcome | None, str]:
    """The text after the edit dialog(s); the outcome is None when it may be saved."""
    prompt = f"Edit what should be remembered (at most {limit} characters)."
    for round_ in range(_EDIT_ROUNDS):
        answer = await events.ask(_TITLE, prompt, "What should be remembered?", text)
        if answer is None:
            await events.notify(f"{events.call_problem or 'Cancelled'}: nothing was saved to your memories.")
            return "cancelled", text
        text = without_controls(answer).strip()
        if not text:
            await events.notify("The text was empty: nothing was saved to your memories.")
            return "empty", text
        if len(text) <= limit:
            return None, text
        last = round_ == _EDIT_ROUNDS - 1
        follow = "Nothing was saved." if last else "Shorten it in the dialog."
        await events.notify(f"Too long for a memory: {len(text)} characters, the limit is {limit}. {follow}", "warning")
        prompt = f"That is {len(text)} characters; a memory holds at most {limit}. Shorten it:"
    return "too_long", text


async def save_memory(
    text: str,
    *,
    store: MemoryStore,
    events: Emitter,
    options: SaveOptions,
) -> Outcome:
    """Asks (as configured), then writes `text` as one memory of the store's user."""
    text = without_controls(text)
    try:
        await store.check_access()
    except MemoriesUnavailable as exc:
        await events.notify(for_reader(str(exc), exc.admin_detail, admin=options.admin), "warning")
        return "unavailable"
    except Exception as exc:
        _LOG.warning("memory access check failed: %s: %s", type(exc).__name__, mask_key_shapes(str(exc)))
        sentence = "Could not reach your memories: nothing was saved. Try again later."
        detail = _failure_detail("Checking the memories permission", exc)
        await events.notify(for_reader(sentence, detail, admin=options.admin), "error")
        return "failed"

    if options.edit:
        stopped, text = await _edited(text, events, options.max_length)
        if stopped is not None:
            return stopped
    elif not text:
        await events.notify("This message has no text to remember: nothing was saved.")
        return "empty"
    elif len(text) > options.max_length:
        await events.notify(
            f"Too long for a memory: {len(text)} characters, the limit is {options.max_length}. Nothing was saved.",
            "warning",
        )
        return "too_long"

    if options.confirm and not await events.confirm(_TITLE, f"Save this to your memories?\n\n{_quoted(text)}"):
        await events.notify(f"{events.call_problem or 'Cancelled'}: nothing was saved to your memories.")
        return "cancelled"

    lock = _WRITE_LOCKS.setdefault(store.user_id, asyncio.Lock())
    async with lock:
        return await _write(text, store, events, options)


async def _write(text: str, store: MemoryStore, events: Emitter, options: SaveOptions) -> Outcome:
    try:
        before = await store.existing()
    except Exception as exc:
        _LOG.warning("reading memories failed: %s: %s", type(exc).__name__, mask_key_shapes(str(exc)))
        sentence = "Could not read your memories: nothing was saved. Try again later."
        detail = _failure_detail("Reading the user's memories", exc)
        await events.notify(for_reader(sentence, detail, admin=options.admin), "error")
        return "failed"
    hint = "" if options.memory_on else " " + _MEMORY_OFF
    if options.deduplicate and any(normalized(m.content) == normalized(text) for m in before):
        await events.notify("Already saved in your memories." + hint)
        return "duplicate"

    await events.status("Saving to memories…")
    try:
        memory_id = await store.add(text)
    except MemoriesUnavailable as exc:
        await events.notify(for_reader(str(exc), exc.admin_detail, admin=options.admin), "warning")
        await events.status("Not saved to memories", done=True)
        return "unavailable"
    except asyncio.CancelledError:
        await asyncio.shield(_roll_back(text, {m.id for m in before}, store))
        raise
    except Exception as exc:
        _LOG.warning("add_memory failed: %s: %s", type(exc).__name__, mask_key_shapes(str(exc)))
        clean = await _roll_back(text, {m.id for m in before}, store)
        tail = "" if clean else " A partial entry may remain: delete it in Settings → Personalization → Memory."
        sentence = (
            "Could not save to memories: the server could not index the text. Try again later; if it keeps "
            "happening, tell an administrator." + tail
        )
        detail = _failure_detail("Embedding the memory", exc, "Admin Panel → Settings → Documents → Embedding")
        await events.notify(for_reader(sentence, detail, admin=options.admin), "error")
        await events.status("Not saved to memories", done=True)
        return "failed"
    if options.deduplicate and not await _kept_after_twins(text, memory_id, {m.id for m in before}, store):
        await events.notify("Already saved in your memories." + hint)
        await events.status("Saved to memories", done=True)
        return "duplicate"
    await events.notify("Saved. " + _MEMORY_OFF if hint else "Saved to your memories.", "success")
    await events.status("Saved to memories", done=True)
    return "saved"


async def _kept_after_twins(text: str, own_id: str, before: set[str], store: MemoryStore) -> bool:
    """After a write, keeps one copy of `text` among the memories new since `before`; True when ours stays.

    Workers of one Open WebUI share no lock, so clicks handled by different workers can all pass the
    duplicate check and all write. So each writer reads the memories again after its write: copies
    of the text that are new since its first read are twins, the oldest (`_age`) stays, and the
    writer deletes every other twin it sees. Of two writers, the later one's read comes after the
    earlier one's write, so at least one of them sees both copies, and all agree on the oldest:
    exactly one copy remains. A writer that finds its own copy gone deletes it once more, which
    removes the vector its add may have stored after the row was deleted.
    """
    try:
        rows = await store.existing()
        if own_id not in {m.id for m in rows}:
            await store.delete(own_id)
            return False
        key = normalized(text)
        twins = [m for m in rows if m.id not in before and normalized(m.content) == key]
        keep = min(twins, key=_age)
        for twin in twins:
            if twin.id != keep.id:
                await store.delete(twin.id)
    except Exception as exc:
        # the memory is saved; a copy another worker wrote at the same moment may remain
        _LOG.warning("checking for twins failed: %s: %s", type(exc).__name__, mask_key_shapes(str(exc)))
        return True
    return keep.id == own_id


async def _roll_back(text: str, before: set[str], store: MemoryStore) -> bool:
    """Deletes the row a failed add left behind; True when no such row remains.

    add_memory inserts the row before embedding it, so a failed embedding leaves a row that
    is listed but never recalled. It is the one new row with exactly our text.
    """
    try:
        rows = [m for m in await store.existing() if m.id not in before and m.content == text.strip()]
        if len(rows) > 1:
            _LOG.warning("rollback: %d new memories with the same text; not guessing which", len(rows))
            return False
        return all([await store.delete(m.id) for m in rows])
    except Exception as exc:
        _LOG.warning("rollback failed: %s", type(exc).__name__)
        return False


# --- the button -------------------------------------------------------------------------------------


class Action:
    class Valves(BaseModel):
        EDIT_BEFORE_SAVE: bool = Field(
            default=True,
            title="Edit before saving",
            description="Show the text in an editable dialog before saving it.",
        )
        CONFIRMATION_REQUIRED: bool = Field(
            default=False, title="Ask for confirmation", description="Ask for a confirmation before saving."
        )
        MAX_MEMORY_LENGTH: int = Field(
            default=1000,
            ge=1,
            title="Longest memory (characters)",
            description="Longest memory in characters. Open WebUI puts at most 2000 characters of "
            "relevant memories into a prompt by default.",
        )
        DEDUPLICATE: bool = Field(
            default=True,
            title="Skip duplicates",
            description="Skip text you already have as a memory (ignoring case and spacing).",
        )
        CALL_TIMEOUT: float = Field(
            default=300,
            ge=1,
            le=3600,
            title="Dialog timeout (seconds)",
            description="Seconds to wait for an answer in a dialog.",
        )
        priority: int = Field(default=0, title="Button order", description="Buttons are ordered by ascending priority.")

    def __init__(self) -> None:
        self.valves = self.Valves()
        self.host = MemoryHost()

    async def action(
        self,
        body: dict,
        __user__: dict | None = None,
        __request__: Any = None,
        __event_emitter__: Any = None,
        __event_call__: Any = None,
    ) -> None:
        valves = self.valves
        events = Emitter(__event_emitter__, __event_call__, call_timeout=valves.CALL_TIMEOUT)
        # The user is the one Open WebUI authenticated; nothing in the body can choose another.
        clicker = __user__ or {}
        user_id = clicker.get("id")
        user = None
        problem = "the action was called without a signed-in user or a request"
        if user_id and __request__ is not None:
            try:
                user = await self.host.get_user(user_id)
            except Exception as exc:
                _LOG.warning("loading the user failed: %s: %s", type(exc).__name__, mask_key_shapes(str(exc)))
                problem = _failure_detail("Loading the user record", exc)
            else:
                problem = "Open WebUI has no user record for this user" if user is None else ""
        if user is None:
            sentence = "Add to memories needs a signed-in user in a chat."
            await events.notify(for_reader(sentence, problem, admin=is_admin(clicker)), "error")
            return None
        store = _HostMemories(self.host, __request__, user)
        # __user__ carries the user's settings (0.6.43 to 0.12.4); the record loaded above has them too
        settings = clicker.get("settings") if "settings" in clicker else getattr(user, "settings", None)
        options = SaveOptions(
            edit=valves.EDIT_BEFORE_SAVE,
            confirm=valves.CONFIRMATION_REQUIRED,
            max_length=valves.MAX_MEMORY_LENGTH,
            deduplicate=valves.DEDUPLICATE,
            admin=is_admin(user),
            memory_on=not memory_switched_off(settings, on_when_unset=self.host.memory_on_when_unset()),
        )
        await save_memory(clicked_text(body), store=store, events=events, options=options)
        # The reply is left as it is: returning messages would rewrite it in the chat.
        return None
