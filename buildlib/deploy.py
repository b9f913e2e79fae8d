"""`python3 build.py deploy`: install the built pack into a running Open WebUI through its REST API.

Every change is read-before-write, so a second run changes nothing: the toggle endpoints flip
state, the valves update endpoint replaces the whole stored set, and the access endpoints replace
all grants (sharing adds to the grants it read).

Deploy asks the server its version first (GET /api/version, unauthenticated in every version) and
takes what differs between Open WebUI versions from one table, HOST_FACTS, below.
"""

from __future__ import annotations

import ast
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from buildlib import MANIFEST, PLUGINS, BuildError
from buildlib.kinds import FUNCTION, TEMPLATES, TOOL, Kind, kind

PUBLIC_READ = {"principal_type": "user", "principal_id": "*", "permission": "read"}
# Since Open WebUI 0.10 the create endpoints hide the loader's exception behind this text
# (open_webui/routers/functions.py and tools.py, ERROR_MESSAGES.DEFAULT(e, 'Error creating ...')).
HIDDEN_CREATE_ERROR = "[ERROR: Error creating"
# Every version wraps an error text it passes on as "[ERROR: <text>]" (open_webui/constants.py).
ERROR_WRAP = ("[ERROR: ", "]")
# Open WebUI 0.12.4 (open_webui/utils/plugin.py, replace_imports) applies these to the content
# before it is stored.
OPEN_WEBUI_IMPORT_REWRITES = (
    ("from utils", "from open_webui.utils"),
    ("from apps", "from open_webui.apps"),
    ("from main", "from open_webui.main"),
    ("from config", "from open_webui.config"),
)
DRY_RUN_WORDS = {
    "created": "would create",
    "updated": "would update",
    "activated": "would activate",
    "made global": "would make global",
    "made shared": "would share",
    "valves updated": "would update valves",
}
UNCHANGED_WORDS = ("unchanged", "active", "global", "shared")
PIPE_KIND = "pipe"  # the kind whose functions serve models


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def error_detail(raw: bytes) -> str:
    """The `detail` of a FastAPI error body (validation errors listed), else the text."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:2000] or "(empty body)"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" if isinstance(d, dict) else str(d)
            for d in detail
        )
    return detail if isinstance(detail, str) else json.dumps(detail)


class JsonApi:
    """Minimal JSON client (urllib: the build stays stdlib-only), one per server deploy talks to."""

    name = "the server"  # "cannot reach <name> at URL"
    what = "the server"  # "is URL <what>?"

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.calls = 0

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    def call(self, method: str, path: str, body: object = None):  # -> the decoded JSON
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = self.headers()
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(method, path, exc.code, error_detail(exc.read())) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BuildError(f"cannot reach {self.name} at {self.url}: {reason}") from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise BuildError(f"{method} {path}: the answer is not JSON; is {self.url} {self.what}?") from None


class OpenWebUIApi(JsonApi):
    """The Open WebUI REST API. The token is only ever a header."""

    name, what = "Open WebUI", "an Open WebUI"

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        super().__init__(url, timeout)
        self._token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}


@dataclass
class DeployTarget:
    id: str
    kind: str
    title: str
    description: str
    make_global: bool
    text: str
    dist: str
    valves: dict | None = None
    requires: str = ""  # required_open_webui_version from the manifest

    @property
    def kind_row(self) -> Kind:
        return kind(self.kind)

    @property
    def api(self) -> str:
        return self.kind_row.api

    def form(self, content: str | None = None) -> dict:
        return {
            "id": self.id,
            "name": self.title,
            "content": self.text if content is None else content,
            "meta": {"description": self.description},
        }


@dataclass
class DeployOptions:
    url: str | None  # Open WebUI base URL (None: no Open WebUI deploy)
    token: str | None
    only: list[str] | None = None
    valves: Path | None = None
    share_tools: bool = False
    dry_run: bool = False
    timeout: float = 60.0
    share_models: bool = False  # pipe models readable by all users
    share_models_with: list[str] | None = None  # ... or by these groups (names or ids)
    hayhooks: str | None = None  # a Hayhooks server's base URL: deploy the Hayhooks wrappers there


def open_webui_stored(text: str) -> str:
    """The content Open WebUI stores for `text`: it rewrites some imports before saving."""
    for old, new in OPEN_WEBUI_IMPORT_REWRITES:
        text = text.replace(old, new)
    return text


def is_template(entry: dict) -> bool:
    return str(entry.get("source", "")).startswith(f"{PLUGINS}/{TEMPLATES}/")


def select_targets(root: Path, only: list[str] | None) -> tuple[list[DeployTarget], list[str]]:
    """What to deploy (default: the pack without templates) and notes on what is skipped."""
    path = root / MANIFEST
    if not path.is_file():
        raise BuildError(f"no {MANIFEST} in {root}; run `python3 build.py` first")
    entries = json.loads(path.read_text(encoding="utf-8"))["plugins"]
    if only:
        known = {e["id"] for e in entries}
        unknown = [i for i in only if i not in known]
        if unknown:
            listed = ", ".join(sorted(known))
            raise BuildError(f"--only: no plugin {', '.join(unknown)} in {MANIFEST} (known: {listed})")
        chosen = [e for i in dict.fromkeys(only) for e in entries if e["id"] == i]
    else:
        chosen = [e for e in entries if not is_template(e)]
    targets, notes = [], []
    for entry in chosen:
        row = kind(entry["kind"])
        if not row.deployable:
            notes.append(f"{entry['id']} ({entry['kind']}): skipped; {row.elsewhere.format(dist=entry['dist'])}")
            continue
        dist = root / entry["dist"]
        if not dist.is_file():
            raise BuildError(f"{entry['dist']} is missing; run `python3 build.py`")
        text = dist.read_text(encoding="utf-8")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != entry["sha256"]:
            raise BuildError(f"{entry['dist']} does not match {MANIFEST}; run `python3 build.py`")
        targets.append(
            DeployTarget(
                id=entry["id"],
                kind=entry["kind"],
                title=entry["title"],
                description=entry["description"],
                make_global=bool(entry.get("global")) and row.can_be_global,
                text=text,
                dist=entry["dist"],
                requires=str(entry.get("required_open_webui_version") or ""),
            )
        )
    return targets, notes


@dataclass(frozen=True)
class ValveFields:
    """The field names of a plugin's Valves, read from its built text (inherited fields included)."""

    names: tuple[str, ...]
    # base classes the built file does not define (other than pydantic's BaseModel): the class
    # may have more fields than `names`
    unresolved: tuple[str, ...] = ()


