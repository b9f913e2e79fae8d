"""Keeping secrets (API keys) out of replies, events, exceptions and log lines."""

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
