"""The seam's own rules; the host tier runs it inside a real Open WebUI."""

import sys
import threading
import types

import pytest
from fastapi import HTTPException

from shared.host import ChatHost, HostRefusal, MemoryHost, ModelNotFound, _internal, _settle, as_refusal


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


# --- memories on each Open WebUI version's shape -------------------------------------------------
# Fake `open_webui` modules shaped like 0.6.43, 0.8.12 and 0.10.2+ (see the MemoryHost docstrings).


def _modules(monkeypatch, **modules):
    """Installs fake open_webui modules (name -> attributes); the package and parents included."""
    made = {}
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(module, key, value)
        made[name] = module
    for name in list(made):
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            made.setdefault(parent, types.ModuleType(parent))
    for name, module in made.items():
        module.__path__ = []  # a package: a submodule not faked is not found
        monkeypatch.setitem(sys.modules, name, module)
    # a submodule that is not faked must not be found through the real package
    for name in ("open_webui.routers.memories", "open_webui.retrieval.vector.async_client"):
        if name not in made:
            monkeypatch.setitem(sys.modules, name, None)
    return made


class Config:
    """Open WebUI's AppConfig: a missing key is an AttributeError."""

    def __init__(self, **values):
        self._values = values

    def __getattr__(self, key):
        try:
            return self.__dict__["_values"][key]
        except KeyError:
            raise AttributeError(f"Config key '{key}' not found") from None


def _request(**config):
    return types.SimpleNamespace(app=types.SimpleNamespace(state=types.SimpleNamespace(config=Config(**config))))


USER = types.SimpleNamespace(id="u1", role="user")
ADMIN = types.SimpleNamespace(id="a1", role="admin")


async def _status(host, request, user):
    try:
        await host.check_memories_permission(request, user)
    except HostRefusal as exc:
        return exc.status_code
    return 200


async def test_memory_gate_of_0_12_is_called_with_the_user(monkeypatch):
    seen = []

    async def check_memories_permission(user):
        seen.append(user.id)
        if user.role != "admin":
            raise HTTPException(status_code=403, detail="no")

    _modules(monkeypatch, **{"open_webui.routers.memories": {"check_memories_permission": check_memories_permission}})
    host = MemoryHost()
    assert await _status(host, None, USER) == 403
    assert await _status(host, None, ADMIN) == 200
    assert seen == ["u1", "a1"]


async def test_memory_gate_of_0_8_is_read_from_the_request(monkeypatch):
    calls = []

    def has_permission(user_id, key, defaults, db=None):  # synchronous in 0.8.12
        calls.append((user_id, key))
        return defaults.get("features", {}).get("memories", False)

    _modules(
        monkeypatch,
        **{
            "open_webui.routers.memories": {"add_memory": object()},  # the module without the gate function
            "open_webui.utils.access_control": {"has_permission": has_permission},
        },
    )
    host = MemoryHost()
    allowed = {"features": {"memories": True}}
    denied = {"features": {"memories": False}}
    assert await _status(host, _request(ENABLE_MEMORIES=True, USER_PERMISSIONS=allowed), USER) == 200
    assert await _status(host, _request(ENABLE_MEMORIES=True, USER_PERMISSIONS=denied), USER) == 403
    # 0.8.12 does not exempt administrators
    assert await _status(host, _request(ENABLE_MEMORIES=True, USER_PERMISSIONS=denied), ADMIN) == 403
    # off wins before the permission is read
    calls.clear()
    assert await _status(host, _request(ENABLE_MEMORIES=False, USER_PERMISSIONS=allowed), USER) == 404
    assert calls == []


async def test_memory_gate_of_0_8_accepts_an_async_permission_check(monkeypatch):
    async def has_permission(user_id, key, defaults):
        return False

    _modules(
        monkeypatch,
        **{
            "open_webui.routers.memories": {},
            "open_webui.utils.access_control": {"has_permission": has_permission},
        },
    )
    assert await _status(MemoryHost(), _request(ENABLE_MEMORIES=True, USER_PERMISSIONS={}), USER) == 403


