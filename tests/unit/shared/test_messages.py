import types

from shared.messages import for_reader, is_admin
from tests.helpers import exception_names


def test_admins_get_the_detail_users_get_the_sentence():
    assert (
        for_reader("The reply was cut off.", "ClientPayloadError at chunk 3", admin=False) == "The reply was cut off."
    )
    assert (
        for_reader("The reply was cut off.", "ClientPayloadError\n at chunk 3", admin=True)
        == "The reply was cut off. (For administrators: ClientPayloadError at chunk 3)"
    )
    assert for_reader("Plain.", "", admin=True) == "Plain."


def test_admin_from_either_user_form():
    assert is_admin({"role": "admin"}) and not is_admin({"role": "user"}) and not is_admin(None)
    assert is_admin(types.SimpleNamespace(role="admin"))


def test_the_scanner_finds_class_names_and_leaves_sentences():
    assert exception_names("The connection to Gemini failed (ClientPayloadError).") == ["ClientPayloadError"]
    assert exception_names("KeyError: 'x' and TimeoutError") == ["KeyError", "TimeoutError"]
    assert exception_names("httpx.ReadTimeout while reading") == ["ReadTimeout"]
    assert exception_names("The reply was cut off: the connection to Gemini dropped.") == []
    assert exception_names("Gemini had a server error (503 UNAVAILABLE). Try again shortly.") == []
