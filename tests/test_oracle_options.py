"""``parse_options`` against an independent parser: Werkzeug's ``parse_options_header``.

Generated header values are built from parameters (name, value, how it is written). The
well-formed ones (RFC 2045 / RFC 9110 syntax) go to both parsers unchanged. The hostile ones
are written the way relays really break the syntax, which our parser tolerates on purpose and
Werkzeug does not; for those, Werkzeug is given the canonical spelling of the *same*
parameters. Each such rewrite is one narrow, named normalisation below, never a skip.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.http import parse_options_header

from flask_mm7._headers import parse_options

#: RFC 9110 tchar (Werkzeug's token set, ASCII)
TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: qdtext without backslash and quote (RFC 9110 §5.6.4), plus a few non-ASCII characters
QDTEXT = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\') + "\t\xa0éü€"

#: ``; name="quoted value"`` as RFC 9110 writes it (no blanks around "=")
_RAW_PARAMETER = re.compile(r';[ \t]*([^\s;="]+)=("(?:[^"\\]|\\.)*")')

#: pieces of header noise: random text alone almost never spells ``; name="value"``
NOISE = [
    ";",
    "; ",
    "a",
    "B",
    "=",
    '"',
    "\\",
    " ",
    "\t",
    "\r\n",
    "\xa0",
    "é",
    "/",
    ":",
    "a=",
    ';b="',
]
#: any ``; name =`` (ours allows blanks around "="): to tell a name given twice
_ANY_PARAMETER = re.compile(r";\s*([^\s;=]+)\s*=")

tokens = st.text(alphabet=TCHAR, min_size=1, max_size=12)
names = st.text(alphabet=TCHAR.replace("*", ""), min_size=1, max_size=10)  # '*': RFC 2231
media_types = st.builds(lambda a, b: f"{a}/{b}", names, names)


def quote(value: str) -> str:
    """A quoted-string for ``value``: ``\\`` and ``"`` escaped (RFC 9110 §5.6.4)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def werkzeug(value: str) -> tuple[str, dict[str, str]]:
    """Werkzeug's answer, with the differences we keep on purpose normalised away."""
    mimetype, options = parse_options_header(value)
    # we lower-case the media type (a dispatch key) and strip any whitespace around it;
    # Werkzeug keeps the case and strips only SP/HTAB
    return mimetype.strip().lower(), options


def ours(value: str) -> tuple[str, dict[str, str]]:
    mimetype, options = parse_options(value)
    # Werkzeug decodes "%22" to '"' in every value (the HTML form-data escape for a quote);
    # MIME has no such escape and we keep the three characters
    return mimetype, {k: v.replace("%22", '"') for k, v in options.items()}


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """An RFC 9110 ``media-type``: ``type/subtype *( OWS ";" OWS name=value )``."""
    mimetype = draw(media_types)
    params = draw(
        st.lists(
            st.tuples(names, st.one_of(tokens, st.text(alphabet=QDTEXT + '"\\', max_size=16))),
            max_size=6,
            unique_by=lambda p: p[0].lower(),  # duplicates: see the hostile test
        )
    )
    value = mimetype
    for name, raw in params:
        ows_before = draw(st.sampled_from(["", " ", "\t", "  "]))
        ows_after = draw(st.sampled_from(["", " ", "\t "]))
        is_token = raw and all(c in TCHAR for c in raw) and draw(st.booleans())
        value += f"{ows_before};{ows_after}{name}={raw if is_token else quote(raw)}"
    value += draw(st.sampled_from(["", " ", ";", "; "]))
    return value, params


