"""Messages for the person who reads them.

A user gets a plain sentence they can act on: no exception class names, no tracebacks, no
setting only an administrator can change. The detail an administrator needs (which valve, what
the upstream said, the exception) goes to the server log, and into the message too when the reader
is an administrator: they are the one person who can act on it.
"""

from typing import Any


def is_admin(user: Any) -> bool:
    """Whether Open WebUI's `__user__` (a dict) or user record (an object) is an administrator."""
    role = user.get("role") if isinstance(user, dict) else getattr(user, "role", None)
    return role == "admin"


def for_reader(sentence: str, detail: str = "", *, admin: bool) -> str:
    """`sentence`, with the administrator's detail added when the reader is an administrator."""
    sentence = sentence.strip()
    detail = " ".join(detail.split())
    if not admin or not detail:
        return sentence
    return f"{sentence} (For administrators: {detail})"
