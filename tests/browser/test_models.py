"""The model picker: each pack model listed with its name, for the admin and for a plain user.

`build.py deploy --share-models` (as the README says) made the pipes' models readable by every user;
without it a plain user's picker would list none of them.
"""

from __future__ import annotations

from tests.browser.page import check, new_chat, open_model_picker
from tests.browser.stack import AGENTS, AGGREGATOR, MOA

PACK_MODELS = {
    "gemini_manifold.gemini-2.5-flash": "Gemini 2.5 Flash",
    "gemini_manifold.gemini-2.5-pro": "Gemini 2.5 Pro",
    "gemini_manifold.gemini-3-pro-preview": "Gemini 3 Pro Preview",
    "gemini_manifold.gemini-2.0-flash": "Gemini 2.0 Flash",
    MOA: "Mixture of Agents",
}


def _check_picker(page, url, shots) -> list[tuple[str, str]]:
    new_chat(page, url)
    listed = open_model_picker(page)
    shots.step("model picker", page)
    by_id = dict((value, name) for name, value in listed)
    for model_id, name in PACK_MODELS.items():
        check(by_id.get(model_id) == name, f"{model_id} listed as {by_id.get(model_id)!r}, not {name!r}: {listed}")
    # Gemini's speech, embedding and Gemma models are not chat models of the pack
    check(not [v for v in by_id if v.startswith("gemini_manifold.") and v not in PACK_MODELS], listed)
    return listed


def test_the_admin_sees_each_pack_model_by_name(admin_page, stack, shots):
    _check_picker(admin_page, stack.url, shots)


def test_a_plain_user_sees_the_shared_models(user_page, stack, shots):
    listed = _check_picker(user_page, stack.url, shots)
    # Mixture of Agents' agents were shared too (it calls them as the chatting user)
    check({AGENTS[0], AGENTS[1], AGGREGATOR} <= {v for _, v in listed}, listed)
