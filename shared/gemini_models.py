"""What each Gemini model accepts, as data: its capabilities, its thinking setting, and how model
ids are picked.

`CAPABILITY_TABLE` is the one place that says what a model family can do (think, make images or
videos, call tools, ground with Google Search or Maps, run code, read URLs, watch videos); the
model list's own `thinking` flag refines it. A setting the model cannot use is left out of the
request (with a status line), never sent for Gemini to refuse.

Gemini configures thinking in one of two forms: Gemini 2.5 takes a token budget
(`thinking_budget`), Gemini 3 and later take a level (`thinking_level`). Pro models have a
narrower range of both. Google also serves version-less aliases (`gemini-flash-latest`,
`gemini-pro-latest`) that move from one generation to the next; they get a budget, which
2.5 and 3 both accept, and only when the model list says the model thinks.
"""

import re
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any, Literal

ThinkingForm = Literal["level", "budget", "alias"]

# The first version of each thinking form, newest first; a version below the last takes none.
THINKING_FORM_SINCE: tuple[tuple[tuple[int, int], ThinkingForm], ...] = (
    ((3, 0), "level"),
    ((2, 5), "budget"),
)
# The first version that takes Google Search and function declarations in one request (with
# tool_config.include_server_side_tool_invocations, so the search steps come back in the reply);
# earlier models take one or the other, and aliases are not assumed to.
SEARCH_WITH_FUNCTIONS_SINCE = (3, 0)
# Forms whose function calls carry thought signatures that Gemini validates on the next turn
# (an alias may stand for a Gemini 3 model).
SIGNED_FORMS = frozenset({"level", "alias"})

LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH")


@dataclass(frozen=True)
class Tier:
    """The thinking range of a model family: the level sent for each level asked for, and the
    smallest budget above "the model decides" (-1); 0 means thinking can be switched off."""

    levels: dict[str, str]
    min_budget: int = 0


DEFAULT_TIER = Tier({level: level for level in LEVELS})
# Tiers by a word of the model id (gemini-2.5-pro, gemini-3-pro-preview, gemini-pro-latest).
TIERS: dict[str, Tier] = {
    # Pro models think at LOW or HIGH only, and cannot switch thinking off (128 is their least).
    "pro": Tier({"MINIMAL": "LOW", "LOW": "LOW", "MEDIUM": "HIGH", "HIGH": "HIGH"}, min_budget=128),
}

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# A chat's OpenAI reasoning_effort in each form.
EFFORT_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
EFFORT_LEVEL = {
    "none": "MINIMAL",  # Gemini 3 cannot switch thinking off; MINIMAL is the least there is
    "minimal": "MINIMAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
    "xhigh": "HIGH",
}

_VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?")
MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?", re.ASCII)  # gemini-2.5-flash, tunedModels/x-1
# Image models are listed (this pipe shows the images they make); speech, live and embedding are not.
DEFAULT_DENYLIST = "*-tts*, *-live*, *native-audio*, *embedding*"
# Entries pipes() lists when there is no real model to offer.
PLACEHOLDER_IDS = frozenset({"setup", "error", "none"})


@dataclass(frozen=True)
class Capabilities:
    """What a model can do. `thinking` is whether it takes a thinking configuration at all."""

    thinking: bool = True
    images: bool = False  # makes images (responseModalities IMAGE)
    image_sizes: bool = False  # takes imageConfig.imageSize (1K, 2K, 4K)
    videos: bool = False  # makes videos (Veo, a long-running operation)
    tools: bool = True  # function declarations (the chat's tools)
    search: bool = True  # Google Search grounding
    maps: bool = True  # Google Maps grounding
    code: bool = True  # code execution
    urls: bool = True  # URL context
    video_input: bool = True  # video parts (YouTube links)
    label: str = ""  # added to the listed name ("makes images")


_NOTHING_BUT_TEXT = Capabilities(
    thinking=False, tools=False, search=False, maps=False, code=False, urls=False, video_input=False
)
# What each model family can do, first matching glob (on the lower-case id) wins. Kept current here,
# from Google's model pages (ai.google.dev/gemini-api/docs/models): image models take neither tools
# nor a thinking configuration (Gemini 3 Pro Image thinks on its own and takes Google Search);
# Gemini 1.x and Gemma take no built-in tools.
CAPABILITY_TABLE: tuple[tuple[str, Capabilities], ...] = (
    ("gemini-3*-image*", replace(_NOTHING_BUT_TEXT, images=True, image_sizes=True, search=True, label="makes images")),
    ("gemini-*-image*", replace(_NOTHING_BUT_TEXT, images=True, label="makes images")),
    ("veo-*", replace(_NOTHING_BUT_TEXT, videos=True, label="makes videos")),
    ("*-tts*", _NOTHING_BUT_TEXT),
    ("*embedding*", _NOTHING_BUT_TEXT),
    ("gemma-*", replace(_NOTHING_BUT_TEXT, tools=False)),
    ("gemini-1.*", Capabilities(thinking=False, maps=False, code=False, urls=False)),
    ("gemini-2.0-flash-lite*", Capabilities(thinking=False, maps=False, code=False, urls=False)),
    ("*", Capabilities()),
)


