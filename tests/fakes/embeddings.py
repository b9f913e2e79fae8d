"""A fake OpenAI-compatible embeddings server on 127.0.0.1 (what Open WebUI uses for memories).

    with FakeEmbeddings() as fake:
        fake.url          # "http://127.0.0.1:PORT/v1" -> RAG_OPENAI_API_BASE_URL
        fake.fail = True  # every /embeddings request now gets 500 with an OpenAI error body
        fake.fail = 429   # or a chosen status
        fake.requests     # RecordedRequest log (tests.fakes.openai_server)

`POST /v1/embeddings {"input": str | [str], "model"}` answers
`{"object": "list", "model", "data": [{"object": "embedding", "index", "embedding": [float]}], "usage"}`.
Vectors are deterministic bag-of-words hashes (DIM floats, L2-normalised): texts that share words are
close, so memory queries rank like a real (if dumb) embedder. `vector(text)` gives the same vector.
"""

from __future__ import annotations

import hashlib
import math
import re

from tests.fakes.openai_server import JsonHandler, LoopbackServer, openai_error

DIM = 64
MODEL = "fake-embed"


def vector(text: str, dim: int = DIM) -> list[float]:
    values = [0.0] * dim
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
        values[digest % dim] += 1.0 if (digest >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in values))
    if not norm:
        # an empty text still needs a valid unit vector
        return [1.0] + [0.0] * (dim - 1)
    return [v / norm for v in values]


class _EmbeddingsHandler(JsonHandler):
    def do_GET(self) -> None:
        self.record(None)
        if self.path.split("?")[0].rstrip("/").endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "fake"}]})
            return
        self.send_json(404, openai_error(404, f"Unknown path {self.path}"))

    def do_POST(self) -> None:
        body = self.read_json()
        self.record(body)
        if not self.authorised():
            return
        fake: FakeEmbeddings = self.owner
        if not self.path.split("?")[0].rstrip("/").endswith("/embeddings"):
            self.send_json(404, openai_error(404, f"Unknown path {self.path}"))
            return
        if fake.fail:
            status = 500 if fake.fail is True else int(fake.fail)
            self.send_json(status, openai_error(status, "The fake embeddings server was told to fail."))
            return
        raw = (body or {}).get("input") if isinstance(body, dict) else None
        if raw is None:
            self.send_json(400, openai_error(400, "'input' is required.", param="input"))
            return
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw]
        data = [{"object": "embedding", "index": i, "embedding": vector(t, fake.dim)} for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        self.send_json(
            200,
            {
                "object": "list",
                "model": body.get("model") or MODEL,
                "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


class FakeEmbeddings(LoopbackServer):
    def __init__(self, *, dim: int = DIM, api_key: str | None = None, port: int = 0) -> None:
        super().__init__(_EmbeddingsHandler, port)
        self.dim = dim
        self.api_key = api_key
        self.fail: bool | int = False

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    def embedded_texts(self) -> list[str]:
        """Every text sent for embedding, in order."""
        texts: list[str] = []
        for request in self.requests_to("/embeddings"):
            raw = request.json.get("input") if isinstance(request.json, dict) else None
            texts.extend([raw] if isinstance(raw, str) else [str(t) for t in raw or []])
        return texts