# Bases that end the walk: they add no valve fields.
VALVE_ROOTS = {"BaseModel", "object"}


def _own_fields(cls: ast.ClassDef) -> list[str]:
    """Fields written in the class body; `_private` attributes and ClassVars are not valves."""
    return [
        n.target.id
        for n in cls.body
        if isinstance(n, ast.AnnAssign)
        and isinstance(n.target, ast.Name)
        and not n.target.id.startswith("_")
        and not ast.unparse(n.annotation).split("[")[0].endswith("ClassVar")
    ]


def _class_fields(cls: ast.ClassDef, classes: dict[str, ast.ClassDef], seen: frozenset[str]) -> ValveFields:
    """`cls`'s fields and its bases', bases resolved among the file's top-level classes.

    Pydantic lists inherited fields first, the last base's first; a redefined field keeps its place.
    """
    names: list[str] = []
    unresolved: list[str] = []
    for base in reversed(cls.bases):
        base_name = ast.unparse(base)
        last = base_name.rsplit(".", 1)[-1]
        if isinstance(base, ast.Name) and base.id in classes and base.id not in seen:
            found = _class_fields(classes[base.id], classes, seen | {base.id})
            names += found.names
            unresolved += found.unresolved
        elif last not in VALVE_ROOTS:
            unresolved.append(base_name)
    names += _own_fields(cls)
    return ValveFields(tuple(dict.fromkeys(names)), tuple(dict.fromkeys(unresolved)))


def valve_names(target: DeployTarget) -> ValveFields | None:
    """The plugin class's Valves fields (None: it has no Valves), read from the built text.

    The built file is self-contained, so a base class such as a shared `MoaValves` is defined in it
    and its fields are found without importing anything.
    """
    tree = ast.parse(target.text)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    plugin = classes.get(target.kind_row.cls)
    for inner in plugin.body if plugin else ():
        if isinstance(inner, ast.ClassDef) and inner.name == "Valves":
            return _class_fields(inner, classes, frozenset())
        # `Valves = SomeValves`
        if (
            isinstance(inner, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "Valves" for t in inner.targets)
            and isinstance(inner.value, ast.Name)
        ):
            cls = classes.get(inner.value.id)
            if cls is None:
                return ValveFields((), (inner.value.id,))
            return _class_fields(cls, classes, frozenset({cls.name}))
    return None


def load_valves(path: Path, root: Path, targets: list[DeployTarget]) -> list[str]:
    """Attach the valves file's entries to the targets; typos in ids or valve names are errors.

    Returns notes to print: valve names that could not be checked because the Valves class inherits
    from a class the built file does not define (the server still checks the values).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BuildError(f"--valves {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise BuildError(f"--valves {path}: expected {{plugin_id: {{valve: value}}}}")
    known = {e["id"] for e in json.loads((root / MANIFEST).read_text(encoding="utf-8"))["plugins"]}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BuildError(f"--valves {path}: no plugin {', '.join(unknown)} in {MANIFEST}")
    notes = []
    for target in targets:
        if target.id not in data:
            continue
        fields = valve_names(target)
        names = fields.names if fields else ()
        wrong = sorted(set(data[target.id]) - set(names))
        if wrong and fields and fields.unresolved:
            notes.append(
                f"{target.id}: cannot check the valve name(s) {', '.join(wrong)}: its Valves inherits from "
                f"{', '.join(fields.unresolved)}, which {target.dist} does not define; Open WebUI checks the values"
            )
        elif wrong:
            have = ", ".join(names) if names else "none"
            raise BuildError(f"--valves {path}: {target.id} has no valve {', '.join(wrong)} (its valves: {have})")
        target.valves = data[target.id]
    return notes


# --- what differs between the Open WebUI versions deploy is tested with --------------------
#
# Deploy reads the server's version once (GET /api/version) and takes every version-dependent
# decision from HOST_FACTS; the code below it asks the facts, never the version.

GRANT_KEYS = ("principal_type", "principal_id", "permission")


def grant_key(grant: dict) -> tuple:
    return tuple(grant.get(k) for k in GRANT_KEYS)


def with_grants(current: list[dict], wanted: list[dict]) -> tuple[bool, list[dict]]:
    """(whether `current` lacks some of `wanted`, `current` plus the missing ones)."""
    have = {grant_key(g) for g in current}
    missing = [g for g in wanted if grant_key(g) not in have]
    return bool(missing), current + missing


class GrantAccess:
    """Access as an `access_grants` list, replaced through the `.../access/update` endpoints.

    Open WebUI 0.8 and later: a tool created through the API is private, the update endpoints
    leave the grants alone, and the model access endpoint creates a minimal workspace entry when
    the model has none, as the admin's access dialog does.
    """

    def plan(self, record: dict | None, wanted: list[dict]) -> tuple[bool, object]:
        """(whether `record` lacks some of `wanted`, the access value to store)."""
        current = [{k: g.get(k) for k in GRANT_KEYS} for g in (record or {}).get("access_grants") or []]
        return with_grants(current, wanted)

    def tool_fields(self, stored: dict | None) -> dict:
        """Fields a tool's create or update form must carry to keep its access."""
        return {}

    def share_tool(self, api: OpenWebUIApi, target: DeployTarget, value: object) -> None:
        api.call("POST", f"/api/v1/tools/id/{target.id}/access/update", {"access_grants": value})

    def share_model(self, api: OpenWebUIApi, model_id: str, name: str, entry: dict | None, value: object):
        form = {"id": model_id, "name": name, "access_grants": value}
        return api.call("POST", "/api/v1/models/model/access/update", form)