async def test_memories_of_0_6_have_no_gate(monkeypatch):
    _modules(monkeypatch, **{"open_webui.routers.memories": {}})
    host = MemoryHost()
    assert await _status(host, _request(), USER) == 200  # no ENABLE_MEMORIES in the config at all


async def test_memory_gate_without_a_request_is_an_error_not_a_refusal(monkeypatch):
    _modules(monkeypatch, **{"open_webui.routers.memories": {}})
    with pytest.raises(RuntimeError):
        await MemoryHost().check_memories_permission(None, USER)


@pytest.mark.parametrize(("version", "on"), [("0.6.43", False), ("0.8.12", False), ("0.10.2", True), ("0.12.4", True)])
def test_memory_switch_default_follows_the_version(monkeypatch, version, on):
    _modules(monkeypatch, **{"open_webui.env": {"VERSION": version}})
    assert MemoryHost().memory_on_when_unset() is on


def test_memory_switch_default_without_a_version_is_the_current_one(monkeypatch):
    _modules(monkeypatch, **{"open_webui.env": {}})
    assert MemoryHost().memory_on_when_unset() is True


class Client:
    def __init__(self):
        self.deleted = []
        self.threads = []

    def delete(self, collection_name, ids):
        self.threads.append(threading.current_thread().name)
        self.deleted.append((collection_name, ids))


class AsyncClient(Client):
    async def delete(self, collection_name, ids):
        self.deleted.append((collection_name, ids))


def _memories_table(rows_deleted=True):
    calls = []

    class Memories:
        @staticmethod
        def delete_memory_by_id_and_user_id(memory_id, user_id):
            calls.append((memory_id, user_id))
            return rows_deleted

    return Memories, calls


async def test_delete_uses_the_async_vector_client_from_0_10(monkeypatch):
    client, sync = AsyncClient(), Client()
    memories, calls = _memories_table()
    _modules(
        monkeypatch,
        **{
            "open_webui.models.memories": {"Memories": memories},
            "open_webui.retrieval.vector.async_client": {"ASYNC_VECTOR_DB_CLIENT": client},
            "open_webui.retrieval.vector.factory": {"VECTOR_DB_CLIENT": sync},
        },
    )
    assert await MemoryHost().delete_memory("m1", "u1") is True
    assert calls == [("m1", "u1")]
    assert client.deleted == [("user-memory-u1", ["m1"])]
    assert sync.deleted == []


async def test_delete_falls_back_to_the_sync_vector_client_in_a_thread(monkeypatch):
    sync = Client()
    memories, _ = _memories_table()
    _modules(
        monkeypatch,
        **{
            "open_webui.models.memories": {"Memories": memories},
            "open_webui.retrieval.vector.factory": {"VECTOR_DB_CLIENT": sync},
        },
    )
    assert await MemoryHost().delete_memory("m1", "u1") is True
    assert sync.deleted == [("user-memory-u1", ["m1"])]
    assert sync.threads != [threading.current_thread().name]  # not on the event loop's thread


async def test_a_failing_vector_delete_still_reports_the_row(monkeypatch):
    class Broken:
        def delete(self, collection_name, ids):
            raise ValueError("collection does not exist")

    memories, _ = _memories_table(rows_deleted=False)
    _modules(
        monkeypatch,
        **{
            "open_webui.models.memories": {"Memories": memories},
            "open_webui.retrieval.vector.factory": {"VECTOR_DB_CLIENT": Broken()},
        },
    )
    assert await MemoryHost().delete_memory("m1", "u1") is False


def test_a_missing_internal_is_none_but_a_broken_one_raises(monkeypatch):
    _modules(monkeypatch, **{"open_webui.routers.memories": {"x": 1}})
    assert _internal("open_webui.routers.memories", "x") == 1
    assert _internal("open_webui.routers.memories", "check_memories_permission") is None
    assert _internal("open_webui.retrieval.vector.async_client", "ASYNC_VECTOR_DB_CLIENT") is None
    assert _internal("no_such_package_anywhere.sub", "x") is None

    def broken_import(name, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'chromadb'", name="chromadb")

    monkeypatch.setattr("importlib.import_module", broken_import)
    with pytest.raises(ModuleNotFoundError):
        _internal("open_webui.retrieval.vector.factory", "VECTOR_DB_CLIENT")
