"""File intake of the Hayhooks wrappers: context blocks, request files, uploads, limits, reading back."""

import base64

import pytest

from shared import hayhooks_files as hf

RAG = (
    'Respond ... (e.g., <source id="1">).\n<context>\n'
    '<source id="1" name="report.txt" resource-type="file" resource-id="f-1">Part one.</source>\n'
    '<source id="2" name="report.txt" resource-type="file" resource-id="f-1">Part two.</source>\n'
    '<source id="3" name="a &amp; b.md">Other.</source>\n</context>\nWhat does it say?'
)


def test_context_files_only_inside_context_and_one_per_file():
    files = hf.context_files([{"role": "user", "content": RAG}])
    assert [(f.name, f.text, f.file_id, f.source_ids) for f in files] == [
        ("report.txt", "Part one.\n\nPart two.", "f-1", ("1", "2")),
        ("a & b.md", "Other.", "", ("3",)),
    ]
    assert hf.context_files([{"role": "user", "content": 'just <source id="1">x</source>'}]) == []


def test_attached_file_ids():
    text = (
        '<attached_files>\n<file type="file" id="abc" url="/api/v1/files/abc" content_type="text/plain" '
        'name="n.txt"/>\n'
        '<file type="chat" id="c1"/>\n</attached_files>\n\nHi'
    )
    assert hf.attached_file_ids([{"role": "user", "content": text}]) == [("abc", "n.txt", "text/plain")]
    assert hf.strip_file_blocks(text) == "Hi"


def test_request_files_and_uploads():
    store = hf.UploadStore(max_files=2)
    up = store.add("u.txt", "text/plain", b"uploaded", "assistants")
    assert up["object"] == "file" and up["bytes"] == 8
    body = {
        "files": [
            {"filename": "a.txt", "content": base64.b64encode(b"hello").decode(), "size": 5, "type": ".txt"},
            {"filename": "b.txt", "content": "%%%"},
            {"id": up["id"]},
            "junk",
        ],
        "file_ids": ["file-missing"],
    }
    found = hf.request_files(body, store)
    assert [(f.name, f.data, f.problem is None) for f in found] == [
        ("a.txt", b"hello", True),
        ("b.txt", None, False),
        ("u.txt", b"uploaded", True),
        ("file 4", None, False),
        ("file-missing", None, False),
    ]
    store.add("2", "", b"x", "p")
    store.add("3", "", b"y", "p")
    assert store.get(up["id"]).problem  # the oldest was dropped past the limit


def test_read_file_limits_types_and_bad_files():
    def read(**kw):
        return hf.read_file(hf.IncomingFile(origin="request", **kw), max_bytes=100, max_chars=10)

    assert read(name="a.txt", data=b"short").text == "short"
    long = read(name="a.txt", data=b"x" * 50)
    assert long.text == "x" * 10 and "first 10" in long.note
    big = read(name="a.txt", data=b"x" * 200, size=200)
    assert not big.ok and "limit" in big.note
    pdf = read(name="p.pdf", data=b"%PDF\x00\x01", content_type="application/pdf", size=6)
    assert pdf.ok and pdf.kind == "PDF document" and not pdf.text and "6 bytes" in pdf.note
    bad = read(name="b", problem="its content is not valid base64")
    assert not bad.ok and bad.note.startswith("could not be read")
    assert read(name="noext", data="grüße".encode("utf-16")).text == "grüße"


def test_budget_and_prompt():
    files = [hf.ReadFile("a", 5, "text", text="a" * 8), hf.ReadFile("b", 5, "text", text="b" * 8)]
    hf.budget(files, total=10)
    assert [len(f.text) for f in files] == [8, 2]
    prompt = hf.files_prompt([*files, hf.ReadFile("c<", 1, "file", ok=False, note="is too big")])
    assert '<file name="a">' in prompt and '<file name="c&lt;" unreadable="true">The file is too big.</file>' in prompt
    history = hf.attach_to_question([{"role": "user", "text": "Q?"}], prompt)
    assert history[-1]["text"].endswith("The user's message:\nQ?")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://chat.example", "https://chat.example"),
        ("ftp://x", None),
        ("http://user:pw@x", None),
        ("javascript:alert(1)", None),
        ("", None),
        ("http://x/?a=1", None),
    ],
)
def test_openwebui_base(value, ok):
    assert hf.openwebui_base(value) == ok


class FakeResponse:
    def __init__(self, status, body=b"", content_type="text/plain", json_body=None):
        self.status_code = status
        self.body = body
        self.headers = {"content-type": content_type}
        self._json = json_body

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def aiter_bytes(self):
        for i in range(0, len(self.body), 4):
            yield self.body[i : i + 4]

    def json(self):
        return self._json


class FakeClient:
    def __init__(self, routes):
        self.routes = routes
        self.seen = []

    def stream(self, method, url, headers):
        self.seen.append((url, headers["Authorization"]))
        return self.routes[url]

    async def get(self, url, headers):
        self.seen.append((url, headers["Authorization"]))
        return self.routes[url]


async def test_fetch_reads_text_and_extracted_text_and_reports_refusals():
    base = "http://owui"
    client = FakeClient(
        {
            f"{base}/api/v1/files/t1/content": FakeResponse(200, b"hello file"),
            f"{base}/api/v1/files/p1/content": FakeResponse(200, b"%PDF\x00", "application/pdf"),
            f"{base}/api/v1/files/p1/data/content": FakeResponse(200, json_body={"content": "pdf text"}),
            f"{base}/api/v1/files/big/content": FakeResponse(200, b"x" * 64),
            f"{base}/api/v1/files/no/content": FakeResponse(401),
        }
    )

    async def fetch(file_id, name="f.txt"):
        return await hf.fetch_openwebui_file(base, file_id, "Bearer t", name=name, max_bytes=32, client=client)

    assert (await fetch("t1")).data == b"hello file"
    assert (await fetch("p1", "p.pdf")).text == "pdf text"
    big = await fetch("big")
    assert big.size > 32 and hf.read_file(big, max_bytes=32).ok is False
    assert "session" in (await fetch("no")).problem
    assert (await fetch("../../etc")).problem == "its id is not a file id"
    assert all(auth == "Bearer t" for _, auth in client.seen)
