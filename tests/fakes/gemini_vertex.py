"""A fake Google for the Gemini manifold's transport features, on 127.0.0.1: Vertex AI, an OAuth
token endpoint, several API keys, Veo long-running operations and the Files API's listing.

    with FakeGoogle(keys=("main", "spare")) as fake:
        account = fake.service_account()      # a service account JSON whose token_uri is this fake
        fake.url                              # Gemini API (v1beta) and Vertex AI (v1beta1) base URL
        fake.key_errors["main"].append(g.error(429))   # the next generate call with "main" answers 429

It extends `tests.fakes.gemini.FakeGemini` (every Gemini API behaviour stays) with, in Google's wire
format (REST reference; google-genai 3.6 `_api_client.py`, `models.py`, `operations.py`,
`_operations_converters.py`):
- OAuth 2.0 JWT bearer grant (`POST /token`, form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
  `assertion=<JWT>`): the RS256 signature is checked against the service account's public key, `iss`,
  `aud` (Google's token endpoint, which google-auth names whatever the token URI) and the
  cloud-platform scope too; the answer is
  `{"access_token", "expires_in", "token_type": "Bearer"}`. google-auth's own service account flow
  runs against it unchanged.
- Vertex AI (`/v1beta1/projects/<p>/locations/<l>/publishers/google/models/<m>:generateContent`,
  `:streamGenerateContent?alt=sse`, `:predictLongRunning`, `:fetchPredictOperation`, and
  `GET /v1beta1/publishers/google/models` -> `{"publisherModels": [...]}`), authorised by
  `Authorization: Bearer <a token this fake issued>`, else 401 UNAUTHENTICATED.
- Veo on the Gemini API: `POST /v1beta/models/<veo>:predictLongRunning` with
  `{"instances": [{"prompt"}], "parameters": {aspectRatio, durationSeconds, resolution, negativePrompt}}`
  -> `{"name": "models/<veo>/operations/<id>"}` (with `video_polls=0` the finished operation at once);
  `GET /v1beta/<name>` -> the Operation (`done`, then
  `response.generateVideoResponse.generatedSamples[].video.uri`, a `files/<id>:download` link);
  `GET /v1beta/files/<id>:download?alt=media` -> the MP4 bytes; `POST /v1beta/<name>:cancel`.
  On Vertex the finished operation carries `response.videos[].bytesBase64Encoded`.
- Files API: each key sees only the files it uploaded (list, get, and a generate call naming another
  key's or an expired file answers 403 PERMISSION_DENIED, as Google does); every File carries
  `createTime`, `expirationTime` (48 h after upload, on this fake's clock) and `sha256Hash` (base64
  of the digest's hex, as Google sends it); `GET /v1beta/files` lists them (`pageSize`,
  `pageToken`); `DELETE /v1beta/files/<id>` deletes one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.fakes import gemini as g

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# google-auth signs its JWT for Google's token endpoint, whatever token_uri it posts it to
# (google/oauth2/service_account.py, _GOOGLE_OAUTH2_TOKEN_ENDPOINT).
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FILE_TTL = 48 * 3600.0
VERTEX_MODEL_PATH = re.compile(r"/v1beta1/(projects/[^/]+/locations/[^/]+/publishers/google/models/([^/:]+)):(\w+)")
MP4 = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom" + b"\0fake-veo-video" * 64


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_service_account(token_uri: str, project: str = "fake-project") -> tuple[dict[str, Any], Any]:
    """A service account key (the JSON Google's console hands out) with a freshly generated RSA
    key, and that key's public half (to check the JWTs signed with it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"pipe@{project}.iam.gserviceaccount.com",
        "client_id": "1" * 21,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/pipe",
        "universe_domain": "googleapis.com",
    }
    return account, key.public_key()


@dataclass
class Operation:
    name: str
    model: str
    vertex: bool
    request: dict[str, Any]
    polls_left: int
    error: g.Error | None = None
    filtered: bool = False
    cancelled: bool = False
    polls: int = 0


class TimedFile(g.FakeFile):
    created: float = 0.0
    sha_hex: str = ""
    owner: str | None = None  # the API key that uploaded it: each key (project) sees only its own files

    def resource(self, base: str) -> dict[str, Any]:
        out = super().resource(base)
        out["createTime"] = rfc3339(self.created)
        out["updateTime"] = rfc3339(self.created)
        out["expirationTime"] = rfc3339(self.created + FILE_TTL)
        if self.sha_hex:
            out["sha256Hash"] = base64.b64encode(self.sha_hex.encode()).decode()
        return out


