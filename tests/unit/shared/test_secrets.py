from shared.secrets import mask_key_shapes, redact


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
