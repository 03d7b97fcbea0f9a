"""A sender's charset label -> a codec safe to decode with: real text encodings only, UTF-7
under no name, everything else UTF-8 with replacement; decoding never raises."""

from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import pkgutil

import pytest
from helpers import deliver_inner, envelope
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_mm7 import _soap as soap
from flask_mm7._attachments import Attachment
from flask_mm7._charsets import UTF8, codec_for, decode
from flask_mm7._errors import MM7Error

#: every codec name the standard library knows: aliases and codec modules
STDLIB_NAMES = sorted(
    set(encodings.aliases.aliases)
    | set(encodings.aliases.aliases.values())
    | {info.name for info in pkgutil.iter_modules(encodings.__path__)}
)
UTF7_ALIASES = sorted(k for k, v in encodings.aliases.aliases.items() if v == "utf_7")
#: labels a sender picks that name no real text encoding, or one that raises or warns
NOT_TEXT = [
    "base64", "base_64", "rot13", "rot_13", "hex", "zlib", "zip", "bz2", "uu", "quopri",
    "quoted-printable", "undefined", "idna", "punycode", "unicode_escape", "raw_unicode_escape",
    "utf-8\x00", "utf\x008", "\x00", "ütf-8", "latin.1", "x-unknown", "aliases", "mbcs", "oem",
    "x" * 41, "utf-8" + " " * 50,
]  # fmt: skip


#: the registry's text codecs that are still read as UTF-8 (UTF-8 itself among them)
READ_AS_UTF8 = {
    "utf-8", "ascii", "utf-7", "undefined", "idna", "punycode", "unicode-escape",
    "raw-unicode-escape",
}  # fmt: skip


def _attachment(charset: str | None, data: bytes, mimetype: str = "text/plain") -> Attachment:
    content_type = mimetype if charset is None else f'{mimetype}; charset="{charset}"'
    return Attachment([("Content-Type", content_type)], data=data)


def _text_reading(label: str) -> str | None:
    """What the codec registry resolves ``label`` to, when that is a usable text encoding."""
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    return info.name if info._is_text_encoding else None


@pytest.mark.parametrize("label", NOT_TEXT)
def test_labels_that_are_no_text_encoding_read_as_utf8(label: str) -> None:
    assert codec_for(label) == UTF8
    data = "caf\u00e9 \\q +ADw-x".encode() + b"\xff"
    assert _attachment(label, data).text == "caf\u00e9 \\q +ADw-x\ufffd"


@pytest.mark.parametrize(
    "label",
    [*UTF7_ALIASES, "utf7", "UTF-7", "utf 7", "Utf_7", " utf-7 ", "unicode_1_1_utf_7", "U7",
     "csUnicode11UTF7", "unicode-1-1-utf-7", "UNICODE 1 1 UTF 7"],
)  # fmt: skip
def test_utf7_is_never_interpreted_under_any_name(label: str) -> None:
    if _text_reading(label) is not None:  # the registry would read it as UTF-7
        assert codecs.lookup(label).name == "utf-7"
    assert codec_for(label) == UTF8
    assert _attachment(label, b"+ADw-script+AD4-").text == "+ADw-script+AD4-"


@pytest.mark.parametrize(
    ("label", "text"),
    [
        ("iso-8859-1", "caf\u00e9"),
        ("ISO_8859-1:1987", "caf\u00e9"),
        ("windows-1252", "\u20ac5"),
        ("cp1252", "\u20ac5"),
        ("koi8-r", "\u043f\u0440\u0438\u0432\u0435\u0442"),
        ("shift_jis", "\u3053\u3093\u306b\u3061\u306f"),
        ("iso-2022-jp", "\u3053\u3093\u306b\u3061\u306f"),
        ("gb18030", "\u4f60\u597d"),
        ("big5", "\u4f60\u597d"),
        ("utf-16", "caf\u00e9 \u2615"),
        ("UTF-16LE", "caf\u00e9 \u2615"),
        ("utf-32", "\U0001f600"),
        ("utf-8", "\u2615"),
        ("UTF8", "\u2615"),
        ("iso8859.1", "caf\u00e9"),
        ("iso-8859-15", "\u20ac"),
    ],
)
def test_real_text_encodings_are_used(label: str, text: str) -> None:
    data = text.encode(label)
    assert codecs.lookup(codec_for(label)).name == codecs.lookup(label).name
    assert _attachment(label, data).text == text


@pytest.mark.parametrize("label", ["us-ascii", "US-ASCII", "ascii", "ANSI_X3.4-1968", "646"])
def test_us_ascii_reads_as_utf8(label: str) -> None:
    # real relays send UTF-8 labelled us-ascii
    assert _attachment(label, "caf\u00e9".encode()).text == "caf\u00e9"


def test_no_charset_is_utf8_and_non_text_parts_have_no_text() -> None:
    assert _attachment(None, "\u2615".encode()).text == "\u2615"
    assert _attachment("base64", b"x", mimetype="image/png").text is None


