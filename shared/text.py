"""Message text: the text of a message's content, and the blocks a model should not read back.

Open WebUI stores a reply's thinking, tool calls and code runs inside the message text as
`<details type="…">` blocks, and models that think in raw tags (`<think>…</think>`) keep them
there too. Sending those blocks back to a model wastes its context and makes it copy the form, so
every plugin that reads history strips them here, with one scanner.

Every function here is linear in the text, because history and answers are text any user or
upstream can write, and they run on the server's event loop. The scanners make one pass over a
token pattern whose alternatives are bounded by the next `<` or line end, never a lazy `.*?`
between an opening and a closing tag (quadratic on text full of unclosed tags), and never a
pattern that starts with a repeated class that may fail later (`[ \t]*…`, quadratic on long runs
of spaces). Per character they cost one attempt of the token pattern, per token a few Python
steps. tests/unit/test_patterns_linear.py holds every built plugin's patterns to that.
"""

import re
from collections.abc import Collection
from itertools import islice
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


def _any_case(word: str) -> str:
    """`word` as a pattern matching it in any letter case, without re.IGNORECASE (which makes every
    attempt of the scanner several times slower)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# think, thinking, thought, reason, reasoning: as a tree, so a near miss fails at its first wrong letter
_TAG_WORDS = (
    f"{_any_case('th')}(?:{_any_case('ink')}(?:{_any_case('ing')})?|{_any_case('ought')})"
    f"|{_any_case('reason')}(?:{_any_case('ing')})?"
)
_DETAILS_WORD = _any_case("details")
# The tags, each alternative bounded by the next `<` or `>`; a `<` not followed by a tag's first
# letter fails at once. Group numbers tell the token's kind.
_TAG_PATTERN = (
    rf"<(?=[dDtTrR/|])(?:({_DETAILS_WORD}\b([^<>]*)>)"  # 1: <details …>, 2: its attributes
    rf"|((?:{_TAG_WORDS})(?:\s[^<>]*)?>|{_any_case('|begin_of_thought|>')})"  # 3: an opening reasoning tag
    rf"|(/(?:{_DETAILS_WORD}|{_TAG_WORDS})\s*>|{_any_case('|end_of_thought|>')}))"  # 4: a closing tag
    rf"|({_any_case('◁think▷')})|({_any_case('◁/think▷')})"  # 5: opening, 6: closing
)
# A code fence (7) at a line start. Searched for only when the text has one: an alternative that
# starts with `^` is tried at every position, the tags alone only where a `<` or `◁` is.
_TAG_TOKENS = re.compile(_TAG_PATTERN)
_BLOCK_TOKENS = re.compile(_TAG_PATTERN + r"|^([ ]{0,3}(?:`{3,}|~{3,}))", re.MULTILINE)
_DETAILS, _OPEN, _CLOSE, _FENCE = "details", "open", "close", "fence"
_TOKEN_KIND = {1: _DETAILS, 2: _DETAILS, 3: _OPEN, 4: _CLOSE, 5: _OPEN, 6: _CLOSE, 7: _FENCE}
_DETAILS_TYPE = re.compile(r"""\btype\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)

DetailsTypes = Collection[str] | Literal["all"]

# The most tags (or backtick runs) one text is scanned for: real replies hold a few hundred at most,
# and each token costs a few Python steps. Past it, the rest of the text is kept as it is, so the
# work per message is bounded whatever a user or an upstream writes.
TOKEN_LIMIT = 20_000


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
    if "<" not in text and "◁" not in text:
        return text  # no tag at all: nothing to scan
    tokens = _BLOCK_TOKENS if "```" in text or "~~~" in text else _TAG_TOKENS
    all_details = details == "all"
    kept: list[str] = []
    keep = kept.append
    pos = depth = 0
    fence: str | None = None
    count = 0
    for count, token in enumerate(islice(tokens.finditer(text), TOKEN_LIMIT), 1):  # noqa: B007
        kind = _TOKEN_KIND[token.lastindex or 0]
        if depth:
            if kind is _CLOSE:
                depth -= 1
                if not depth:
                    pos = token.end()
            elif kind is not _FENCE:
                depth += 1
            continue
        if kind is _FENCE:
            fence = _fence_after(fence, token.group().strip())
            continue
        if fence is not None:
            continue
        if kind is _OPEN or (kind is _CLOSE and token.group()[2:3] not in "dD"):
            hidden = reasoning_tags
        elif kind is _CLOSE:  # `</details>`: of a dropped kind only when every details block is
            hidden = all_details
        else:
            hidden = all_details or _details_type(token.group(2)) in details
        if not hidden:
            continue
        start, end = token.span()
        if start != pos:
            keep(text[pos:start])
        pos = end
        depth = 0 if kind is _CLOSE else 1
    if not depth or (count == TOKEN_LIMIT and tokens.search(text, token.end())):
        keep(text[pos:])  # the end of the text, or what is past the limit: kept as it is
    return "".join(kept)


def _fence_after(fence: str | None, marker: str) -> str | None:
    """The open fence after a fence line `marker`: it opens one, or closes the open one."""
    if fence is None:
        return marker
    if marker[0] == fence[0] and len(marker) >= len(fence):
        return None
    return fence


def strip_reasoning(text: str) -> str:
    """`text` without its thinking: Open WebUI's reasoning blocks and raw reasoning tags."""
    return strip_blocks(text, details=("reasoning",), reasoning_tags=True).strip()


# --- code spans and citation marks -------------------------------------------------------------