class ControlAccess:
    """Access as one `access_control` value, set through the create and update forms.

    Open WebUI 0.6 (open_webui/utils/access_control.py, has_access): `None` is readable by every
    user, `{}` is private, else `{"read": {"group_ids": [...], "user_ids": [...]}, "write": {...}}`.
    There is no access endpoint (405). A form without the field stores `None`, so each tool update
    sends the stored value back, and a new tool is created private (`{}`), as later versions do.
    """

    def grants(self, control: dict | None) -> list[dict]:
        """The value as grants (the later versions' shape), so both styles merge the same way."""
        if control is None:
            return [dict(PUBLIC_READ)]
        return [
            {"principal_type": principal, "principal_id": i, "permission": permission}
            for permission in ("read", "write")
            for principal in ("group", "user")
            for i in (control.get(permission) or {}).get(f"{principal}_ids") or []
        ]

    def control(self, grants: list[dict]) -> dict | None:
        if grant_key(PUBLIC_READ) in {grant_key(g) for g in grants}:
            writes = [g for g in grants if g.get("permission") == "write"]
            if writes:
                raise BuildError(
                    f"Open WebUI 0.6 makes an entry readable by all users by removing its access list, "
                    f"which would drop the {len(writes)} write grant(s) it has; share it with groups "
                    f"(--share-models-with) or remove the write grants first"
                )
            return None
        control: dict = {p: {"group_ids": [], "user_ids": []} for p in ("read", "write")}
        for g in grants:
            control[g["permission"]][f"{g['principal_type']}_ids"].append(g["principal_id"])
        return control

    def plan(self, record: dict | None, wanted: list[dict]) -> tuple[bool, object]:
        if record is None:  # no workspace model entry yet: one is created
            return True, self.control(wanted)
        current = self.grants(record.get("access_control"))
        _, merged = with_grants(current, wanted)
        value = self.control(merged)
        return value != self.control(current), value

    def tool_fields(self, stored: dict | None) -> dict:
        return {"access_control": {} if stored is None else stored.get("access_control")}

    def share_tool(self, api: OpenWebUIApi, target: DeployTarget, value: object) -> None:
        # the update form replaces the whole record: the text is the one deploy just made current
        api.call("POST", f"/api/v1/tools/id/{target.id}/update", {**target.form(), "access_control": value})

    def share_model(self, api: OpenWebUIApi, model_id: str, name: str, entry: dict | None, value: object):
        if entry is None:
            form = {"id": model_id, "name": name, "meta": {}, "params": {}, "access_control": value}
            return api.call("POST", "/api/v1/models/create", form)
        # the update form replaces the entry (is_active included): send it back whole
        return api.call("POST", "/api/v1/models/model/update", {**entry, "access_control": value})


GRANTS, CONTROL = GrantAccess(), ControlAccess()


@dataclass(frozen=True)
class HostFacts:
    """What deploy relies on that differs between Open WebUI versions, read in that version's code."""

    version: str  # the tested version these facts hold for (and for later ones up to the next row)
    access: GrantAccess | ControlAccess  # how tools and models store who may read them
    missing_tool_status: int  # GET /api/v1/tools/id/{id} of a tool that does not exist
    create_error_shown: bool  # the create endpoints pass the loader's exception on
    update_error_shown: bool  # the update endpoints pass it on
    event_functions: bool  # the loader knows `class Event` (open_webui/utils/plugin.py)


HOST_FACTS = (
    HostFacts("0.6.43", CONTROL, 401, create_error_shown=True, update_error_shown=True, event_functions=False),
    HostFacts("0.8.12", GRANTS, 404, create_error_shown=True, update_error_shown=True, event_functions=False),
    HostFacts("0.10.2", GRANTS, 404, create_error_shown=False, update_error_shown=False, event_functions=True),
    HostFacts("0.12.4", GRANTS, 404, create_error_shown=False, update_error_shown=True, event_functions=True),
)
EVENT_KIND = "event"


