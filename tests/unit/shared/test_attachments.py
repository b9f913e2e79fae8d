"""shared/attachments.py: data URIs, MIME sniffing, image links behind the private-address guard,
files read from the host's store, and which attachments go through a files API."""

import base64
import io
from types import SimpleNamespace

import pytest

from shared.attachments import (
    AttachmentError,
    Blob,
    FileAttachment,
    context_file_ids,
    context_file_names,
    convert_image,
    fetch_image,
    file_refs,
    parse_data_uri,
    read_host_file,
    sniff_mime,
    upload_plan,
)
from tests.fakes import gemini as g
from tests.helpers import exception_names

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
JPEG_HEAD = b"\xff\xd8\xff\xe0" + b"\x00" * 60
GEMINI_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})


@pytest.fixture
def images():
    server = g.ImageServer({"/cat.png": (200, "application/octet-stream", PNG, {})})
    yield server
    server.close()


def test_sniffed_types():
    assert sniff_mime(PNG) == "image/png" and sniff_mime(GIF) == "image/gif" and sniff_mime(JPEG_HEAD) == "image/jpeg"
    assert sniff_mime(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp" and sniff_mime(b"%PDF-1.7") == "application/pdf"
    assert sniff_mime(b"\0\0\0\x18ftypheic") == "image/heic" and sniff_mime(b"plain") is None


def test_parse_data_uri():
    assert parse_data_uri("data:text/plain,hello%20there") == ("text/plain", b"hello there")
    assert parse_data_uri("data:;base64," + base64.b64encode(JPEG_HEAD).decode())[0] == "image/jpeg"
    urlsafe = base64.urlsafe_b64encode(b"\xfb\xff" * 10).decode().rstrip("=")
    assert parse_data_uri(f"data:application/octet-stream;base64,{urlsafe}")[1] == b"\xfb\xff" * 10
    for bad in ("data:image/png;base64,", "nodata", "data:image/png;base64,***"):
        with pytest.raises(AttachmentError):
            parse_data_uri(bad)
    with pytest.raises(AttachmentError, match="not an image"):
        convert_image("application/pdf", b"%PDF", GEMINI_TYPES, "Gemini")
    mime, data = convert_image("image/gif", GIF, GEMINI_TYPES, "Gemini")
    assert mime == "image/png" and data.startswith(b"\x89PNG")
    assert io.BytesIO(data).read(4) == b"\x89PNG"
    assert convert_image("image/png", PNG, GEMINI_TYPES, "Gemini") == ("image/png", PNG)
    with pytest.raises(AttachmentError, match="Gemini cannot read image/bmp images"):
        convert_image("image/bmp", b"BM garbage", GEMINI_TYPES, "Gemini")


async def test_image_urls_on_private_addresses_are_refused_by_default(images, monkeypatch):
    monkeypatch.delenv("ENABLE_LOCAL_WEB_FETCH", raising=False)
    monkeypatch.delenv("ENABLE_RAG_LOCAL_WEB_FETCH", raising=False)
    # one sentence whatever the reason (tests/unit/shared/test_attachments_ssrf.py has every form)
    with pytest.raises(AttachmentError, match="could not be downloaded as an image"):
        await fetch_image(images.url + "/cat.png")
    with pytest.raises(AttachmentError, match="could not be downloaded as an image"):
        await fetch_image(f"http://localhost:{images.server.server_address[1]}/cat.png")
    for bad in ("ftp://example.com/x.png", "http://exa\tmple.com/x.png"):
        with pytest.raises(AttachmentError):
            await fetch_image(bad)


async def test_image_urls_on_local_addresses_when_the_server_allows_them(images, monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_WEB_FETCH", "true")
    assert await fetch_image(images.url + "/cat.png") == ("image/png", PNG)
    with pytest.raises(AttachmentError, match="larger than 0 KB"):
        await fetch_image(images.url + "/cat.png", max_bytes=10)


class Host:
    """The two file methods of shared/host.py's FileHost, over one record."""

    def __init__(self, record: object) -> None:
        self.record = record

    async def file_record(self, file_id: str) -> object | None:
        return self.record if file_id == "f1" else None

    async def local_file_path(self, stored_path: str) -> str:
        return stored_path


async def test_host_files_are_read_only_for_their_owner(tmp_path):
    stored = tmp_path / "doc.pdf"
    stored.write_bytes(b"%PDF-1.4")
    record = SimpleNamespace(
        user_id="owner", path=str(stored), filename="doc.pdf", meta={"content_type": "application/pdf"}
    )
    host = Host(record)
    assert await read_host_file(host, "f1", {"id": "owner"}) == (b"%PDF-1.4", "application/pdf", "doc.pdf")
    assert (await read_host_file(host, "f1", {"id": "boss", "role": "admin"}))[0] == b"%PDF-1.4"
    with pytest.raises(AttachmentError, match="another user"):
        await read_host_file(host, "f1", {"id": "someone"})
    with pytest.raises(AttachmentError, match="no longer exists"):
        await read_host_file(host, "f2", {"id": "owner"})
    with pytest.raises(AttachmentError, match="larger than 0 MB"):
        await read_host_file(host, "f1", {"id": "owner"}, max_bytes=4)
    stored.unlink()  # the record outlived its bytes: the chat goes on without the file
    with pytest.raises(AttachmentError, match=r"cannot be read$") as info:  # the class name goes to the log
        await read_host_file(host, "f1", {"id": "owner"})
    assert exception_names(str(info.value)) == []
    record.path = ""
    with pytest.raises(AttachmentError, match="no stored content"):
        await read_host_file(host, "f1", {"id": "owner"})


def test_file_refs_keep_the_documents_a_model_reads():
    files = [
        {"type": "file", "id": "a", "name": "report.pdf"},
        {"type": "file", "file": {"id": "b", "filename": "notes.md", "meta": {"content_type": "text/markdown"}}},
        {"type": "file", "id": "c", "name": "x.zip"},
        {"type": "image", "id": "d", "name": "cat.png"},
        {"type": "file", "id": 5, "name": "bad.pdf"},
        "junk",
    ]
    assert file_refs(files) == [
        FileAttachment("a", "report.pdf", "application/pdf"),
        FileAttachment("b", "notes.md", "text/markdown"),
    ]
    assert file_refs(None) == []


def test_upload_plan_moves_the_largest_first():
    blobs = [Blob({"inline_data": {"mime_type": "x", "data": b"a" * n}}, str(n)) for n in (5, 50, 20)]
    assert [b.name for b in upload_plan(blobs, budget=30)] == ["50"]
    assert [b.name for b in upload_plan(blobs, budget=10)] == ["50", "20"]
    assert upload_plan(blobs, budget=100) == []


def test_files_open_webui_put_in_the_chat_are_known_by_id():
    sources = [
        {"source": {"id": "f-1", "type": "file"}, "document": ["a"], "metadata": [{"file_id": "f-1"}]},
        {"source": {"name": "web"}, "document": ["b"], "metadata": [{"file_id": "f-2", "source": "x.md"}]},
        "junk",
        {"source": "odd", "metadata": None},
    ]
    assert context_file_ids({"sources": sources}) == {"f-1", "f-2"}
    assert context_file_ids(None) == frozenset() and context_file_ids({"sources": "x"}) == frozenset()


def test_files_open_webui_0_6_put_in_the_chat_are_known_by_name():
    context = (
        'Context:\n<source id="1" name="notes.txt">a</source>\n<source id="2" name="b c.md">b</source>\n'
        '<source id="3">x</source>'
    )
    messages = [
        {"role": "system", "content": '<source id="9" name="system.txt">s</source>'},
        {"role": "user", "content": [{"type": "text", "text": context}]},
        "junk",
    ]
    assert context_file_names(messages) == {"notes.txt", "b c.md"}
    assert context_file_names(None) == frozenset()
