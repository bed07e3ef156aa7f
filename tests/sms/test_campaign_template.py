"""The campaign template renderer: known fields only, values cleaned and bounded."""

from __future__ import annotations

import pytest

from callcenter.errors import ValidationError
from callcenter.sms.campaign_template import MAX_VALUE, clean_value, parse_template, split_name


def test_renders_contact_client_and_custom_fields() -> None:
    t = parse_template("Hello {contact.first_name}! {client.name}: {custom.segment} {{ok}}",
                       ["segment"])
    assert t.fields == ["contact.first_name", "client.name", "custom.segment"]
    text = t.render({"contact.first_name": "Ivan", "client.name": "ООО «Ромашка»",
                     "custom.segment": "vip"})
    assert text == "Hello Ivan! ООО «Ромашка»: vip {ok}"


def test_fallback_used_when_value_is_empty() -> None:
    t = parse_template("Hi {contact.first_name|there}, {custom.segment}.", ["segment"])
    assert t.render({"contact.first_name": "  "}) == "Hi there, ."


@pytest.mark.parametrize("source, fragment", [
    ("{contact.__class__}", "unknown field {contact.__class__}"),
    ("{contact.first_name.__globals__}", "unknown field"),
    ("{client.name[0]}", "unknown field"),
    ("{0}", "unknown field {0}"),
    ("{}", "unknown field {}"),
    ("{custom.inn}", "unknown field {custom.inn} at position 1"),
    ("Hi {contact.name", "not closed"),
    ("Hi } there", "closing brace at position 4"),
    ("", "must not be empty"),
    ("x" * 1001, "longer than 1000"),
    ("bell \x07", "control characters"),
])
def test_bad_templates_are_clear_errors(source: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_template(source, ["segment"])
    assert fragment in err.value.message
    assert err.value.field == "template"


def test_no_attribute_walking_in_fields_or_values() -> None:
    # a placeholder names a field, never a path into an object
    for source in ("{contact.__class__}", "{client.name.__class__}", "{client.name[0]}",
                   "{client.name!r}", "{client.name:>99999}"):
        with pytest.raises(ValidationError):
            parse_template(source)
    # and a value that looks like a placeholder is text, not expanded again
    t = parse_template("{client.name}")
    assert t.render({"client.name": "{contact.__class__}"}) == "{contact.__class__}"


def test_values_lose_control_and_bidi_characters_and_are_bounded() -> None:
    assert clean_value("Pavel\n\x1b[31mSidorov\r\n") == "Pavel [31mSidorov"
    assert clean_value("evil\u202eloc.exe") == "evilloc.exe"
    assert clean_value("a\u061cb") == "ab"  # the Arabic letter mark is bidi too
    assert clean_value("👩\u200d💻 dev") == "👩\u200d💻 dev"  # the ZWJ sequence stays whole
    long = clean_value("a" * 500)
    assert len(long) == MAX_VALUE
    t = parse_template("Dear {contact.name}, see you")
    assert t.render({"contact.name": "x" * 500}) == f"Dear {'x' * MAX_VALUE}, see you"


def test_split_name() -> None:
    assert split_name("Ivan Petrov") == ("Ivan", "Petrov")
    assert split_name("Ivan") == ("Ivan", "")
    assert split_name(" ") == ("", "")
