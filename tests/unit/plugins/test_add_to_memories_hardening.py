"""Add to Memories under hostile text and over several workers (built and loaded like Open WebUI loads it).

Several workers are several copies of the module (each with its own per-user lock), sharing one
fake host whose every call yields a seeded number of times, so the copies' steps interleave.
"""

import asyncio
import random
import types
import uuid

import pytest

from tests.helpers import load_built
from tests.unit.plugins import test_add_to_memories as base

mod = base.mod

# --- control characters ----------------------------------------------------------------------------


def test_controls_and_bidi_overrides_are_dropped_tabs_and_lines_kept():
    typed = "The user\x00 likes\x07 tea\x1b[0m\x7f.\r\nLine two\rthree\tcol \u202eevil\u202c \u2066iso\u2069"
    assert mod.without_controls(typed) == "The user likes tea[0m.\nLine two\nthree\tcol evil iso"


def test_other_text_is_kept_as_typed():
    typed = "Ünïcödé — 日本語, עברית\u200f, emoji 🍵, nbsp\u00a0and ZWJ 👩\u200d💻"
    assert mod.without_controls(typed) == typed


async def test_a_saved_memory_holds_no_controls_with_or_without_editing():
    host = base.FakeHost()
    reply = "The user\x00 likes \u202egreen\u202c tea."
    await base.click(base.button(host, EDIT_BEFORE_SAVE=False), base.Browser(), body=base.chat(reply))
    assert host.contents() == ["The user likes green tea."]

    host = base.FakeHost()
    browser = base.Browser("The user likes\x00 black\x01 tea.\r\n")
    await base.click(base.button(host), browser, body=base.chat(reply))
    assert browser.calls[0]["data"]["value"] == "The user likes green tea."  # the dialog shows clean text
    assert host.contents() == ["The user likes black tea."]


async def test_save_memory_cleans_the_text_it_is_given():
    host = base.FakeHost()
    outcome = await mod.save_memory(
        "Tea\x00 time",
        store=base.store_of(host),
        events=mod.Emitter(base.Browser().emit, None),
        options=mod.SaveOptions(edit=False),
    )
    assert outcome == "saved"
    assert host.contents() == ["Tea time"]


# --- long hostile text -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (" " * 50_000 + "x", "x"),  # citation rule with a leading `[ \t]*`: quadratic on the run
        ("[1#" * 20_000, "[1#" * 20_000),
        ("Tea" + " [1]" * 20_000 + ".", "Tea."),
        ("x" + "`" * 50_000, "x" + "`" * 50_000),  # inline code: a lazy span retried in every backtick run
        ("a" + "\t" * 50_000 + "\nend", "a\nend"),  # `[ \t]+$` retried at every tab of the run
        ("\x00" * 50_000 + "ok", "ok"),
    ],
)
def test_long_hostile_text_becomes_a_memory_in_one_pass(text, kept):
    """Each of these took seconds or more with the previous patterns; now they are linear."""
    assert mod.memory_text(text) == kept


def test_citation_marks_go_outside_code_only():
    assert mod.memory_text("Tea [1] and `code [2]` then\n```\nblock [3]\n```\nend [4][5].") == (
        "Tea and `code [2]` then\n```\nblock [3]\n```\nend."
    )


# --- several workers -------------------------------------------------------------------------------------


class SharedHost(base.FakeHost):
    """One server's memories seen by several workers: rows carry created_at (ties are common, as
    Open WebUI stores whole seconds) and every call yields a seeded number of times."""

    def __init__(self, seed, **kwargs):
        super().__init__(**kwargs)
        self.random = random.Random(seed)
        self.second = 1_700_000_000

    async def _yield(self):
        for _ in range(self.random.randrange(4)):
            await asyncio.sleep(0)

    async def memories(self, user_id):
        await self._yield()
        rows = await super().memories(user_id)
        await self._yield()
        return rows

    async def add_memory(self, request, user, content):
        await self._yield()
        if self.random.random() < 0.3:
            self.second += 1
        row = mod.StoredMemory(str(uuid.uuid4()), content.strip(), self.second)
        self.rows.append(row)
        self.added.append(row.content)
        await self._yield()  # the embedding
        self.vectors.add(row.id)
        return row.id

    async def delete_memory(self, memory_id, user_id):
        await self._yield()
        return await super().delete_memory(memory_id, user_id)


def worker_buttons(host, workers=2, *, settle=True, **valves):
    """One Action per worker, each from its own copy of the module (its own lock).

    `settle=False` leaves out the re-read after the write, to show the race it settles.
    """
    buttons = []
    for _ in range(workers):
        copy = load_built("add_to_memories")
        if not settle:
            copy._kept_after_twins = lambda *args: asyncio.sleep(0, result=True)
        action = copy.Action()
        action.valves = action.Valves(EDIT_BEFORE_SAVE=False, **valves)
        action.host = host
        buttons.append(action)
    return buttons


