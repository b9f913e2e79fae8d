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


def mask_key_shapes(text: str, limit: int = 300) -> str:
    """`text` with anything shaped like a key masked, cut to `limit` characters.

    For errors that may echo a key the plugin was never given (an embedding or upstream server's
    key, in a URL or an Authorization header): `redact` can only replace the secrets it is told.
    """
    text = re.sub(r"(?i)\b(bearer)\s+\S+", r"\1 ***", text)
    text = re.sub(r"(?i)\b(api[_-]?key|key|token|secret|password)(\W{1,3})[^\s&\"',]+", r"\1\2***", text)
    return re.sub(r"\bsk-[A-Za-z0-9_-]{6,}", "sk-***", text)[:limit]