def version_key(version: str) -> tuple[int, ...]:
    """(0, 10, 2) for "0.10.2" (a suffix such as "-dev" or "rc1" is ignored); () when not a version."""
    key = []
    for part in version.strip().lstrip("v").split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        key.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(key)


def facts_for(version: str) -> HostFacts:
    """The row of the newest tested version not newer than `version` (unknown: the newest row)."""
    key = version_key(version)
    if not key:
        return HOST_FACTS[-1]
    older = [f for f in HOST_FACTS if version_key(f.version) <= key]
    return older[-1] if older else HOST_FACTS[0]


def unwrapped(detail: str) -> str:
    start, end = ERROR_WRAP
    if detail.startswith(start) and detail.endswith(end):
        return detail[len(start) : -len(end)]
    return detail


@dataclass(frozen=True)
class Host:
    """The Open WebUI deploy talks to: the version it reports and the facts for it."""

    version: str  # as the server reports it; "" when it did not say
    facts: HostFacts

    @classmethod
    def of(cls, version: str) -> Host:
        return cls(version, facts_for(version))

    @property
    def name(self) -> str:
        return f"Open WebUI {self.version}" if self.version else "Open WebUI (version unknown)"

    def notes(self) -> list[str]:
        oldest, newest = HOST_FACTS[0].version, HOST_FACTS[-1].version
        if not version_key(self.version):
            return [f"the server did not say its version (GET /api/version); deploy treats it as {newest}"]
        if version_key(self.version) < version_key(oldest):
            return [f"{self.name} is older than {oldest}, the oldest version deploy is tested with"]
        return []

    def form(self, target: DeployTarget, stored: dict | None, content: str | None = None) -> dict:
        """The create (stored None) or update form for `target`."""
        form = target.form(content)
        if target.kind_row.host == TOOL:
            form.update(self.facts.access.tool_fields(stored))
        return form

    def cannot_install(self, target: DeployTarget) -> str | None:
        """Why this server cannot take `target` at all (None: it can)."""
        if target.kind == EVENT_KIND and not self.facts.event_functions:
            have = next(f.version for f in HOST_FACTS if f.event_functions)
            return f"{self.name} has no event functions ({have} has)"
        return None

    def older_than(self, required: str) -> bool:
        return bool(version_key(self.version) and version_key(required)) and (
            version_key(self.version) < version_key(required)
        )

    def load_error(self, target: DeployTarget, detail: str, *, update: bool, shown: bool) -> BuildError:
        kept = "; the installed version stays" if update else ""
        if shown:
            return BuildError(f"Open WebUI cannot load {target.dist}: {unwrapped(detail)}{kept}")
        return BuildError(
            f"{self.name} cannot load {target.dist} and does not say why (it answers only "
            f"{unwrapped(detail)!r}); the server's log has the reason{kept}"
        )


def detect_host(api: OpenWebUIApi) -> Host:
    try:
        body = api.call("GET", "/api/version")
    except ApiError:
        body = None
    version = body.get("version") if isinstance(body, dict) else None
    return Host.of(version if isinstance(version, str) else "")


NEWEST = Host.of(HOST_FACTS[-1].version)


# --- deploying one plugin --------------------------------------------------------------------


def create_plugin(api: OpenWebUIApi, host: Host, target: DeployTarget) -> dict:
    """Create; when the server hides why it cannot, learn it through the update endpoint if that tells."""
    try:
        return api.call("POST", f"/api/v1/{target.api}/create", host.form(target, None))
    except ApiError as exc:
        if exc.status != 400 or not exc.detail.startswith(ERROR_WRAP[0]):
            raise  # not the loader's error (e.g. the id is taken): shown as it is
        hidden = HIDDEN_CREATE_ERROR in exc.detail and not host.facts.create_error_shown
        if not hidden or not host.facts.update_error_shown:
            raise host.load_error(target, exc.detail, update=False, shown=not hidden) from None
    # create a harmless placeholder under the same id, update it with our text, then delete it
    placeholder = f'"""\ntitle: {target.title}\n"""\n\n' + target.kind_row.placeholder
    try:
        api.call("POST", f"/api/v1/{target.api}/create", host.form(target, None, placeholder))
    except ApiError as exc:
        raise BuildError(f"Open WebUI refused to create it ({exc.detail}); its log says why") from None
    try:
        return api.call("POST", f"/api/v1/{target.api}/id/{target.id}/update", host.form(target, None))
    except ApiError as exc:
        api.call("DELETE", f"/api/v1/{target.api}/id/{target.id}/delete")
        raise host.load_error(target, exc.detail, update=False, shown=True) from None


def content_differs(stored: dict, target: DeployTarget) -> bool:
    return (
        stored.get("content") != open_webui_stored(target.text)
        or stored.get("name") != target.title
        or (stored.get("meta") or {}).get("description") != target.description
    )


def merged_valves(stored: dict | None, ours: dict) -> dict:
    # a null in the file means "back to the default": the server drops None values anyway
    merged = {**(stored or {}), **ours}
    return {k: v for k, v in merged.items() if v is not None}