def model_capabilities(model_id: str, thinking: bool | None = None) -> Capabilities:
    """What a model can do: its row of CAPABILITY_TABLE, refined by the model list (`thinking` is
    what the API's model info says; False there means no thinking configuration is sent)."""
    mid = model_id.lower()
    caps = next(c for glob, c in CAPABILITY_TABLE if fnmatchcase(mid, glob))
    return replace(caps, thinking=False) if thinking is False and caps.thinking else caps


def listed_name(model_id: str, name: str) -> str:
    """The name a model is listed under: the API's display name, plus what it makes when it is not
    a chat model ("Nano Banana (gemini-2.5-flash-image, makes images)")."""
    label = model_capabilities(model_id).label
    if not label:
        return name
    plain = model_id.lower() in name.lower() or label.split()[-1].rstrip("s") in name.lower()
    return f"{name} ({label})" if plain else f"{name} ({model_id}, {label})"


def sub_model_id(model: str) -> str:
    # Open WebUI names sub-models "<function id>.<entry id>" whatever id the admin chose;
    # Gemini ids contain dots themselves, so split once.
    return model.split(".", 1)[1] if "." in model else model


def parse_globs(text: str) -> list[str]:
    return [g.strip().lower() for g in text.split(",") if g.strip()]


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def model_allowed(model_id: str, allow: list[str], deny: list[str]) -> bool:
    mid = model_id.lower()
    if allow and not any(fnmatchcase(mid, g) for g in allow):
        return False
    return not any(fnmatchcase(mid, g) for g in deny)


def model_version(model_id: str) -> tuple[int, int] | None:
    """(major, minor) of a versioned Gemini id (gemini-2.5-flash -> (2, 5)); None for aliases."""
    match = _VERSION.search(model_id.lower())
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def model_tier(model_id: str) -> Tier:
    words = re.split(r"[-_./]", model_id.lower())
    return next((tier for word, tier in TIERS.items() if word in words), DEFAULT_TIER)


def thinking_family(model_id: str, thinking: bool | None) -> ThinkingForm | None:
    """How a model's thinking is configured (None: it is not). `thinking` is what the model list
    says about the model, which decides for version-less aliases."""
    if not model_capabilities(model_id, thinking).thinking:
        return None
    version = model_version(model_id)
    if version is None:
        return "alias" if thinking else None
    return next((form for since, form in THINKING_FORM_SINCE if version >= since), None)


def combines_search_and_functions(model_id: str) -> bool:
    """Whether the model takes Google Search grounding and the chat's tools in one request."""
    version = model_version(model_id)
    return version is not None and version >= SEARCH_WITH_FUNCTIONS_SINCE


def thinking_level(model_id: str, level: str) -> str:
    level = level.upper()
    return model_tier(model_id).levels.get(level, level)


def thinking_budget(model_id: str, budget: int) -> int:
    return max(budget, model_tier(model_id).min_budget) if budget >= 0 else budget


def thinking_config(
    model_id: str,
    thinking: bool | None,
    *,
    include_thoughts: bool,
    budget: int,
    level: str,
    effort: str | None,
    task: bool,
) -> dict[str, Any] | None:
    """The ThinkingConfig fields (as a dict) for one call; None when the model takes none."""
    family = thinking_family(model_id, thinking)
    if family is None:
        return None
    config: dict[str, Any] = {}
    if task:
        # Title/tag/follow-up calls: as little thinking as the model allows.
        if family == "level":
            config["thinking_level"] = thinking_level(model_id, "MINIMAL")
        else:
            config["thinking_budget"] = thinking_budget(model_id, 0)
        return config
    if include_thoughts:
        config["include_thoughts"] = True
    if family == "level":
        chosen = EFFORT_LEVEL[effort] if effort else (level if level != "default" else None)
        if chosen:
            config["thinking_level"] = thinking_level(model_id, chosen)
    else:
        chosen_budget = EFFORT_BUDGET[effort] if effort else budget
        if family == "alias" and chosen_budget == -1 and level != "default":
            # An alias may stand for a Gemini 3 model: THINKING_LEVEL counts, as its budget.
            chosen_budget = EFFORT_BUDGET[level]
        if chosen_budget != -1:
            config["thinking_budget"] = thinking_budget(model_id, chosen_budget)
    return config or None
