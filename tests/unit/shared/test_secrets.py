import pytest

from shared.secrets import mask_key_shapes, redact, scrub_upstream


def test_every_secret_is_replaced():
    text = "key AIzaKEY123 and sk-OTHER456 in AIzaKEY123"
    assert redact(text, ("AIzaKEY123", "sk-OTHER456")) == "key [redacted] and [redacted] in [redacted]"


def test_replaced_before_shortened_so_no_half_key_survives():
    text = "x" * 20 + "SECRETKEY"
    out = redact(text, ("SECRETKEY",), limit=25)
    assert out == "x" * 20 + "[red…"
    assert "SECRET" not in out and len(out) == 25


def test_empty_and_tiny_secrets_are_ignored():
    assert redact("a b c", ("", "a", "b c")) == "a b c"
    assert redact("long text", ()) == "long text"
    assert redact("long text", (), limit=5) == "long…"


def test_key_shapes_are_masked_when_the_key_is_not_known():
    text = mask_key_shapes("GET https://h/v1?key=abc123&x=1 Authorization: Bearer tok.en api_key='zz' sk-abcdefgh")
    for secret in ("abc123", "tok.en", "zz'", "sk-abcdefgh"):
        assert secret not in text
    assert len(mask_key_shapes("x" * 1000)) == 300


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("proxy refused key Bearer sk-live-0123456789", "proxy refused key Bearer ***"),
        ("GET https://h/v1/models?key=AIzaSyA0123456789abc&alt=sse", "GET https://h/v1/models?key=***&alt=sse"),
        ("x-api-key: abc123def failed", "x-api-key: *** failed"),
        ("the key sk-proj-abcdefgh and AIzaSyB0123456789xyz", "the key sk-*** and AIz***"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        # sentences that only mention keys and tokens stay as written
        ("token limit reached; the key point is the API key", "token limit reached; the key point is the API key"),
    ],
)
def test_scrub_masks_key_shapes_only(text, shown):
    assert scrub_upstream(text) == shown


def test_scrub_replaces_known_secrets_then_cuts():
    assert scrub_upstream("upstream said PLAINSECRET is wrong", ("PLAINSECRET",)) == "upstream said [redacted] is wrong"
    assert scrub_upstream("a" * 50 + " Bearer sk-live-0123456789", limit=60) == "a" * 50 + " Bearer *…"


def test_mask_key_shapes_reads_a_bounded_prefix():
    long = "x " * 500_000 + "sk-abcdefgh"
    assert mask_key_shapes(long) == ("x " * 150)[:300]


def test_scrub_upstream_reads_a_bounded_prefix_and_never_leaves_half_a_secret():
    secret = "k" * 200
    text = "x" * 990 + secret + "y" * 1_000_000
    shown = scrub_upstream(text, (secret,), limit=1000)
    assert shown == "x" * 990 + "[redacted]"[:9] + "…" and "kk" not in shown
