"""The one seam between the pack and Open WebUI's own Python code.

Every Open WebUI internal a plugin uses is imported here, lazily (inside the server only; a
plugin file must load without Open WebUI installed), and this module alone decides what a
missing or changed internal means. Upgrading Open WebUI is an audit of this file.

The seam is one class per area, so a plugin carries only the part it uses (the build inlines the
classes a plugin reaches): `ChatHost` (users, models access, the chat path), `MemoryHost` (users,
memories) and `FileHost` (uploaded files). A plugin keeps one as an attribute (`self.host`); tests
give it a fake with the same methods instead of patching module globals. Host functions may be synchronous or
asynchronous (Open WebUI made its database layer async in 0.9): `_settle` accepts both.

The pack runs on Open WebUI 0.6.43 through 0.12.4. An internal some of those versions lack is looked up
with `_internal`, which answers None for "this Open WebUI has no such thing"; the method that asks
says, next to the lookup, what that means on those versions (a fallback, or "allowed").
"""

import asyncio
import importlib
import inspect
import logging
import re
from typing import Any

_HOST_LOG = logging.getLogger("openwebui_pack.host")


class HostRefusal(Exception):
    """Open WebUI refused the operation with an HTTP status (403 forbidden, 404 off or unknown)."""

    def __init__(self, status_code: int, detail: str = "") -> None:
        super().__init__(detail or f"HTTP {status_code}")
        self.status_code = status_code
        self.detail = detail


class ModelNotFound(Exception):
    """Open WebUI has no model with this id, or the user may not use it."""


async def _settle(value: Any) -> Any:
    """The value of a host call, whether the host function was synchronous or asynchronous."""
    if inspect.isawaitable(value):
        return await value
    return value


def _internal(module: str, name: str) -> Any | None:
    """An Open WebUI internal (`module.name`), or None when this Open WebUI has no such module or name.

    Only absence counts: a module that exists but fails to import for another reason still raises.
    """
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            return None
        raise
    return getattr(found, name, None)


def _open_webui_version() -> tuple[int, ...] | None:
    """The running Open WebUI's version, e.g. (0, 10, 2); None when it cannot be read."""
    text = _internal("open_webui.env", "VERSION")
    if not isinstance(text, str):
        return None
    parts = [re.match(r"\d*", piece).group() for piece in text.split(".")]
    return tuple(int(p or 0) for p in parts)


def _http_exception_type() -> type[BaseException]:
    # Open WebUI's routers raise FastAPI's HTTPException, a subclass of Starlette's.
    from starlette.exceptions import HTTPException

    return HTTPException


def as_refusal(exc: BaseException) -> HostRefusal | None:
    """A host HTTP error as a `HostRefusal`; None for anything else."""
    if isinstance(exc, HostRefusal):
        return exc
    if isinstance(exc, _http_exception_type()):
        detail = getattr(exc, "detail", "")
        return HostRefusal(int(getattr(exc, "status_code", 500)), detail if isinstance(detail, str) else str(detail))
    return None


def _is_model_not_found(exc: BaseException) -> bool:
    # Open WebUI 0.12.4 (open_webui/utils/chat.py and utils/models.py check_model_access) raises a
    # bare Exception with this text for an unknown model and for one the user may not use; nothing
    # else tells it apart from other failures.
    return type(exc) is Exception and str(exc) == "Model not found"


def _refused(exc: Exception) -> Exception:
    return as_refusal(exc) or exc


class UsersHost:
    """Open WebUI's user records."""

    async def get_user(self, user_id: str) -> Any | None:
        from open_webui.models.users import Users

        return await _settle(Users.get_user_by_id(user_id))