def deploy_content(
    api: OpenWebUIApi, host: Host, target: DeployTarget, stored: dict | None, dry_run: bool
) -> tuple[str, dict]:
    """("created" | "updated" | "unchanged", the record as stored; in a dry run, as it would be)."""
    if stored is None:
        return "created", (host.form(target, None) if dry_run else create_plugin(api, host, target))
    if not content_differs(stored, target):
        return "unchanged", stored
    if dry_run:
        return "updated", stored
    try:
        return "updated", api.call("POST", f"/api/v1/{target.api}/id/{target.id}/update", host.form(target, stored))
    except ApiError as exc:
        if exc.status != 400:
            raise
        raise host.load_error(target, exc.detail, update=True, shown=host.facts.update_error_shown) from None


def deploy_valves(api: OpenWebUIApi, target: DeployTarget, stored: dict | None, dry_run: bool) -> str | None:
    if target.valves is None:
        return None
    merged = merged_valves(stored, target.valves)
    if merged == (stored or {}):
        return None
    if not dry_run:
        try:
            api.call("POST", f"/api/v1/{target.api}/id/{target.id}/valves/update", merged)
        except ApiError as exc:
            spec = api.call("GET", f"/api/v1/{target.api}/id/{target.id}/valves/spec") or {}
            props = spec.get("properties", {}) if isinstance(spec, dict) else {}
            types_ = ", ".join(f"{k}: {props.get(k, {}).get('type', '?')}" for k in sorted(target.valves))
            # values are never shown: valves hold API keys
            raise BuildError(f"the server rejected the valves ({exc.detail}); expected types: {types_}") from None
    return "valves updated"


def _toggle(api: OpenWebUIApi, target: DeployTarget, current: dict, flag: str, path: str, dry_run: bool) -> dict:
    if dry_run:
        return current
    current = api.call("POST", f"/api/v1/functions/id/{target.id}/{path}")
    if not current.get(flag):
        what = "activate it" if flag == "is_active" else "make it global"
        raise BuildError(f"toggling did not {what} (changed concurrently?); run deploy again")
    return current


def deploy_function(
    api: OpenWebUIApi, host: Host, target: DeployTarget, stored: dict | None, dry_run: bool
) -> list[str]:
    state, current = deploy_content(api, host, target, stored, dry_run)
    words = [state]
    changed_valves = deploy_valves(api, target, (stored or {}).get("valves"), dry_run)
    if current.get("is_active"):
        words.append("active")
    else:
        current = _toggle(api, target, current, "is_active", "toggle", dry_run)
        words.append("activated")
    if target.make_global:
        if current.get("is_global"):
            words.append("global")
        else:
            current = _toggle(api, target, current, "is_global", "toggle/global", dry_run)
            words.append("made global")
    if changed_valves:
        words.append(changed_valves)
    return words


def deploy_tool(api: OpenWebUIApi, host: Host, target: DeployTarget, share: bool, dry_run: bool) -> list[str]:
    try:
        stored = api.call("GET", f"/api/v1/tools/id/{target.id}")
    except ApiError as exc:
        if exc.status != host.facts.missing_tool_status:
            raise
        stored = None
    state, current = deploy_content(api, host, target, stored, dry_run)
    words = [state]
    valves = None
    if target.valves is not None and stored is not None:
        valves = api.call("GET", f"/api/v1/tools/id/{target.id}/valves")
    changed_valves = deploy_valves(api, target, valves, dry_run)
    if share:
        missing, value = host.facts.access.plan(current, [PUBLIC_READ])
        if not missing:
            words.append("shared")
        else:
            if not dry_run:
                host.facts.access.share_tool(api, target, value)
            words.append("made shared")
    if changed_valves:
        words.append(changed_valves)
    return words


def group_grants(api: OpenWebUIApi, wanted: list[str]) -> list[dict]:
    """Read grants for the named groups (a group's id works too); an unknown or ambiguous name is an error."""
    groups = [g for g in api.call("GET", "/api/v1/groups/") or [] if isinstance(g, dict)]
    ids = []
    for name in wanted:
        found = [g for g in groups if g.get("id") == name] or [g for g in groups if g.get("name") == name]
        if not found:
            have = ", ".join(sorted(str(g.get("name")) for g in groups)) or "none"
            raise BuildError(f"--share-models-with: no group named {name!r} (groups: {have})")
        if len(found) > 1:
            raise BuildError(
                f"--share-models-with: {len(found)} groups are named {name!r}; "
                f"pass the id of the one you mean: {', '.join(str(g.get('id')) for g in found)}"
            )
        ids.append(found[0]["id"])
    return [{"principal_type": "group", "principal_id": i, "permission": "read"} for i in dict.fromkeys(ids)]


