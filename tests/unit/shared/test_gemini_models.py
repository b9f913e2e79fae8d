"""shared/gemini_models.py: the capability table and what it decides (thinking, the listed name)."""

import pytest

from shared.gemini import RequestOptions, build_request
from shared.gemini_media import MediaOptions
from shared.gemini_models import (
    CAPABILITY_TABLE,
    DEFAULT_DENYLIST,
    listed_name,
    model_allowed,
    model_capabilities,
    parse_globs,
    thinking_family,
)


@pytest.mark.parametrize(
    ("model", "images", "thinking", "tools", "search"),
    [
        ("gemini-2.5-flash", False, True, True, True),
        ("gemini-3-pro-preview", False, True, True, True),
        ("gemini-2.5-flash-image", True, False, False, False),
        ("gemini-3-pro-image-preview", True, False, False, True),
        ("veo-3.0-generate-001", False, False, False, False),
        ("gemma-3-27b-it", False, False, False, False),
        ("tunedModels/my-model", False, True, True, True),  # unknown: nothing is assumed away
    ],
)
def test_the_table_says_what_each_family_can_do(model, images, thinking, tools, search):
    caps = model_capabilities(model)
    assert (caps.images, caps.thinking, caps.tools, caps.search) == (images, thinking, tools, search)


def test_the_table_ends_with_a_row_for_every_model():
    assert CAPABILITY_TABLE[-1][0] == "*"


def test_the_model_list_refines_the_table():
    assert model_capabilities("gemini-2.5-flash", thinking=False).thinking is False
    assert model_capabilities("gemini-2.5-flash-image", thinking=True).thinking is False  # the table wins
    assert thinking_family("gemini-2.5-flash-image", None) is None
    assert thinking_family("gemini-2.5-flash", False) is None
    assert thinking_family("gemini-2.5-flash", None) == "budget"


def test_image_models_are_listed_by_default_with_a_clear_name():
    deny = parse_globs(DEFAULT_DENYLIST)
    assert model_allowed("gemini-2.5-flash-image", parse_globs("gemini-*"), deny)
    assert not model_allowed("gemini-2.5-flash-preview-tts", parse_globs("gemini-*"), deny)
    assert listed_name("gemini-2.5-flash-image", "Nano Banana") == "Nano Banana (gemini-2.5-flash-image, makes images)"
    assert listed_name("gemini-3-pro-image-preview", "Gemini 3 Pro Image") == "Gemini 3 Pro Image (makes images)"
    assert listed_name("gemini-2.5-flash", "Gemini 2.5 Flash") == "Gemini 2.5 Flash"


def test_an_image_model_request_has_no_thinking_and_asks_for_images():
    body = {"model": "gemini-2.5-flash-image", "messages": [{"role": "user", "content": "a cat"}]}
    options = RequestOptions(include_thoughts=True, thinking_budget=1024, media=MediaOptions(aspect_ratio="1:1"))
    request = build_request(body, model_id="gemini-2.5-flash-image", thinking=None, options=options, task=False)
    assert "thinking_config" not in request.config
    assert request.config["response_modalities"] == ["TEXT", "IMAGE"]
    assert request.config["image_config"] == {"aspect_ratio": "1:1"}
    task = build_request(body, model_id="gemini-2.5-flash-image", thinking=None, options=options, task=True)
    assert "response_modalities" not in task.config  # titles and tags are text