class ChatHost(UsersHost):
    """Models, model access and Open WebUI's own chat path, as the chatting user."""

    def models(self, request: Any) -> dict[str, Any] | None:
        """The server's model registry (id -> model info), or None outside a server request."""
        state = getattr(getattr(request, "app", None), "state", None)
        registry = getattr(state, "MODELS", None)
        return registry if isinstance(registry, dict) else None

    async def may_use_model(self, user: Any, model_info: dict[str, Any]) -> bool:
        """Whether a plain user may use the model; True when the server cannot tell (the chat call
        itself still enforces access, so this early check is a courtesy that gives a clear message)."""
        if getattr(user, "role", None) != "user":
            return True
        # present in 0.6.43 through 0.12.4 (synchronous before 0.10); passed (user, model) positionally,
        # the one form every version accepts
        check_model_access = _internal("open_webui.utils.models", "check_model_access")
        if check_model_access is None:
            _HOST_LOG.info("this Open WebUI has no check_model_access; model access is checked by the chat call")
            return True
        if _internal("open_webui.env", "BYPASS_MODEL_ACCESS_CONTROL"):
            return True
        try:
            await _settle(check_model_access(user, model_info))
        except Exception as exc:
            if _is_model_not_found(exc) or as_refusal(exc) is not None:
                return False
            raise
        return True

    async def chat_completion(self, request: Any, form: dict[str, Any], user: Any) -> Any:
        """Open WebUI's own generate_chat_completion, as the chatting user (access rules apply)."""
        from open_webui.utils.chat import generate_chat_completion

        try:
            return await generate_chat_completion(request, form, user)
        except Exception as exc:
            if _is_model_not_found(exc):
                raise ModelNotFound(form.get("model", "")) from None
            raise _refused(exc) from exc


class MemoryHost(UsersHost):
    """One server's memories, written the way Settings → Personalization writes them."""

    async def check_memories_permission(self, request: Any, user: Any) -> None:
        """Raises HostRefusal(404) when memories are off, HostRefusal(403) without the permission.

        `request` is the action's `__request__`: Open WebUI 0.8.12 keeps both settings on it.
        """
        check = _internal("open_webui.routers.memories", "check_memories_permission")
        try:
            if check is not None:
                # 0.10.2 and 0.12.4 have it (async, reads the config itself; admins are exempt)
                await _settle(check(user))
            else:
                await _memories_gate_without_check(request, user)
        except Exception as exc:
            raise _refused(exc) from exc

    def memory_on_when_unset(self) -> bool:
        """Whether a user's Memory switch (Settings → Personalization) counts as on when never set.

        The switch is the user's `ui.memory` setting, read by the page, so the server code cannot tell:
        Open WebUI's page defaults it to off before 0.10 (`$settings?.memory ?? false`) and from 0.10 to
        the server's memories setting, which is on whenever this action gets past the permission check.
        """
        version = _open_webui_version()
        return version is None or version >= (0, 10)

    async def memories(self, user_id: str) -> list[Any]:
        """The user's stored memories (objects with `id` and `content`)."""
        from open_webui.models.memories import Memories

        rows = await _settle(Memories.get_memories_by_user_id(user_id))
        if rows is None:
            # the table method returns None when the query itself failed
            raise RuntimeError("reading memories failed")
        return list(rows)

    async def add_memory(self, request: Any, user: Any, content: str) -> str:
        """Adds a memory the way Settings → Personalization does (stored and embedded); its id."""
        from open_webui.routers.memories import AddMemoryForm, add_memory

        try:
            # the same call on 0.6.43 through 0.12.4; the route applies that version's own gate
            memory = await _settle(add_memory(request=request, form_data=AddMemoryForm(content=content), user=user))
        except Exception as exc:
            raise _refused(exc) from exc
        return memory.id

    async def delete_memory(self, memory_id: str, user_id: str) -> bool:
        """Deletes one of the user's memories and its vector, if one was written."""
        from open_webui.models.memories import Memories

        deleted = await _settle(Memories.delete_memory_by_id_and_user_id(memory_id, user_id))
        target = {"collection_name": f"user-memory-{user_id}", "ids": [memory_id]}
        try:
            client = _internal("open_webui.retrieval.vector.async_client", "ASYNC_VECTOR_DB_CLIENT")
            if client is not None:
                await _settle(client.delete(**target))
            else:
                # before 0.10 there is only the synchronous client: run it off the event loop
                client = _internal("open_webui.retrieval.vector.factory", "VECTOR_DB_CLIENT")
                if client is None:
                    raise RuntimeError("this Open WebUI has no vector database client")
                await asyncio.to_thread(client.delete, **target)
        except Exception as exc:
            # normally there is no vector yet: the failure came before the upsert
            _HOST_LOG.debug("no vector to remove for memory %s: %s", memory_id, type(exc).__name__)
        return bool(deleted)


_NOT_SET = object()


