"""Keeping secrets (API keys) out of replies, events, exceptions and log lines."""

import re
from collections.abc import Iterable


def redact(text: str, secrets: Iterable[str], limit: int | None = None) -> str:
    """`text` with every secret replaced, then shortened to `limit` characters.

    Replacing comes first: shortening first could leave half a key. Secrets shorter than 4
    characters are left alone; replacing them would garble the text and they protect nothing.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


# How much text past `limit` is masked before cutting: enough for any key that begins before the
# cut to still look like one (a shape needs its prefix and a few characters after it).
_SHAPE_MARGIN = 64


def mask_key_shapes(text: str, limit: int = 300) -> str:
    """`text` with anything shaped like a key masked, cut to `limit` characters.

    For errors that may echo a key the plugin was never given (an embedding or upstream server's
    key, in a URL or an Authorization header): `redact` can only replace the secrets it is told.
    Only the first `limit` characters (and a margin) are read, so the work is bounded however long
    the text is.
    """
    text = text[: limit + _SHAPE_MARGIN]
    text = re.sub(r"(?i)\b(bearer)\s+\S+", r"\1 ***", text)
    text = re.sub(r"(?i)\b(api[_-]?key|key|token|secret|password)(\W{1,3})[^\s&\"',]+", r"\1\2***", text)
    return re.sub(r"\bsk-[A-Za-z0-9_-]{6,}", "sk-***", text)[:limit]


# Key shapes that are keys whatever the sentence around them: a bearer token, an OpenAI-style
# `sk-…` key, a Google `AIza…` key, and a key passed as a URL parameter or a key header.
_KEY_SHAPES = re.compile(
    r"(?i:\b(bearer|basic)[ \t]+)[A-Za-z0-9._~+/=-]{4,}"
    r"|\bsk-[A-Za-z0-9_-]{6,}"
    r"|\bAIza[A-Za-z0-9_-]{10,}"
    r"|(?i:([?&](?:api[_-]?key|key|token|access_token)=|\bx-api-key:[ \t]*|\bapi-key:[ \t]*))[^\s&\"',]+"
)


def _masked(match: re.Match[str]) -> str:
    prefix = match.group(1) or match.group(2)
    if prefix is None:
        return match.group()[:3] + "***"
    return f"{prefix} ***" if match.group(1) else f"{prefix}***"


# The longest text `scrub_upstream` shows: error texts and messages are far shorter, and the work
# stays bounded whatever an upstream sends.
SCRUB_LIMIT = 20_000


def scrub_upstream(text: str, secrets: Iterable[str] = (), limit: int = SCRUB_LIMIT) -> str:
    """`text` as it may be shown: the known `secrets` replaced and key shapes masked, then cut.

    For text that came from an upstream (error bodies, stream error lines, transport errors) on
    its way to a status line, a message or a log line. Unlike `mask_key_shapes` it masks only
    shapes that are keys in any sentence, so "the key point" or "token limit" stay as written.
    """
    secrets = tuple(secrets)
    # a secret that begins before the cut must still be whole when it is replaced
    text = text[: limit + _SHAPE_MARGIN + max((len(secret) for secret in secrets), default=0)]
    text = _KEY_SHAPES.sub(_masked, redact(text, secrets))
    return redact(text, (), limit)
