"""flask_mm7._headers: MIME header values with parameters (the relays' spellings, by name).

Compared with Werkzeug's parser on generated values in test_oracle_options.py.
"""

from __future__ import annotations

import pytest

from flask_mm7._headers import parse_options

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
    # a quote is no token character: not a name (Werkzeug agrees; found by the oracle test)
    "quote as a name": ('multipart/related;"=";b=""', ("multipart/related", {"b": ""})),
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
