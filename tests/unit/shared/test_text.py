import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.text import REASONING_TAGS, content_text, strip_blocks, strip_reasoning


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
