"""Message text: the text of a message's content, and the blocks a model should not read back.

Open WebUI stores a reply's thinking, tool calls and code runs inside the message text as
`<details type="…">` blocks, and models that think in raw tags (`<think>…</think>`) keep them
there too. Sending those blocks back to a model wastes its context and makes it copy the form, so
every plugin that reads history strips them here, with one scanner.

The scanner is linear in the text: one pass over a token pattern whose alternatives are bounded by
the next `<` or line end, never a lazy `.*?` between an opening and a closing tag (that form is
quadratic on text full of unclosed tags, and history is text any user can write).
"""

import re
from collections.abc import Collection
from typing import Any, Literal

# The raw reasoning tags Open WebUI 0.12.4 turns into a collapsible "Thought" block
# (DEFAULT_REASONING_TAGS in open_webui/utils/middleware.py). Matched case-insensitively, which also
# covers its `<Thought>` entry.
REASONING_TAGS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<reason>", "</reason>"),
    ("<reasoning>", "</reasoning>"),
    ("<thought>", "</thought>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("◁think▷", "◁/think▷"),
)

# Content part types that carry text: Chat Completions ("text") and the Responses form that
# Open WebUI 0.12.4 also stores for some connections ("input_text", "output_text").
TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})

_TAG_WORDS = "think|thinking|reason|reasoning|thought"
_BLOCK_TOKENS = re.compile(
    r"(?P<fence>^[ ]{0,3}(?:`{3,}|~{3,}))"
    r"|(?P<details><details\b(?P<attrs>[^<>]*)>)"
    rf"|(?P<open><(?:{_TAG_WORDS})(?:\s[^<>]*)?>|<\|begin_of_thought\|>|◁think▷)"
    rf"|(?P<close></details\s*>|</(?:{_TAG_WORDS})\s*>|<\|end_of_thought\|>|◁/think▷)",
    re.IGNORECASE | re.MULTILINE,
)
_DETAILS_TYPE = re.compile(r"""\btype\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)

DetailsTypes = Collection[str] | Literal["all"]


def content_text(content: Any, separator: str = "\n") -> str:
    """The text of a message's `content`: a string as it is, the text parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for item in content:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict) and item.get("type") in TEXT_PART_TYPES:
                value = item.get("text")
                if isinstance(value, str):
                    texts.append(value)
        return separator.join(texts)
    return ""


def _details_type(attrs: str) -> str:
    match = _DETAILS_TYPE.search(attrs)
    if not match:
        return ""
    return next(group for group in match.groups() if group is not None)


def strip_blocks(text: str, *, details: DetailsTypes = ("reasoning",), reasoning_tags: bool = True) -> str:
    """`text` without hidden blocks, outside code fences; nested and unclosed blocks included.

    `details`: the `<details type=…>` types to drop ("all": every details block, whatever its type).
    `reasoning_tags`: also drop raw reasoning blocks (`<think>…</think>` and the other tags above).
    Inside a dropped block every opening and closing tag counts for nesting; an unclosed block runs
    to the end of the text. A stray closing tag of a dropped kind is dropped on its own.
    """
    kept: list[str] = []
    pos = depth = 0
    fence: str | None = None
    for token in _BLOCK_TOKENS.finditer(text):
        kind = token.lastgroup if token.lastgroup != "attrs" else "details"
        if depth:
            depth += 1 if kind in ("details", "open") else -1 if kind == "close" else 0
            if not depth:
                pos = token.end()
            continue
        if kind == "fence":
            marker = token.group().strip()
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is not None or not _hidden(token, kind, details, reasoning_tags):
            continue
        kept.append(text[pos : token.start()])
        pos = token.end()
        depth = 0 if kind == "close" else 1
    if not depth:
        kept.append(text[pos:])
    return "".join(kept)


def _hidden(token: re.Match[str], kind: str | None, details: DetailsTypes, reasoning_tags: bool) -> bool:
    if kind == "details":
        return details == "all" or _details_type(token.group("attrs")) in details
    if kind == "open":
        return reasoning_tags
    # a closing tag: `</details>` belongs to a dropped kind only when every details block is dropped
    if token.group().lower().startswith("</details"):
        return details == "all"
    return reasoning_tags


def strip_reasoning(text: str) -> str:
    """`text` without its thinking: Open WebUI's reasoning blocks and raw reasoning tags."""
    return strip_blocks(text, details=("reasoning",), reasoning_tags=True).strip()