# Code, as Open WebUI's renderer (marked, CommonMark rules) reads it: a fence at a line start (1),
# or a run of backticks (2) that opens an inline span closed by the next run of the same length.
_CODE_TOKENS = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})|(`+)", re.MULTILINE)
# Open WebUI 0.12.4's citation rule (frontend src/lib/utils/marked/citation-extension.ts): one or
# more adjacent [1], [1,2] or [1#id] groups, not followed by "(", "[" or ":" (then it is a link or
# a reference), with the spaces or tabs before them. Possessive, so "[1][2](url)" is kept whole.
# Linear: the spaces are matched only from the start of their run (the lookbehind turns every
# other start inside a long run away at once), and an id stops at the next "[".
_CITATION_MARKS = re.compile(r"(?<![ \t])[ \t]*(?:\[\d+(?:#[^,\[\]\s]+)?(?:,\s*\d+(?:#[^,\[\]\s]+)?)*\])++(?![(\[:])")


def _closes(text: str, fence: str, token: re.Match[str]) -> bool:
    """Whether the fence `token` (at a later line's start) closes the block `fence` opened: the same
    character, at least as long, and nothing after it on its line but more fence characters and
    spaces."""
    run = token.group(1)
    if run[0] != fence[0] or len(run) < len(fence):
        return False
    line_end = text.find("\n", token.end())
    rest = text[token.end() : line_end if line_end >= 0 else len(text)]
    return not rest.rstrip(" \t").strip("`~")


def _closers(tokens: list[re.Match[str]]) -> list[int]:
    """For each token, the index of the next backtick run of the same length (-1: none)."""
    later: dict[int, int] = {}
    closer = [-1] * len(tokens)
    for index in range(len(tokens) - 1, -1, -1):
        run = tokens[index].group(tokens[index].lastindex or 0)
        if run[0] == "`":
            closer[index] = later.get(len(run), -1)
            later[len(run)] = index
    return closer


def code_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every fenced block and inline code span in `text`, in order.

    Past TOKEN_LIMIT fences and backtick runs, the rest of the text is one span: kept as it is.
    """
    if "`" not in text and "~~~" not in text:
        return []
    tokens = list(islice(_CODE_TOKENS.finditer(text), TOKEN_LIMIT))
    closer = _closers(tokens)
    spans: list[tuple[int, int]] = []
    index, count = 0, len(tokens)
    while index < count:
        token = tokens[index]
        fence = token.group(1)
        if fence:  # a fence: the block runs to the next fence that closes it, or to the end
            index += 1
            while index < count and not (tokens[index].group(1) and _closes(text, fence, tokens[index])):
                index += 1
            if index < count:
                line_end = text.find("\n", tokens[index].end())
                spans.append((token.start(), line_end if line_end >= 0 else len(text)))
                index += 1
            else:
                spans.append((token.start(), len(text)))
            continue
        if closer[index] < 0:  # backticks that close nothing are text
            index += 1
            continue
        end = tokens[closer[index]].end()
        spans.append((token.start(), end))
        index = closer[index] + 1
    if count == TOKEN_LIMIT and (not spans or spans[-1][1] < len(text)):
        rest = max(tokens[-1].start(), spans[-1][1] if spans else 0)
        spans.append((rest, len(text)))
    return spans


def _without_marks(text: str) -> str:
    return _CITATION_MARKS.sub("", text) if "[" in text else text


def strip_citation_marks(text: str) -> str:
    """`text` without Open WebUI's citation marks ([1], [1][2], [1,2], [1#id]) and the spaces or tabs
    before them; code (fenced blocks and inline spans) is kept as it is."""
    if "[" not in text:
        return text
    kept: list[str] = []
    pos = 0
    for start, end in code_spans(text):
        kept += [_without_marks(text[pos:start]), text[start:end]]
        pos = end
    kept.append(_without_marks(text[pos:]))
    return "".join(kept)


_EMPTY_LINES = re.compile(r"\n{3,}")


def tidy_lines(text: str) -> str:
    """`text` without spaces or tabs at line ends, at most one empty line in a row, stripped.

    Line by line, not `re.sub(r"[ \\t]+$", …)`: that pattern retries at every space of a long run
    of spaces that does not end a line.
    """
    if " \n" in text or "\t\n" in text:
        text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    return _EMPTY_LINES.sub("\n\n", text).strip()


# --- tag blocks ----------------------------------------------------------------------------------


def tag_blocks(text: str, tag: str) -> list[tuple[str, str]]:
    """(attributes, inner text) of every `<tag …>…</tag>` block in `text`, in order, any case.

    What `re.finditer(r"<tag\\b([^>]*)>(.*?)</tag>", text, re.S | re.I)` finds, in linear time: that
    lazy pattern scans to the end of the text again for every opening tag that is never closed. A
    block ends at the first closing tag after its opening one; an opening tag without one ends
    the search (there is none after it for any later opening tag either). Attributes stop at the
    next `<` (an opening tag never holds one), so an unfinished opening tag is not read to the end.
    """
    opening = re.compile(rf"<{re.escape(tag)}\b([^<>]*)>", re.IGNORECASE)  # attributes end at a "<"
    closing = re.compile(rf"</{re.escape(tag)}>", re.IGNORECASE)
    blocks: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = opening.search(text, pos)
        if start is None:
            return blocks
        end = closing.search(text, start.end())
        if end is None:
            return blocks
        blocks.append((start.group(1), text[start.end() : end.start()]))
        pos = end.end()