async def _memories_gate_without_check(request: Any, user: Any) -> None:
    """The memories gate of an Open WebUI without `check_memories_permission`.

    0.8.12 checks inline in each memories route (open_webui/routers/memories.py): the server's
    ENABLE_MEMORIES (404 when off), then the user's `features.memories` permission (403), with no
    exemption for admins. 0.6.43 has neither setting and no gate: memories are always allowed.
    """
    config = getattr(getattr(getattr(request, "app", None), "state", None), "config", None)
    if config is None:
        raise RuntimeError("the request carries no server configuration to check the memories permission")
    enabled = getattr(config, "ENABLE_MEMORIES", _NOT_SET)
    if enabled is _NOT_SET:
        return
    if not enabled:
        raise HostRefusal(404, "memories are turned off on this server (ENABLE_MEMORIES)")
    has_permission = _internal("open_webui.utils.access_control", "has_permission")
    if has_permission is None:
        raise RuntimeError("this Open WebUI has ENABLE_MEMORIES but no has_permission")
    permissions = getattr(config, "USER_PERMISSIONS", None) or {}
    if not await _settle(has_permission(user.id, "features.memories", permissions)):
        raise HostRefusal(403, "the user lacks the features.memories permission")


class FileHost:
    """Files uploaded to Open WebUI, and the storage that holds their bytes."""

    async def file_record(self, file_id: str) -> Any | None:
        """Open WebUI's record of an uploaded file (`user_id`, `path`, `filename`, `meta`), or None."""
        from open_webui.models.files import Files

        return await _settle(Files.get_file_by_id(file_id))

    async def local_file_path(self, stored_path: str) -> str:
        """A local path holding the stored file's bytes (the storage provider may download it)."""
        from open_webui.storage.provider import Storage

        return await asyncio.to_thread(Storage.get_file, stored_path)

    async def store_file(
        self,
        data: bytes,
        mime: str,
        name: str,
        user: dict[str, Any],
        *,
        chat_id: str | None = None,
        message_id: str | None = None,
    ) -> str:
        """Stores bytes as a file of `user` (a `__user__` dict) in Open WebUI's own storage; its id.

        The steps of Open WebUI's upload (open_webui/routers/files.py upload_file_handler, the same
        0.6.43 through 0.12.4): the bytes through the storage provider, then a files row. The file is
        then served at /api/v1/files/<id>/content to its owner. With a chat message, the file is also
        linked to it where this Open WebUI can (Chats.insert_chat_files; 0.12.4's own image generation
        does that, open_webui/routers/images.py upload_image), so deleting the chat deletes it."""
        import io
        import uuid

        from open_webui.models.files import FileForm, Files
        from open_webui.storage.provider import Storage

        user_id = str(user.get("id") or "")
        if not user_id:
            raise HostRefusal(403, "a file needs an owner")
        file_id = str(uuid.uuid4())
        tags = {
            "OpenWebUI-User-Email": str(user.get("email") or ""),
            "OpenWebUI-User-Id": user_id,
            "OpenWebUI-User-Name": str(user.get("name") or ""),
            "OpenWebUI-File-Id": file_id,
        }
        _, path = await asyncio.to_thread(Storage.upload_file, io.BytesIO(data), f"{file_id}_{name}", tags)
        meta = {"name": name, "content_type": mime, "size": len(data), "data": {}}
        form = FileForm(id=file_id, filename=name, path=path, meta=meta)
        if await _off_loop(Files.insert_new_file, user_id, form) is None:
            raise RuntimeError("Open WebUI did not save the file record")
        chats = _internal("open_webui.models.chats", "Chats")
        link = getattr(chats, "insert_chat_files", None)
        if chat_id and message_id and link is not None:
            try:
                await _off_loop(link, chat_id, message_id, [file_id], user_id)
            except Exception as exc:  # the file is stored and shown; only the chat's cleanup misses it
                _HOST_LOG.info("file %s not linked to its chat: %s", file_id, type(exc).__name__)
        return file_id


async def _off_loop(function: Any, *args: Any) -> Any:
    """A host table call: awaited when it is asynchronous (0.10 and later), else run in a thread
    (0.6.43 and 0.8.12 query the database synchronously)."""
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    return await _settle(await asyncio.to_thread(function, *args))