async def click_on(action, browser):
    await action.action(
        base.chat(),
        __user__={"id": "user-1", "role": "user"},
        __request__=object(),
        __event_emitter__=browser.emit,
        __event_call__=browser.call,
    )


@pytest.mark.parametrize("seed", range(40))
async def test_concurrent_clicks_on_two_workers_keep_one(seed):
    host = SharedHost(seed, rows=["The user lives in Lisbon."])
    buttons = worker_buttons(host)
    browsers = [base.Browser() for _ in range(20)]
    await asyncio.gather(*(click_on(buttons[i % 2], b) for i, b in enumerate(browsers)))
    assert sorted(host.contents()) == ["The user likes green tea.", "The user lives in Lisbon."]
    assert host.vectors == {r.id for r in host.rows if not r.id.startswith("old-")}  # no vector left over
    notices = [n for b in browsers for n in b.notices()]
    assert ("success", "Saved to your memories.") in notices
    assert set(notices) <= {("success", "Saved to your memories."), ("info", "Already saved in your memories.")}


async def test_without_the_re_read_the_same_clicks_leave_copies():
    """The race is real in this setup: the per-worker lock alone leaves duplicates."""
    copies = []
    for seed in range(40):
        host = SharedHost(seed)
        buttons = worker_buttons(host, settle=False)
        await asyncio.gather(*(click_on(buttons[i % 2], base.Browser()) for i in range(20)))
        copies.append(len(host.rows))
    assert max(copies) > 1


async def twin_during_add(age_offset, **valves):
    """Another worker writes the same text while this one's add is between insert and embedding."""
    host = base.FakeHost()
    other = {}

    async def other_worker_writes():
        own = host.rows[-1]
        twin = mod.StoredMemory("twin-" + uuid.uuid4().hex, own.content, own.created_at + age_offset)
        host.rows.append(twin)
        host.vectors.add(twin.id)
        other["id"] = twin.id

    host.during_add = other_worker_writes
    browser = base.Browser()
    await base.click(base.button(host, EDIT_BEFORE_SAVE=False, **valves), browser)
    return host, browser, other["id"]


async def test_an_older_twin_from_another_worker_wins():
    host, browser, twin = await twin_during_add(-1)
    assert [r.id for r in host.rows] == [twin]
    assert host.vectors == {twin}
    assert browser.notices() == [("info", "Already saved in your memories.")]
    assert browser.statuses()[-1] == ("Saved to memories", True)


async def test_a_newer_twin_from_another_worker_is_removed():
    host, browser, twin = await twin_during_add(+1)
    assert len(host.rows) == 1 and host.rows[0].id != twin
    assert twin in host.deleted and twin not in host.vectors
    assert browser.notices() == [("success", "Saved to your memories.")]


async def test_twins_stay_when_duplicates_are_allowed():
    host, _, _ = await twin_during_add(-1, DEDUPLICATE=False)
    assert len(host.rows) == 2


async def test_a_copy_removed_by_another_worker_has_its_vector_removed_too():
    host = base.FakeHost()

    async def other_worker_removes_ours():
        own = host.rows[-1]
        host.rows.insert(0, mod.StoredMemory("older", own.content, own.created_at - 1))
        host.rows.remove(own)  # the other worker deletes our row before our vector is stored

    host.during_add = other_worker_removes_ours
    browser = base.Browser()
    await base.click(base.button(host, EDIT_BEFORE_SAVE=False), browser)
    assert [r.id for r in host.rows] == ["older"]
    assert host.vectors == set()  # our late vector was deleted again
    assert browser.notices() == [("info", "Already saved in your memories.")]


async def test_a_failed_recheck_keeps_the_saved_memory(caplog):
    host = base.FakeHost()
    reads = {"n": 0}
    original = host.memories

    async def second_read_fails(user_id):
        reads["n"] += 1
        if reads["n"] > 1:
            raise RuntimeError("database gone")
        return await original(user_id)

    host.memories = second_read_fails
    browser = base.Browser()
    await base.click(base.button(host, EDIT_BEFORE_SAVE=False), browser)
    assert host.contents() == ["The user likes green tea."]
    assert browser.notices() == [("success", "Saved to your memories.")]
    assert "checking for twins failed" in caplog.text


def test_stored_memories_carry_their_age():
    row = types.SimpleNamespace(id="m1", content="x", created_at=1_700_000_123)

    class Host:
        async def memories(self, user_id):
            return [row, types.SimpleNamespace(id="m2", content="y")]

    store = mod._HostMemories(Host(), object(), types.SimpleNamespace(id="u1"))
    rows = asyncio.run(store.existing())
    assert rows == [mod.StoredMemory("m1", "x", 1_700_000_123), mod.StoredMemory("m2", "y", 0)]
