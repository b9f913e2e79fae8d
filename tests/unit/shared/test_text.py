import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.text import (
    REASONING_TAGS,
    code_spans,
    content_text,
    strip_blocks,
    strip_citation_marks,
    strip_reasoning,
    tag_blocks,
    tidy_lines,
)


def test_content_text_of_every_form():
    assert content_text("plain") == "plain"
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "data:,"}},
        "b",
        {"type": "input_text", "text": "c"},
        {"type": "output_text", "text": "d"},
        {"type": "text", "text": None},
    ]
    assert content_text(parts) == "a\nb\nc\nd"
    assert content_text(parts, "") == "abcd"
    assert content_text(None) == ""
    assert content_text(42) == ""


@pytest.mark.parametrize(("open_tag", "close_tag"), [*REASONING_TAGS, ("<Thought>", "</Thought>")])
def test_every_reasoning_tag_open_webui_renders_is_stripped(open_tag, close_tag):
    assert strip_reasoning(f"{open_tag}hidden\nthoughts{close_tag}\n\nAnswer.") == "Answer."


def test_open_webui_reasoning_details_block_is_stripped_other_details_kept():
    text = (
        '<details type="reasoning" done="true" duration="3">\n<summary>Thought for 3 seconds</summary>\n'
        "&gt; pondering\n</details>\n"
        '<details type="tool_calls" done="true"><summary>Tool</summary>result</details>\nAnswer.'
    )
    out = strip_reasoning(text)
    assert "pondering" not in out
    assert '<details type="tool_calls" done="true"><summary>Tool</summary>result</details>' in out
    assert out.endswith("Answer.")


def test_nested_unclosed_and_stray_blocks():
    assert strip_reasoning("<think>a<think>b</think>c</think>kept") == "kept"
    assert strip_reasoning("before<think>never closed") == "before"
    assert strip_reasoning("a</think>b") == "ab"
    assert strip_reasoning("x<think attr='1'>y</think>z") == "xz"


def test_code_fences_are_left_alone():
    text = "```\n<think>shown as code</think>\n```\n<think>hidden</think>after"
    assert strip_reasoning(text) == "```\n<think>shown as code</think>\n```\nafter"


def test_all_details_and_named_types():
    text = '<details type="mixture_of_agents"><summary>L1</summary>x</details>\nA<details>y</details>B'
    assert strip_blocks(text, details=("mixture_of_agents",), reasoning_tags=False) == "\nA<details>y</details>B"
    assert strip_blocks(text, details="all") == "\nAB"
    assert strip_blocks("<think>t</think>ok", details=(), reasoning_tags=False) == "<think>t</think>ok"
    assert strip_blocks("<details type='reasoning'>t</details>ok") == "ok"
    assert strip_blocks("<details type=reasoning>t</details>ok") == "ok"


@given(st.lists(st.sampled_from(["<think>", "</think>", "<details>", "</details>", "```\n", "a", " ", "\n"])))
def test_never_raises_and_never_grows(pieces):
    text = "".join(pieces)
    out = strip_blocks(text, details="all")
    assert len(out) <= len(text)


# --- code spans, citation marks, line ends ------------------------------------------------------


def test_code_spans_follow_commonmark_fences_and_backtick_runs():
    text = "a `x` b ``y`z`` c\n```py\n[1]\n```\nd ``` e"
    spans = [text[s:e] for s, e in code_spans(text)]
    assert spans == ["`x`", "``y`z``", "```py\n[1]\n```"]
    assert code_spans("unclosed ``run and `one") == []
    assert [t[s:e] for t in ["~~~\nopen to the end"] for s, e in code_spans(t)] == ["~~~\nopen to the end"]


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("Paris is the capital [1]. It is big [2][3].", "Paris is the capital. It is big."),
        ("Both [1,2] and [1#a1b2] go\t[4]", "Both and go"),
        (
            "A link [1][2](https://x) and a ref [1]: and [1][x] stay",
            "A link [1][2](https://x) and a ref [1]: and [1][x] stay",
        ),
        ("Code `a[1]` and\n```\nb [2]\n```\nkept [3]", "Code `a[1]` and\n```\nb [2]\n```\nkept"),
        ("no marks [a] [ 1 ] []", "no marks [a] [ 1 ] []"),
    ],
)
def test_citation_marks_are_removed_outside_code(text, stripped):
    assert strip_citation_marks(text) == stripped