@settings(max_examples=1500, deadline=None)
@given(well_formed())
def test_well_formed_parameters_read_as_werkzeug_reads_them(
    case: tuple[str, list[tuple[str, str]]],
) -> None:
    value, params = case
    assert ours(value) == werkzeug(value)
    # and both are right: the values sent come back
    assert ours(value)[1] == {n.lower(): v.replace("%22", '"') for n, v in params}


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, str]:
    """(what a relay sends, the same parameters spelled canonically for Werkzeug)."""
    mimetype = draw(media_types)
    # U+00A0 and line breaks around the type: we strip them, Werkzeug strips SP/HTAB only
    # (the werkzeug() normalisation above takes care of it: same media type either way)
    pad = draw(st.sampled_from(["", " ", "\xa0", "\r\n "]))
    sent = canonical = pad + draw(st.sampled_from([mimetype, mimetype.upper()])) + pad
    seen: set[str] = set()
    # no "*" anywhere: a "*" hands the whole value to Werkzeug (RFC 2231, tested below), so
    # a hostile spelling with one would be Werkzeug against itself
    text = st.text(alphabet=QDTEXT.replace("*", "") + '"\\', max_size=12)
    params = draw(st.lists(st.tuples(names, text)))
    for index, (name, raw) in enumerate(params[:8]):
        last = index == min(len(params), 8) - 1
        name = draw(st.sampled_from([name, name.upper(), name.lower()]))
        # blanks and line breaks around "=" and after ";" (a folded header keeps its CRLF
        # when a relay prints it): we accept any whitespace there, RFC 9110 and Werkzeug none
        # around "=" -> Werkzeug gets the parameter without them
        blank = st.sampled_from(["", " ", "\t", "\r\n\t", "\n "])
        before_eq, after_eq, after_semi = draw(blank), draw(blank), draw(blank)
        form = draw(st.sampled_from(["quoted", "plain", "empty", "unterminated", "junk"]))
        if form == "junk":  # "; foo" with no "=": both skip it
            junk = draw(names)
            sent += f";{after_semi}{junk}"
            canonical += f"; {junk}"
            continue
        plain = raw.replace('"', "").replace("\\", "").strip()
        if form == "plain" and plain and ";" not in plain:
            # an unquoted value holding characters outside the token set ("/", "=", "@",
            # U+00A0, non-ASCII: OpenMarket's boundary "----=_Part_...") is the whole text up
            # to ";" for us; Werkzeug would cut it at the first non-token character -> it gets
            # the value quoted
            written, meant = plain, plain
        elif form == "empty":
            # "x=" is an empty value for us; Werkzeug drops the parameter -> it gets x=""
            written, meant = "", ""
        elif form == "unterminated" and last and raw[-1:] != "\\":
            # a quote left open at the very end runs to the end for us (CVE-2024-24762 shape:
            # still linear); Werkzeug drops the parameter -> it gets the quote closed
            written, meant = quote(raw)[:-1], raw
        else:
            written, meant = quote(raw), raw
        sent += f";{after_semi}{name}{before_eq}={after_eq}{written}"
        if name.lower() in seen:
            # the first of two parameters with one name wins for us (python-multipart's
            # smuggling fix), the last for Werkzeug -> Werkzeug does not see the later ones
            continue
        seen.add(name.lower())
        canonical += f"; {name}={quote(meant)}"
    return sent, canonical


@settings(max_examples=1500, deadline=None)
@given(hostile())
def test_hostile_parameters_read_as_werkzeug_reads_their_canonical_form(
    case: tuple[str, str],
) -> None:
    sent, canonical = case
    assert ours(sent) == werkzeug(canonical), ascii(case)


@st.composite
def rfc2231(draw: st.DrawFn) -> tuple[str, str, str]:
    """A parameter with RFC 2231 charset and continuations, and a plain one next to it."""
    mimetype = draw(media_types)
    text = draw(st.text(alphabet="abcXYZ09 -_.é€ü/;\"'", min_size=1, max_size=20))
    charset = draw(st.sampled_from(["UTF-8", "utf-8", "us-ascii"]))
    if charset == "us-ascii":
        text = text.encode("ascii", "ignore").decode() or "x"
    pieces = [
        c if c.isascii() and c.isalnum() else "".join(f"%{b:02X}" for b in c.encode()) for c in text
    ]
    encoded = "".join(pieces)
    # continuations split between characters: Werkzeug decodes each piece on its own, so a
    # UTF-8 sequence split across two would not survive (RFC 2231 senders split whole
    # characters, as the stdlib's email package does)
    cut = len("".join(pieces[: draw(st.integers(0, len(pieces)))]))
    if 0 < cut < len(encoded):
        param = f"filename*0*={charset}''{encoded[:cut]}; filename*1*={encoded[cut:]}"
    else:
        param = f"filename*={charset}''{encoded}"
    return f"{mimetype}; {param}; name={quote(text)}", mimetype, text


@settings(max_examples=300, deadline=None)
@given(rfc2231())
def test_rfc2231_parameters_are_decoded_as_werkzeug_decodes_them(
    case: tuple[str, str, str],
) -> None:
    value, mimetype, text = case
    assert ours(value) == werkzeug(value)
    assert ours(value) == (mimetype.lower(), {"filename": text, "name": text.replace("%22", '"')})


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(NOISE), max_size=24).map("".join))
def test_on_any_text_every_quoted_parameter_werkzeug_reads_we_read_alike(tail: str) -> None:
    """Noise, not a grammar: where Werkzeug finds ``name="value"`` closed by its quote and
    the name is given once, we find the same value."""
    value = "multipart/related" + tail
    mimetype, options = ours(value)
    reference_type, reference = werkzeug(value)
    assert mimetype == reference_type
    for name, expected in reference.items():
        given = [m for m in _ANY_PARAMETER.finditer(value) if m.group(1).lower() == name]
        quoted = [m for m in _RAW_PARAMETER.finditer(value) if m.group(1).lower() == name]
        if len(given) == 1 and len(quoted) == 1:
            assert options.get(name) == expected, (value, name)