_LABELS = st.one_of(
    st.sampled_from(STDLIB_NAMES),
    # the same names as a sender may spell them: case, hyphens, spaces, dots, padding
    st.builds(
        lambda name, sep, upper, pad: (name.replace("_", sep).upper() if upper else name) + pad,
        st.sampled_from(STDLIB_NAMES),
        st.sampled_from(["_", "-", " ", ".", "", "--"]),
        st.booleans(),
        st.sampled_from(["", " ", "\t", "\x00"]),
    ),
    st.text(max_size=50),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_ .:", max_size=30),
)


@settings(max_examples=1500, deadline=None)
@given(_LABELS, st.binary(max_size=64))
def test_decoding_never_raises(label: str, data: bytes) -> None:
    # warnings are errors in this suite: unicode_escape's DeprecationWarning would fail too
    assert isinstance(decode(data, label), str)
    codec = codec_for(label)
    if codec != UTF8:
        info = codecs.lookup(codec)
        assert info._is_text_encoding and info.name not in READ_AS_UTF8
    text = _attachment(label.replace('"', ""), data).text
    assert isinstance(text, str)


@settings(max_examples=800, deadline=None)
@given(_LABELS)
def test_the_registry_reading_is_kept_for_every_real_text_encoding(label: str) -> None:
    """Differential: a printable ASCII label the registry reads as a usable text encoding gets
    that codec; any other codec given is the registry's reading of the label."""
    codec = codec_for(label)
    reading = _text_reading(label)
    if codec != UTF8:
        assert reading == codecs.lookup(codec).name
    elif reading is not None and label.isascii() and label.isprintable() and len(label) <= 40:
        assert reading in READ_AS_UTF8


def test_arbitrary_labels_do_not_grow_the_codec_registry() -> None:
    # encodings.search_function remembers every name it misses, without bound
    cache = getattr(encodings, "_cache", None)
    if cache is None:  # pragma: no cover
        pytest.skip("this Python's encodings package keeps no cache")
    codec_for("warm-up")
    before = len(cache)
    for number in range(500):
        assert codec_for(f"x-charset-{number}") == UTF8
    assert len(cache) == before


# -- the SOAP part ------------------------------------------------------------------------------

_SUBJECT = "<mm7:Subject>+ADw-x+AD4- caf\u00e9</mm7:Subject>"


def _subject(charset: str | None, data: bytes) -> str | None:
    parsed = soap.read_envelope(data, charset)
    return soap.text_of(soap.child(parsed.element, "Subject"))


@pytest.mark.parametrize("charset", [*NOT_TEXT, *UTF7_ALIASES, "utf7", "utf 7", "us-ascii"])
@pytest.mark.parametrize("declaration", ["", '<?xml version="1.0" encoding="UTF-8"?>'])
def test_soap_charset_that_is_no_text_encoding_reads_as_utf8(
    charset: str, declaration: str
) -> None:
    data = envelope(deliver_inner(extra=_SUBJECT), declaration=declaration)
    assert _subject(charset, data) == "+ADw-x+AD4- caf\u00e9"


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8])
@pytest.mark.parametrize(
    "declared",
    ["utf-7", "UTF-7", "utf7", "base64", "zlib", "undefined", "idna", "punycode",
     "unicode_escape", "x-unknown", "utf 7", "\u00fctf-8", "UTF-8 ", " utf-8"],
)  # fmt: skip
def test_soap_declared_encoding_that_is_no_text_encoding_reads_as_utf8(
    declared: str, bom: bytes
) -> None:
    # with no MIME charset the declaration decides; expat must never run these codecs
    declaration = f'<?xml version="1.0" encoding="{declared}"?>'
    data = bom + envelope(deliver_inner(extra=_SUBJECT), declaration=declaration)
    assert _subject(None, data) == "+ADw-x+AD4- caf\u00e9"


@pytest.mark.parametrize("declared", ["koi8-r", "KOI8-R", "cp1251"])
@pytest.mark.parametrize("bom", [False, True])
def test_soap_declared_real_encoding_is_used(declared: str, bom: bool) -> None:
    text = envelope(
        deliver_inner(extra="<mm7:Subject>\u043f\u0440\u0438</mm7:Subject>"),
        declaration=f'<?xml version="1.0" encoding="{declared}"?>',
    ).decode()
    # a byte order mark wins over the declaration (RFC 7303)
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le") if bom else text.encode(declared)
    assert _subject(None, data) == "\u043f\u0440\u0438"


@settings(max_examples=600, deadline=None)
@given(
    charset=st.one_of(st.none(), _LABELS),
    declared=st.one_of(st.none(), _LABELS),
    bom=st.sampled_from([b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE]),
)
def test_soap_reading_raises_nothing_but_mm7_errors(
    charset: str | None, declared: str | None, bom: bytes
) -> None:
    declaration = (
        f'<?xml version="1.0" encoding="{declared.replace(chr(34), "")}"?>'
        if declared is not None
        else ""
    )
    data = bom + envelope(deliver_inner(extra=_SUBJECT), declaration=declaration)
    try:
        subject = _subject(charset, data)
    except MM7Error:
        return  # e.g. an ASCII envelope read as UTF-16 is not XML: a Client Fault
    assert subject is not None
    assert "<" not in subject  # UTF-7's +ADw- never became markup