def test_tidy_lines():
    assert tidy_lines("  a  \t\n\n\n\nb \n \n\n c \n") == "a\n\nb\n\n c"
    assert tidy_lines("x" + " " * 10_000 + "y") == "x" + " " * 10_000 + "y"


# A copy of the scanner this module had before it was tuned for speed (one token pattern with
# re.IGNORECASE, the fence alternative always included): the new one must read every text alike.
_OLD_TOKENS = re.compile(
    r"(?P<fence>^[ ]{0,3}(?:`{3,}|~{3,}))"
    r"|(?P<details><details\b(?P<attrs>[^<>]*)>)"
    r"|(?P<open><(?:think|thinking|reason|reasoning|thought)(?:\s[^<>]*)?>|<\|begin_of_thought\|>|◁think▷)"
    r"|(?P<close></details\s*>|</(?:think|thinking|reason|reasoning|thought)\s*>|<\|end_of_thought\|>|◁/think▷)",
    re.IGNORECASE | re.MULTILINE,
)
_OLD_TYPE = re.compile(r"""\btype\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.IGNORECASE)


def _old_strip_blocks(text, details, reasoning_tags):
    kept, pos, depth, fence = [], 0, 0, None
    for token in _OLD_TOKENS.finditer(text):
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
        if fence is not None:
            continue
        if kind == "details":
            found = _OLD_TYPE.search(token.group("attrs"))
            kind_type = next(g for g in found.groups() if g is not None) if found else ""
            hidden = details == "all" or kind_type in details
        elif kind == "open":
            hidden = reasoning_tags
        else:
            hidden = details == "all" if token.group().lower().startswith("</details") else reasoning_tags
        if not hidden:
            continue
        kept.append(text[pos : token.start()])
        pos = token.end()
        depth = 0 if kind == "close" else 1
    if not depth:
        kept.append(text[pos:])
    return "".join(kept)


PIECES = [
    "<think>", "</think>", "<THINK>", "<details>", "</details>", '<details type="reasoning">', "</Details >",
    "<details type='mixture_of_agents' x>", "```\n", "````\n", "~~~\n", "  ```\n", "a", " ", "\n", "<", ">",
    "<thinking a=1>", "<|begin_of_thought|>", "<|END_OF_THOUGHT|>", "◁think▷", "◁/think▷", "<thinkx>", "</reason>",
]  # fmt: skip


@given(
    st.lists(st.sampled_from(PIECES), max_size=16),
    st.sampled_from([("all", True), (("reasoning",), True), (("mixture_of_agents",), False), ((), True)]),
)
def test_the_scanner_reads_every_text_as_before(pieces, options):
    text = "".join(pieces)
    details, reasoning_tags = options
    assert strip_blocks(text, details=details, reasoning_tags=reasoning_tags) == _old_strip_blocks(
        text, details, reasoning_tags
    )


def test_the_work_per_text_is_bounded_past_the_token_limit():
    from shared import text as module

    flood = "</think>" * (module.TOKEN_LIMIT + 5)
    after = "<think>kept past the limit</think> [1] `[2]`"
    out = strip_blocks(flood + after)
    assert out == "</think>" * 5 + after  # the first TOKEN_LIMIT stray tags dropped, the rest as it was
    ticks = "`a` " * module.TOKEN_LIMIT + "x [1] `[2]`"
    assert strip_citation_marks(ticks) == ticks


def test_tag_blocks_reads_like_the_lazy_pattern_in_linear_time():
    text = '<source id="1" name="a">one</source> x <SOURCE id="2">t<source>wo</Source><source id="3">open'
    lazy = re.compile(r"<source\b([^>]*)>(.*?)</source>", re.S | re.I)
    assert tag_blocks(text, "source") == [m.groups() for m in lazy.finditer(text)]
    assert tag_blocks(text, "source") == [(' id="1" name="a"', "one"), (' id="2"', "t<source>wo")]
    assert tag_blocks('<source id="' * 10_000, "source") == []  # unclosed: no block, and no rescans
