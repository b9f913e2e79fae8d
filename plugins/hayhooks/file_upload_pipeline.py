"""
title: File Upload Pipeline
author: Open WebUI Pack contributors
version: 0.1.0
description: Hayhooks wrapper: reads the chat's files with per-file progress and a summary, then answers from them.
license: MIT
required_open_webui_version: 0.12.4
server_requirements: hayhooks==2.1.0, haystack-ai==3.4.1
"""

from collections.abc import AsyncIterator

from hayhooks import BasePipelineWrapper, async_streaming_generator
from haystack import Pipeline as HaystackPipeline  # the name Pipeline is a Pipelines-server class
from haystack.components.builders import ChatPromptBuilder
from starlette.datastructures import Headers

from shared.events import citation
from shared.hayhooks import (
    BASE_URL_HEADER,
    HISTORY_TEMPLATE,
    NOT_CONFIGURED,
    Item,
    PackConfig,
    Turn,
    UIEvent,
    build_generator,
    chat_history,
    elapsed_text,
    guarded,
    header,
    is_task,
    quick_reply,
    reader_is_admin,
    relay,
)
from shared.hayhooks_files import (
    IncomingFile,
    ReadFile,
    UploadStore,
    attach_to_question,
    attached_file_ids,
    budget,
    context_files,
    fetch_openwebui_file,
    files_prompt,
    human_size,
    openwebui_base,
    read_file,
    request_files,
)

GROUNDED_PROMPT = (
    "You answer questions about the files the user attached. Use only what the files say, name the file "
    "each fact comes from, and say plainly when the files do not contain the answer. A file marked "
    "unreadable could not be read: say so if the question needs it. Answer in the language of the question."
)
SOURCE_EXCERPT = 1500
# Files uploaded to this server's /v1/files, for chats that reference them by id.
UPLOADS = UploadStore()


class PipelineWrapper(BasePipelineWrapper):
    """The model `file_upload_pipeline`: every file of the request read within limits, one by one,
    then one answer grounded in them. See shared/hayhooks_files.py for the four ways files arrive."""

    def setup(self) -> None:
        self.config = PackConfig.from_env()
        self.pipeline = HaystackPipeline()
        self.pipeline.add_component(
            "prompt", ChatPromptBuilder(template=HISTORY_TEMPLATE, required_variables=["history"])
        )
        self.pipeline.add_component("llm", build_generator(self.config))
        self.pipeline.connect("prompt.prompt", "llm.messages")
        self.plain_llm = build_generator(self.config)

    def run_file_upload(self, filename: str | None, content_type: str | None, content: bytes, purpose: str) -> dict:
        """Hayhooks' POST /v1/files (multipart `file` and `purpose`): kept in memory for chats."""
        if len(content) > self.config.max_file_bytes:
            from fastapi import HTTPException

            raise HTTPException(413, f"The file is larger than the {human_size(self.config.max_file_bytes)} limit.")
        return UPLOADS.add(filename, content_type, content, purpose)

    async def run_chat_completion_async(
        self, model: str, messages: list[dict], body: dict, headers: Headers | None = None
    ) -> str | AsyncIterator[Item]:
        # Returns the generator: an `async def` that yields itself makes Hayhooks 2.1.0 answer 500.
        admin = reader_is_admin(headers)
        if is_task(body, headers):
            return await quick_reply(self.plain_llm, chat_history(messages), self.config, admin=admin)
        turn = Turn(self.config, admin=admin)
        return guarded(turn, self._answer(turn, messages, body, headers))

    async def _incoming(self, messages: list[dict], body: dict, headers: Headers | None) -> list[IncomingFile]:
        """Every file of the request: Open WebUI's documents (read back in full when the connection
        allows it), then the request's own files and uploads."""
        found = context_files(messages)
        base = openwebui_base(header(headers, BASE_URL_HEADER))
        authorization = header(headers, "authorization")
        if self.config.fetch_files and base and authorization.lower().startswith("bearer "):
            by_id = {f.file_id: f for f in found if f.file_id}
            for file_id, name, content_type in attached_file_ids(messages):
                by_id.setdefault(file_id, IncomingFile(name=name, origin="open_webui", content_type=content_type))
            for file_id, known in by_id.items():
                fetched = await fetch_openwebui_file(
                    base,
                    file_id,
                    authorization,
                    name=known.name,
                    content_type=known.content_type,
                    max_bytes=self.config.max_file_bytes,
                    timeout=min(self.config.timeout, 30.0),
                )
                if fetched.problem is None:
                    fetched.source_ids = known.source_ids
                    found = [fetched if f is known else f for f in found] if known in found else [*found, fetched]
                elif known not in found:
                    found.append(fetched)  # reported as unreadable; excerpts, when there are some, stay
        return [*found, *request_files(body, UPLOADS)]

    async def _answer(
        self, turn: Turn, messages: list[dict], body: dict, headers: Headers | None
    ) -> AsyncIterator[Item]:
        for event in turn.status("Looking for files"):
            yield event
        incoming = await self._incoming(messages, body, headers)
        limit = self.config.max_files
        read: list[ReadFile] = []
        for number, item in enumerate(incoming[:limit], start=1):
            size = human_size(item.size) if item.size is not None else "size unknown"
            for event in turn.status(f"Reading file {number} of {min(len(incoming), limit)}: {item.name} ({size})"):
                yield event
            read.append(read_file(item, max_bytes=self.config.max_file_bytes))
        budget(read)
        for event in self._summary(turn, read, skipped=max(0, len(incoming) - limit)):
            yield event
        for f in read:
            if f.ok and f.text:
                yield UIEvent(citation([f.text[:SOURCE_EXCERPT]], name=f.name, event_type="source"))
        if self.config.problem:
            for item in turn.fail(None, NOT_CONFIGURED, self.config.problem):
                yield item
            return
        # Open WebUI's own excerpts are in the messages already; everything else goes in a files block.
        history = attach_to_question(chat_history(messages), files_prompt([f for f in read if f.origin != "context"]))
        for event in turn.step("Writing the answer"):
            yield event
        run_args = {"prompt": {"history": history, "system_prompt": GROUNDED_PROMPT}}
        async for item in relay(turn, async_streaming_generator(self.pipeline, pipeline_run_args=run_args)):
            yield item
        if not turn.text.strip():
            for item in turn.fail(None, "The model returned an empty answer; try asking again."):
                yield item
            return
        readable = sum(1 for f in read if f.ok)
        grounded = f"from {readable} file{'s' if readable != 1 else ''}" if readable else "without files"
        took = elapsed_text(turn.elapsed())
        for event in turn.finish(f"Answered {grounded} in {took}", success=f"The answer is ready ({took})."):
            yield event

    @staticmethod
    def _summary(turn: Turn, read: list[ReadFile], skipped: int) -> list[Item]:
        """The batch summary: a done status, and one warning naming the files that were not read."""
        if not read:
            return turn.status("No files in this chat: answering from the conversation alone", done=True)
        good = [f for f in read if f.ok]
        total = human_size(sum(f.size or 0 for f in good))
        line = f"Read {len(good)} of {len(read)} files ({total})"
        problems = [f"{f.name} {f.note}" for f in read if not f.ok]
        if skipped:
            problems.append(f"{skipped} more files were left out (at most {len(read)} per question)")
        out: list[Item] = [*turn.status(line + (f"; {len(problems)} not read" if problems else ""), done=True)]
        if problems:
            out.append(turn.notify("Some files were not read: " + "; ".join(problems) + ".", "warning"))
        return out