@dataclass
class ModelSharing:
    """Read grants on the models of the deployed pipes (--share-models, --share-models-with).

    Open WebUI shows a model to a non-admin only when a workspace model entry with that id exists
    and lets them read it (0.12.4: open_webui/utils/models.py, get_filtered_models and
    check_model_access; the same rule in 0.6.43); a function's models have no entry until someone
    creates one, which sharing does (how: `access`, per version). A manifold's sub-models
    (`<function id>.<model>`) are separate models: each one listed at deploy time is shared.
    """

    grants: list[dict]
    audience: str
    access: GrantAccess | ControlAccess = GRANTS
    entries: dict[str, dict] | None = None  # workspace model entries by id, with their access
    listed: list[dict] | None = None  # the models Open WebUI serves (admin view, no access filter)

    @classmethod
    def from_options(cls, api: OpenWebUIApi, options: DeployOptions, host: Host = NEWEST) -> ModelSharing | None:
        groups = [g.strip() for value in options.share_models_with or () for g in value.split(",") if g.strip()]
        if not options.share_models and not groups:
            return None
        grants, audience = [], []
        if options.share_models:
            grants.append(PUBLIC_READ)
            audience.append("all users")
        if groups:
            grants += group_grants(api, groups)
            audience.append(f"group{'s' if len(groups) > 1 else ''} {', '.join(groups)}")
        return cls(grants, " and ".join(audience), host.facts.access)

    def models_of(self, api: OpenWebUIApi, target: DeployTarget, changed: bool) -> list[dict]:
        """The models `target` serves: its own id, or `<id>.<sub>` for a manifold's sub-models."""

        def mine(listed: list[dict]) -> list[dict]:
            return [
                m
                for m in listed
                if m.get("pipe") and (m.get("id") == target.id or str(m.get("id")).startswith(f"{target.id}."))
            ]

        # the list is re-read when this function changed or is not in it yet (a just-created one)
        if self.listed is None or changed or not mine(self.listed):
            body = api.call("GET", "/api/models/base")
            self.listed = [m for m in (body or {}).get("data", []) if isinstance(m, dict)]
        if self.entries is None:
            self.entries = {e["id"]: e for e in api.call("GET", "/api/v1/models/base") or [] if isinstance(e, dict)}
        return mine(self.listed)

    def share(self, api: OpenWebUIApi, target: DeployTarget, changed: bool, dry_run: bool) -> tuple[str, str | None]:
        """("shared" | "made shared", the line to print under the plugin's line or None)."""
        models = self.models_of(api, target, changed)
        if not models:
            if dry_run:
                return "made shared", f"  its models would be readable by {self.audience} once it is installed"
            raise BuildError("Open WebUI lists no model for it, so none could be shared; its log says why")
        made = []
        for model in models:
            entry = (self.entries or {}).get(model["id"])
            missing, value = self.access.plan(entry, self.grants)
            if not missing:
                continue
            made.append(model["id"])
            if dry_run:
                continue
            name = (entry or {}).get("name") or model.get("name") or model["id"]
            stored = self.access.share_model(api, model["id"], name, entry, value)
            if isinstance(stored, dict) and self.entries is not None:
                self.entries[model["id"]] = stored
        if not made:
            return "shared", None
        return "made shared", f"  {'would be ' if dry_run else ''}readable by {self.audience}: {', '.join(made)}"


def check_admin(api: OpenWebUIApi) -> None:
    try:
        me = api.call("GET", "/api/v1/auths/")
    except ApiError as exc:
        raise BuildError(f"the token was refused ({exc}); pass an admin's token") from None
    role = me.get("role") if isinstance(me, dict) else None
    if role != "admin":
        raise BuildError(f"the token belongs to a user with role {role!r}; deploying needs an admin")


def deploy_one(
    api: OpenWebUIApi, host: Host, target: DeployTarget, functions: dict[str, dict], options: DeployOptions
) -> list[str]:
    kind_host = target.kind_row.host
    if kind_host == TOOL:
        return deploy_tool(api, host, target, options.share_tools, options.dry_run)
    if kind_host == FUNCTION:
        return deploy_function(api, host, target, functions.get(target.id), options.dry_run)
    raise BuildError(f"{target.kind} plugins cannot be deployed into Open WebUI")


def deploy_target(
    api: OpenWebUIApi,
    host: Host,
    target: DeployTarget,
    functions: dict[str, dict],
    options: DeployOptions,
    sharing: ModelSharing | None,
) -> tuple[list[str], list[str]]:
    """The plugin's state words and the lines to print under its line."""
    words = deploy_one(api, host, target, functions, options)
    details = []
    if host.older_than(target.requires):
        details.append(f"  it is made for Open WebUI {target.requires} and later; this server runs {host.version}")
    if sharing is not None and target.kind == PIPE_KIND:
        changed = any(w not in UNCHANGED_WORDS for w in words)
        word, detail = sharing.share(api, target, changed, options.dry_run)
        words.append(word)
        details += [detail] if detail else []
    return words, details


def installable(host: Host, targets: list[DeployTarget]) -> tuple[list[DeployTarget], list[str]]:
    """The targets this server can take, and a skip note for each of the others."""
    kept, notes = [], []
    for target in targets:
        reason = host.cannot_install(target)
        if reason:
            notes.append(f"{target.id} ({target.kind}): skipped; {reason}")
        else:
            kept.append(target)
    return kept, notes


def deploy(root: Path, options: DeployOptions) -> int:
    """Deploy to Open WebUI (--url), to a Hayhooks server (--hayhooks), or both; 1 when anything failed."""
    if not options.url and not options.hayhooks:
        raise BuildError("say where to deploy: --url (an Open WebUI) and/or --hayhooks (a Hayhooks server)")
    status = 0
    if options.url:
        status = deploy_open_webui(root, options)
    if options.hayhooks:
        status = max(status, deploy_hayhooks(root, options))
    return status