class FakeGoogle(g.FakeGemini):
    def __init__(
        self, keys: tuple[str, ...] = ("main-key",), *, video_polls: int = 2, video: bytes = MP4, **kwargs: Any
    ) -> None:
        super().__init__(api_key=keys[0] if keys else None, **kwargs)
        self.keys = keys
        self.key_errors: dict[str, deque[g.Error]] = defaultdict(deque)
        self.video_polls = video_polls
        self.video = video
        self.operations: dict[str, Operation] = {}
        self.accounts: dict[str, Any] = {}  # client_email -> public key
        self.tokens: dict[str, str] = {}  # access token -> client_email
        self.token_requests = 0
        self.clock = time.time  # the Files API's clock (createTime, expirationTime)
        self.list_files_error: g.Error | None = None  # answers GET /v1beta/files while set
        self.next_operation: dict[str, Any] = {}  # error / filtered for the next video operation
        self._lock2 = threading.Lock()

    def start(self) -> FakeGoogle:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = g.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-google", daemon=True
        )
        self._thread.start()
        return self

    def __enter__(self) -> FakeGoogle:
        return self.start()

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def service_account(self, project: str = "fake-project") -> dict[str, Any]:
        account, public = new_service_account(self.token_uri, project)
        self.accounts[account["client_email"]] = public
        return account

    # queries
    def uploads(self) -> list[g.Recorded]:
        """The upload starts (one per file sent to the Files API)."""
        return [r for r in self.requests if r.path == "/upload/v1beta/files" and "upload_id" not in r.query]

    def uploaded_bytes(self) -> int:
        return sum(len(r.body) for r in self.requests if "upload_id" in r.query)

    def keys_used(self) -> list[str | None]:
        return [r.headers.get("x-goog-api-key") for r in self.generate_requests()]


