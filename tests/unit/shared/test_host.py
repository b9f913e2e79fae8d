"""The seam's own rules; the host tier runs it inside a real Open WebUI."""

import sys
import types

import pytest
from fastapi import HTTPException

from shared.host import ChatHost, HostRefusal, ModelNotFound, _settle, as_refusal


async def test_sync_and_async_host_functions_are_both_accepted():
    async def later():
        return 2

    assert await _settle(1) == 1
    assert await _settle(later()) == 2


def test_http_errors_are_recognised_by_type():
    refusal = as_refusal(HTTPException(status_code=403, detail="nope"))
    assert isinstance(refusal, HostRefusal)
    assert (refusal.status_code, refusal.detail) == (403, "nope")
    assert as_refusal(RuntimeError("403")) is None

    class LooksLikeOne(Exception):
        status_code = 404

    assert as_refusal(LooksLikeOne()) is None  # shape alone is not enough


@pytest.fixture
def chat_module(monkeypatch):
    module = types.ModuleType("open_webui.utils.chat")
    monkeypatch.setitem(sys.modules, "open_webui.utils.chat", module)
    return module


async def test_model_not_found_and_refusals_from_the_chat_path(chat_module):
    host = ChatHost()

    async def unknown(request, form, user):
        raise Exception("Model not found")  # what Open WebUI 0.12.4 raises

    chat_module.generate_chat_completion = unknown
    with pytest.raises(ModelNotFound):
        await host.chat_completion(None, {"model": "m"}, None)

    async def forbidden(request, form, user):
        raise HTTPException(status_code=403, detail="no")

    chat_module.generate_chat_completion = forbidden
    with pytest.raises(HostRefusal) as caught:
        await host.chat_completion(None, {"model": "m"}, None)
    assert caught.value.status_code == 403

    async def other(request, form, user):
        raise ValueError("Model not found in cache")

    chat_module.generate_chat_completion = other
    with pytest.raises(ValueError):
        await host.chat_completion(None, {"model": "m"}, None)


def test_model_registry_outside_a_request_is_none():
    host = ChatHost()
    assert host.models(None) is None
    request = types.SimpleNamespace(app=types.SimpleNamespace(state=types.SimpleNamespace(MODELS={"a": {}})))
    assert host.models(request) == {"a": {}}


async def test_model_access_refusal_is_a_plain_no(monkeypatch):
    env = types.ModuleType("open_webui.env")
    env.BYPASS_MODEL_ACCESS_CONTROL = False
    models = types.ModuleType("open_webui.utils.models")

    async def check_model_access(user, model):
        raise Exception("Model not found")  # what Open WebUI 0.12.4 raises for a denied model

    models.check_model_access = check_model_access
    monkeypatch.setitem(sys.modules, "open_webui.env", env)
    monkeypatch.setitem(sys.modules, "open_webui.utils.models", models)
    host = ChatHost()
    assert await host.may_use_model(types.SimpleNamespace(role="user"), {"id": "m"}) is False
    assert await host.may_use_model(types.SimpleNamespace(role="admin"), {"id": "m"}) is True