def deploy_open_webui(root: Path, options: DeployOptions) -> int:
    """Deploy the selected plugins, one line per plugin; 1 when any of them failed."""
    assert options.url is not None
    if not options.token:
        raise BuildError("no token: pass --token or set OPENWEBUI_TOKEN (an admin's API key or JWT)")
    started = time.perf_counter()
    targets, notes = select_targets(root, options.only)
    if options.hayhooks:  # the Hayhooks wrappers are deployed there, after this
        notes = [n for n in notes if f" ({HAYHOOKS_KIND}): " not in n]
    if options.valves is not None:
        notes += load_valves(options.valves, root, targets)
    api = OpenWebUIApi(options.url, options.token, timeout=options.timeout)
    check_admin(api)
    host = detect_host(api)
    targets, skipped = installable(host, targets)
    sharing = ModelSharing.from_options(api, options, host)
    exported = api.call("GET", "/api/v1/functions/export?include_valves=true") or []
    functions = {f["id"]: f for f in exported if isinstance(f, dict)}
    print(f"{host.name} at {api.url}{': dry run, nothing is changed' if options.dry_run else ''}")
    for note in [*host.notes(), *notes, *skipped]:
        print(note)
    failed, changed = 0, 0
    for target in targets:
        try:
            words, details = deploy_target(api, host, target, functions, options, sharing)
        except (ApiError, BuildError) as exc:
            failed += 1
            print(f"{target.id} ({target.kind}): FAILED: {exc}", flush=True)
            continue
        if any(w not in UNCHANGED_WORDS for w in words):
            changed += 1
        shown = [DRY_RUN_WORDS.get(w, w) for w in words] if options.dry_run else words
        print("\n".join([f"{target.id} ({target.kind}): {', '.join(shown)}", *details]), flush=True)
    if sharing is not None and any(t.kind == PIPE_KIND for t in targets):
        print("models a pipe lists later (a manifold's new models) stay private until a deploy shares them")
    if not options.dry_run and targets:
        try:
            models = api.call("GET", "/api/models")
            listed = len(models.get("data", [])) if isinstance(models, dict) else 0
            print(f"refreshed /api/models: {listed} models listed")
        except ApiError as exc:
            failed += 1
            print(f"refreshing /api/models FAILED: {exc}")
    took = time.perf_counter() - started
    ok = len(targets) - failed
    print(
        f"{'checked' if options.dry_run else 'deployed'} {ok} of {len(targets)} plugins in {took:.2f} s; "
        f"{changed} {'would change' if options.dry_run else 'changed'}, {failed} failed"
    )
    return 1 if failed else 0


# --- Hayhooks: `deploy --hayhooks URL` -----------------------------------------------------------
#
# Hayhooks 2.1.0 (hayhooks/server/routers/deploy.py) deploys a wrapper at runtime with
# POST /deploy_files {"name", "files": {relative path: text}, "save_files", "overwrite"}: it loads the
# module, runs setup() and serves it as the model <name>; with save_files the files are also written
# to <pipelines dir>/<name>/, so a restart serves them again. It has no authentication, and no
# endpoint returns a deployed wrapper's files, so deploy cannot read back what a server runs: it keeps
# a record of what it sent to which server (HAYHOOKS_RECORD_ENV, default under the user's cache dir)
# and redeploys a wrapper when the record differs or the server does not list it.

HAYHOOKS_KIND = "hayhooks"
HAYHOOKS_HOST = "hayhooks"  # buildlib/kinds.py: the host of the Hayhooks wrapper kind
HAYHOOKS_WRAPPER = "pipeline_wrapper.py"
HAYHOOKS_RECORD_ENV = "OPENWEBUI_PACK_HAYHOOKS_RECORD"
# after deploying, /status is read this many times over fresh connections: a server with several
# uvicorn workers answers from different processes, and a runtime deploy reached only one of them
WORKER_PROBES = 8
HAYHOOKS_WORKERS_NOTE = (
    "note: a runtime deploy reaches only the Hayhooks worker that answered it; a server started with "
    "--workers 2 or more must be restarted with the wrappers in its pipelines dir "
    "(`hayhooks run --pipelines-dir dist/hayhooks`) instead"
)
HAYHOOKS_AUTH_NOTE = (
    "note: Hayhooks has no authentication (/deploy_files, /undeploy and the chat endpoints are open): "
    "bind it to 127.0.0.1 or put an authenticating proxy in front of it"
)


@dataclass
class HayhooksTarget:
    id: str
    name: str  # the model id: the folder Hayhooks serves it from
    files: dict[str, str]
    sha256: str  # of the built wrapper (the manifest's hash)


def is_hayhooks(entry: dict) -> bool:
    return kind(entry["kind"]).host == HAYHOOKS_HOST


def select_hayhooks_targets(
    root: Path, only: list[str] | None, open_webui_too: bool = False
) -> tuple[list[HayhooksTarget], list[str]]:
    """The Hayhooks wrappers to deploy (default: the pack's, without templates) and notes on the rest.

    With `open_webui_too` (--url given as well) the --only ids Open WebUI takes get no note here.
    """
    path = root / MANIFEST
    if not path.is_file():
        raise BuildError(f"no {MANIFEST} in {root}; run `python3 build.py` first")
    entries = json.loads(path.read_text(encoding="utf-8"))["plugins"]
    notes: list[str] = []
    if only:
        known = {e["id"]: e for e in entries}
        unknown = [i for i in only if i not in known]
        if unknown:
            listed = ", ".join(sorted(e["id"] for e in entries if is_hayhooks(e)))
            raise BuildError(f"--only: no plugin {', '.join(unknown)} in {MANIFEST} (Hayhooks wrappers: {listed})")
        chosen = []
        for i in dict.fromkeys(only):
            if is_hayhooks(known[i]):
                chosen.append(known[i])
            elif not (open_webui_too and kind(known[i]["kind"]).deployable):
                notes.append(f"{i} ({known[i]['kind']}): not a Hayhooks wrapper; deploy it into Open WebUI with --url")
    else:
        chosen = [e for e in entries if is_hayhooks(e) and not is_template(e)]
    targets = []
    for entry in chosen:
        dist = root / entry["dist"]
        if not dist.is_file():
            raise BuildError(f"{entry['dist']} is missing; run `python3 build.py`")
        text = dist.read_text(encoding="utf-8")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != entry["sha256"]:
            raise BuildError(f"{entry['dist']} does not match {MANIFEST}; run `python3 build.py`")
        targets.append(HayhooksTarget(entry["id"], entry["id"], {HAYHOOKS_WRAPPER: text}, entry["sha256"]))
    return targets, notes


