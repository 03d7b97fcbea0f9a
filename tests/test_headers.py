"""flask_mm7.headers: MIME header values with parameters."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.http import parse_options_header

from flask_mm7.headers import parse_options

_REFERENCE_PARAMETER = re.compile(r';\s*([^\s;=]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"?|[^;]*)')


def reference_parse_options(value: str | None) -> tuple[str, dict[str, str]]:
    """The previous implementation (quoted values sliced after the match), kept as the
    reference for the current one."""
    if not value:
        return "", {}
    head, separator, rest = value.partition(";")
    if not separator:
        return head.strip().lower(), {}
    if "*" in rest:
        mimetype, decoded = parse_options_header(value)
        return mimetype.lower(), decoded
    options: dict[str, str] = {}
    for name, raw in _REFERENCE_PARAMETER.findall(";" + rest):
        name = name.lower()
        if name in options:
            continue
        if raw[:1] == '"':
            raw = raw[1:-1] if len(raw) > 1 and raw[-1] == '"' else raw[1:]
            if "\\" in raw:
                raw = re.sub(r"\\(.)", r"\1", raw)
        else:
            raw = raw.strip()
        options[name] = raw
    return head.strip().lower(), options


CASES = {
    "OpenMarket": (
        'multipart/related; start="soap-start"; type="text/xml"; '
        'boundary="----=_Part_139078_1411587550.1397492135426"',
        ("multipart/related", {"start": "soap-start", "type": "text/xml",
                               "boundary": "----=_Part_139078_1411587550.1397492135426"}),
    ),
    "unquoted, any case, blanks": (
        "Multipart/Related ;  Boundary = abc/def= ;type=text/xml ",
        ("multipart/related", {"boundary": "abc/def=", "type": "text/xml"}),
    ),
    "escapes": (r'a/b; x="q\"uo\\te"', ("a/b", {"x": 'q"uo\\te'})),
    "unterminated quote": ('a/b; boundary="abc', ("a/b", {"boundary": "abc"})),
    "empty values": ('a/b; x=""; y=; z="', ("a/b", {"x": "", "y": "", "z": ""})),
    "first of two wins": ("a/b; boundary=one; BOUNDARY=two", ("a/b", {"boundary": "one"})),
    "folded": ('multipart/related;\r\n\tboundary="b"', ("multipart/related", {"boundary": "b"})),
    "RFC 2231 goes to Werkzeug": (
        "attachment; filename*=UTF-8''caf%C3%A9.txt", ("attachment", {"filename": "café.txt"})
    ),
    "no parameters": ("Text/Plain", ("text/plain", {})),
    "nothing": ("", ("", {})),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_parse_options(name: str) -> None:
    value, expected = CASES[name]
    assert parse_options(value) == expected


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet='ab=;" \t\r\n\\*/-.:\xa0é', max_size=40))
def test_same_as_the_previous_implementation(tail: str) -> None:
    value = "multipart/related" + tail
    assert parse_options(value) == reference_parse_options(value)