class _Handler(g._Handler):
    fake: FakeGoogle

    def _authorised(self) -> bool:
        if self.path.startswith("/v1beta1/"):
            return self._bearer()
        key = self.headers.get("x-goog-api-key")
        if key in self.fake.keys or not self.fake.keys:
            return True
        return super()._authorised()  # Google's answer to a bad key

    def _bearer(self) -> bool:
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer ") and auth[7:] in self.fake.tokens:
            return True
        self._send_error(g.Error(401, "Request had invalid authentication credentials.", status_name="UNAUTHENTICATED"))
        return False

    def _handle(self, method: str) -> None:  # noqa: PLR0911 - one router, like the parent's
        path, _, query = self.path.partition("?")
        if method == "POST" and path == "/token":
            return self._token()
        if path.startswith("/v1beta1/"):
            return self._vertex(method, path)
        if method == "GET" and path == "/v1beta/files":
            return self._recorded(method) and self._list_files(parse_qs(query))
        if method == "DELETE" and path.startswith("/v1beta/files/"):
            return self._recorded(method) and self._delete_file(path.removeprefix("/v1beta/"))
        if method == "GET" and path.startswith("/v1beta/files/") and path.endswith(":download"):
            return self._recorded(method) and self._download(path.removeprefix("/v1beta/").removesuffix(":download"))
        if "/operations/" in path and path.startswith("/v1beta/models/"):
            name = path.removeprefix("/v1beta/")
            if not self._recorded(method):
                return None
            if method == "POST" and name.endswith(":cancel"):
                return self._cancel(name.removesuffix(":cancel"))
            return self._operation(name, vertex=False)
        if method == "POST" and path.startswith("/v1beta/models/") and path.endswith(":predictLongRunning"):
            if not self._recorded(method):
                return None
            model = path.removeprefix("/v1beta/models/").removesuffix(":predictLongRunning")
            return self._start_video(model, vertex=False)
        if method == "POST" and path.startswith("/v1beta/models/") and "Content" in path:
            key = self.headers.get("x-goog-api-key") or ""
            with self.fake._lock2:
                failure = self.fake.key_errors[key].popleft() if self.fake.key_errors[key] else None
            if failure is None:
                failure = self._foreign_file(key)
            if failure is not None:
                self.fake.record(self._rec(method))
                return self._send_error(failure)
        return super()._handle(method)

    # plumbing
    _body: bytes | None = None

    def _read(self) -> bytes:
        if self._body is None:
            self._body = super()._read()
        return self._body

    def _foreign_file(self, key: str) -> g.Error | None:
        """Google's answer to a request naming a file another key uploaded, or one that expired."""
        body = json.loads(self._read() or b"{}")
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                data = part.get("fileData") or part.get("file_data") or {}  # Google takes both spellings
                uri = data.get("fileUri") or data.get("file_uri") or ""
                name = uri.split("/v1beta/", 1)[-1]
                file = self.fake.files.get(name)
                if not uri.startswith(self.fake.url) or not (file is None or isinstance(file, TimedFile)):
                    continue
                if file is None or file.owner not in (None, key) or file.created + FILE_TTL <= self.fake.clock():
                    message = f"You do not have permission to access the File {name} or it may not exist."
                    return g.Error(403, message)
        return None

    def _rec(self, method: str) -> g.Recorded:
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        return g.Recorded(method, path, parse_qs(query), headers, self._read() if method == "POST" else b"")

    def _recorded(self, method: str) -> bool:
        self.fake.record(self._rec(method))
        return self._authorised()

    def _safely(self, method: str) -> None:
        self._body = None  # one handler serves every request of a kept-alive connection
        super()._safely(method)

    def do_DELETE(self) -> None:
        self._safely("DELETE")

    # OAuth
    def _token(self) -> None:
        form = parse_qs(self._read().decode())
        self.fake.token_requests += 1
        assertion = (form.get("assertion") or [""])[0]
        email = self._check_assertion(assertion) if form.get("grant_type") == [JWT_GRANT] else None
        if email is None:
            return self._send_json(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        token = "ya29.fake-" + uuid.uuid4().hex
        self.fake.tokens[token] = email
        self._send_json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _check_assertion(self, assertion: str) -> str | None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, claims, signature = assertion.split(".")
            payload = json.loads(_b64url_decode(claims))
            public = self.fake.accounts.get(payload.get("iss"))
            if public is None or json.loads(_b64url_decode(head)).get("alg") != "RS256":
                return None
            public.verify(_b64url_decode(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return None
        if payload.get("aud") != GOOGLE_TOKEN_AUDIENCE or SCOPE not in str(payload.get("scope", "")).split():
            return None
        if not payload.get("iat") or payload.get("exp", 0) < time.time():
            return None
        return str(payload["iss"])

    # Vertex AI
    def _vertex(self, method: str, path: str) -> None:
        self.fake.record(self._rec(method))
        if not self._bearer():
            return None
        if method == "GET" and path == "/v1beta1/publishers/google/models":
            models = [
                {"name": f"publishers/google/models/{m['id']}", "versionId": "001", "displayName": m.get("name")}
                for m in self.fake.models
            ]
            return self._send_json(200, {"publisherModels": models})
        match = VERTEX_MODEL_PATH.fullmatch(path)
        if match is None:
            return self._send_error(g.Error(404, f"Unknown path {path}"))
        prefix, model, verb = match.group(1), match.group(2), match.group(3)
        if verb == "predictLongRunning":
            return self._start_video(model, vertex=True, prefix=prefix)
        if verb == "fetchPredictOperation":
            name = (json.loads(self._read() or b"{}")).get("operationName", "")
            return self._operation(name, vertex=True)
        if verb in ("generateContent", "streamGenerateContent"):
            rec = self.fake.requests[-1]
            return self._generate(model, verb == "streamGenerateContent", rec)
        return self._send_error(g.Error(404, f"Unknown path {path}"))

    # Veo
    def _start_video(self, model: str, *, vertex: bool, prefix: str = "") -> None:
        if not model.startswith("veo-"):
            return self._send_error(g.Error(400, f"models/{model} does not support predictLongRunning"))
        body = json.loads(self._read() or b"{}")
        op_id = uuid.uuid4().hex[:12]
        name = f"{prefix}/operations/{op_id}" if vertex else f"models/{model}/operations/{op_id}"
        extra = self.fake.next_operation
        self.fake.next_operation = {}
        self.fake.operations[name] = Operation(
            name,
            model,
            vertex,
            body,
            self.fake.video_polls,
            error=extra.get("error"),
            filtered=extra.get("filtered", False),
        )
        if self.fake.video_polls <= 0:  # done at once: the start answers with the finished operation
            self.fake.operations[name].polls = -1
            return self._operation(name, vertex=vertex)
        self._send_json(200, {"name": name})

    def _operation(self, name: str, *, vertex: bool) -> None:
        op = self.fake.operations.get(name)
        if op is None or op.vertex != vertex:
            return self._send_error(g.Error(404, f"Operation {name} not found"))
        op.polls += 1
        if op.polls_left > 0:
            op.polls_left -= 1
            return self._send_json(200, {"name": name, "metadata": {}})
        out: dict[str, Any] = {"name": name, "done": True}
        if op.error is not None:
            out["error"] = {"code": op.error.status, "message": op.error.message}
        elif vertex:
            video = {"bytesBase64Encoded": base64.b64encode(self.fake.video).decode(), "mimeType": "video/mp4"}
            out["response"] = {
                "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
                "videos": [] if op.filtered else [video],
                **(
                    {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["filtered by the fake"]}
                    if op.filtered
                    else {}
                ),
            }
        else:
            file = self._video_file()
            samples = [] if op.filtered else [{"video": {"uri": f"{self.fake.url}/v1beta/{file}:download?alt=media"}}]
            response: dict[str, Any] = {"generatedSamples": samples}
            if op.filtered:
                response.update({"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["filtered by the fake"]})
            out["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                "generateVideoResponse": response,
            }
        self._send_json(200, out)

    def _video_file(self) -> str:
        name = f"files/{uuid.uuid4().hex[:12]}"
        file = TimedFile(name, "video/mp4", "", len(self.fake.video), bytearray(self.fake.video), 0, "ACTIVE")
        file.created = self.fake.clock()
        self.fake.files[name] = file
        return name

    def _cancel(self, name: str) -> None:
        op = self.fake.operations.get(name)
        if op is None:
            return self._send_error(g.Error(404, f"Operation {name} not found"))
        op.cancelled = True
        self._send_json(200, {})

    def _download(self, name: str) -> None:
        file = self.fake.files.get(name)
        if file is None:
            return self._send_error(g.Error(404, f"File {name} not found"))
        data = bytes(file.data)
        self.send_response(200)
        self.send_header("Content-Type", file.mime_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # Files API
    def _start_upload(self, rec: g.Recorded) -> None:
        before = set(self.fake.files)
        super()._start_upload(rec)
        for name in set(self.fake.files) - before:
            old = self.fake.files[name]
            new = TimedFile(old.name, old.mime_type, old.display_name, old.size, old.data, old.polls_left, old.state)
            new.created = self.fake.clock()
            new.owner = rec.headers.get("x-goog-api-key")
            self.fake.files[name] = new

    def _upload_bytes(self, rec: g.Recorded) -> None:
        name = self.fake._uploads.get((rec.query.get("upload_id") or [""])[0])
        file = self.fake.files.get(name or "")
        if isinstance(file, TimedFile) and "finalize" in (rec.headers.get("x-goog-upload-command") or ""):
            file.sha_hex = hashlib.sha256(bytes(file.data) + rec.body).hexdigest()
        super()._upload_bytes(rec)

    def _get_file(self, name: str) -> None:
        file = self.fake.files.get(name)
        foreign = isinstance(file, TimedFile) and file.owner not in (None, self.headers.get("x-goog-api-key"))
        if isinstance(file, TimedFile) and (foreign or file.created + FILE_TTL <= self.fake.clock()):
            return self._send_error(
                g.Error(403, f"You do not have permission to access the File {name} or it may not exist.")
            )
        super()._get_file(name)

    def _list_files(self, query: dict[str, list[str]]) -> None:
        if self.fake.list_files_error is not None:
            return self._send_error(self.fake.list_files_error)
        size = max(1, min(int((query.get("pageSize") or ["10"])[0] or 10), 100))
        start = int((query.get("pageToken") or ["0"])[0] or 0)
        now = self.fake.clock()
        key = self.headers.get("x-goog-api-key")
        alive = [
            f
            for f in self.fake.files.values()
            if isinstance(f, TimedFile) and f.created + FILE_TTL > now and f.owner in (None, key)
        ]
        page = alive[start : start + size]
        payload: dict[str, Any] = {"files": [f.resource(self.fake.url) for f in page]}
        if start + size < len(alive):
            payload["nextPageToken"] = str(start + size)
        self._send_json(200, payload)

    def _delete_file(self, name: str) -> None:
        if self.fake.files.pop(name, None) is None:
            return self._send_error(g.Error(404, f"File {name} not found"))
        self._send_json(200, {})