class HayhooksApi(JsonApi):
    """A Hayhooks server (no token: Hayhooks has no authentication)."""

    name, what = "Hayhooks", "a Hayhooks server"

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "Connection": "close"}

    def status(self) -> dict:
        try:
            body = self.call("GET", "/status")
        except ApiError as exc:
            raise BuildError(f"{exc}: {self.url} does not answer like a Hayhooks server") from None
        if not isinstance(body, dict) or "pipelines" not in body:
            raise BuildError(f"GET /status: {self.url} does not answer like a Hayhooks server")
        return body


def hayhooks_record_path() -> Path:
    """Where deploy remembers what it sent to which Hayhooks server."""
    import os

    override = os.environ.get(HAYHOOKS_RECORD_ENV)
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "openwebui-pack" / "hayhooks-deploys.json"


def read_record(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_record(path: Path, record: dict[str, dict[str, str]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"note: could not save the deploy record {path} ({exc}); the next run deploys again")


def deploy_wrapper(
    api: HayhooksApi, target: HayhooksTarget, listed: set[str], sent: dict[str, str], dry_run: bool
) -> str:
    """One wrapper: "unchanged", or "created"/"updated" after POST /deploy_files."""
    if target.name in listed and sent.get(target.name) == target.sha256:
        return "unchanged"
    word = "updated" if target.name in listed else "created"
    if not dry_run:
        api.call(
            "POST",
            "/deploy_files",
            {"name": target.name, "files": target.files, "save_files": True, "overwrite": True},
        )
        sent[target.name] = target.sha256
    return word


def worker_check(api: HayhooksApi, names: list[str]) -> str | None:
    """A warning when some /status answers lack a just-deployed wrapper (several workers), else None."""
    if not names:
        return None
    missing = 0
    for _ in range(WORKER_PROBES):
        listed = set(api.status().get("pipelines") or ())
        if not set(names) <= listed:
            missing += 1
    if not missing:
        return None
    return (
        f"WARNING: {missing} of {WORKER_PROBES} /status answers did not list {', '.join(names)}: this server "
        "runs several workers and the deploy reached one of them. Restart it with the wrappers in its "
        "pipelines dir (`hayhooks run --pipelines-dir dist/hayhooks`)"
    )


def deploy_hayhooks(root: Path, options: DeployOptions) -> int:
    """Deploy the Hayhooks wrappers to the server at options.hayhooks; 1 when any of them failed."""
    assert options.hayhooks is not None
    started = time.perf_counter()
    targets, notes = select_hayhooks_targets(root, options.only, open_webui_too=bool(options.url))
    api = HayhooksApi(options.hayhooks, timeout=options.timeout)
    status = api.status()
    if status.get("durable_mode"):
        raise BuildError(
            f"the Hayhooks server at {api.url} runs in durable mode, where runtime deploys are disabled; "
            "put the wrappers in its pipelines dir and restart it"
        )
    listed = set(status.get("pipelines") or ())
    record_path = hayhooks_record_path()
    record = read_record(record_path)
    sent = record.setdefault(api.url, {})
    print(f"Hayhooks at {api.url}{': dry run, nothing is changed' if options.dry_run else ''}")
    for note in [*notes, HAYHOOKS_AUTH_NOTE]:
        print(note)
    failed, changed = 0, []
    for target in targets:
        try:
            word = deploy_wrapper(api, target, listed, sent, options.dry_run)
        except (ApiError, BuildError) as exc:
            failed += 1
            sent.pop(target.name, None)
            print(f"{target.id} (hayhooks): FAILED: {exc}", flush=True)
            continue
        if word != "unchanged":
            changed.append(target.name)
        shown = DRY_RUN_WORDS.get(word, word) if options.dry_run else word
        print(f"{target.id} (hayhooks): {shown}, model {target.name}", flush=True)
    if not options.dry_run:
        write_record(record_path, record)
        warning = worker_check(api, changed)
        print(warning or HAYHOOKS_WORKERS_NOTE)
    took = time.perf_counter() - started
    ok = len(targets) - failed
    verb = "would change" if options.dry_run else "changed"
    nothing = (
        " (nothing to do: the server already runs these wrappers)" if targets and not changed and not failed else ""
    )
    print(
        f"{'checked' if options.dry_run else 'deployed'} {ok} of {len(targets)} Hayhooks wrappers in {took:.2f} s; "
        f"{len(changed)} {verb}, {failed} failed{nothing}"
    )
    return 1 if failed else 0
