"""The sans-IO multipart decoder: framing quirks, chunking independence, limits, and the stdlib
email parser as an oracle on well-formed input."""

from __future__ import annotations

import email
import email.policy
import random
import time
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from helpers import SEED_BOUNDARY, flatten_events, multipart, seed_body, splits

from flask_mm7._errors import LimitExceeded, MalformedRequest
from flask_mm7._mime import MultipartDecoder

Flat = list[tuple]


def decode(chunks: list[bytes], boundary: bytes = b"b", **limits: int) -> Flat:
    """Feed chunks; return events with adjacent data merged (chunking must not show)."""
    decoder = MultipartDecoder(boundary, **limits)
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.close()
    return flatten_events(events)


def leaves(flat: Flat) -> list[tuple[dict[str, str], bytes]]:
    """(headers, data) of each leaf part."""
    out = []
    current = None
    for item in flat:
        if item[0] == "start" and not item[3]:
            current = [{k.lower(): v for k, v in item[1]}, b""]
        elif item[0] == "data":
            assert current is not None
            current[1] += item[1]
        elif item[0] == "end" and current is not None:
            out.append((current[0], current[1]))
            current = None
    return out


SIMPLE = multipart(
    [(["Content-Type: text/xml"], b"<x/>"), (["Content-Type: image/png"], b"\x89PNG-\x00\xff-")],
    "b",
)

QUIRKS = {
    "crlf": SIMPLE,
    "lf-only": SIMPLE.replace(b"\r\n", b"\n"),
    "cr-only": SIMPLE.replace(b"\r\n", b"\r"),
    "preamble-and-epilogue": b"This is a preamble\r\n--b\r\n" + SIMPLE[5:] + b"epilogue\r\n",
    "leading-blank-lines": b"\r\n\r\n" + SIMPLE,
    "transport-padding": SIMPLE.replace(b"--b\r\n", b"--b \t\r\n"),
    "nbsp-padding": SIMPLE.replace(b"--b\r\n", b"--b\xc2\xa0 \r\n"),
    "close-without-dashes": SIMPLE[: SIMPLE.rindex(b"--b--")] + b"--b\r\n",
    "glued-delimiter": SIMPLE.replace(b"<x/>\r\n--b", b"<x/>--b"),
}


@pytest.mark.parametrize("body", QUIRKS.values(), ids=QUIRKS.keys())
def test_framing_quirks(body: bytes) -> None:
    parts = leaves(decode([body]))
    assert [(h["content-type"], d) for h, d in parts] == [
        ("text/xml", b"<x/>"),
        ("image/png", b"\x89PNG-\x00\xff-"),
    ]


@pytest.mark.parametrize("body", QUIRKS.values(), ids=QUIRKS.keys())
def test_chunking_independence(body: bytes) -> None:
    expected = decode([body])
    for chunks in splits(body):
        assert decode(chunks) == expected


def test_seed_example_chunking_independence() -> None:
    for line_ending in (b"\n", b"\r\n"):
        body = seed_body(line_ending)
        expected = decode([body], SEED_BOUNDARY.encode())
        assert len(leaves(expected)) == 3
        for chunks in splits(body, seed=len(body)):
            assert decode(chunks, SEED_BOUNDARY.encode()) == expected


def test_seed_example_structure() -> None:
    flat = decode([seed_body()], SEED_BOUNDARY.encode())
    starts = [(item[2], item[3]) for item in flat if item[0] == "start"]
    assert starts == [(0, False), (0, True), (1, False), (1, False)]
    soap, image, text = leaves(flat)
    assert soap[1].startswith(b"<?xml") and soap[1].endswith(b"</ns1:Envelope>")
    assert soap[0]["content-id"] == "<soap-start>"  # U+00A0 and the space stripped
    assert image == (
        {
            "content-type": "image/jpeg",
            "content-transfer-encoding": "binary",
            "content-id": "image_0.jpg",
        },
        b"<Binary contents>",
    )
    assert text[1] == b"Test MO message!"


def test_headers_any_case_folded_and_latin1() -> None:
    body = multipart(
        [(["content-TYPE: text/plain;", "\tcharset=utf-8", "X-Name: caf\xe9"], b"x")], "b"
    ).replace("café".encode(), b"caf\xe9")
    [(headers, data)] = leaves(decode([body]))
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["x-name"] == "café"
    assert data == b"x"


def test_folded_header_cut_inside_its_continuation_line() -> None:
    """A chunk ending inside a folded continuation line must not end the header block
    (it did: the rest of the fold became body data, with a "no blank line" defect)."""
    for nl in (b"\r\n", b"\n"):
        body = multipart([(["Content-Type: text/plain;", "\tcharset=utf-8"], b"x")], "b", nl=nl)
        cut = body.index(b"\tcharset") + 3
        for chunks in ([body], [body[:cut], body[cut:]], *splits(body)):
            assert leaves(decode(chunks)) == [({"content-type": "text/plain; charset=utf-8"}, b"x")]


def test_line_breaks_inside_binary_data_are_kept() -> None:
    data = b"\r\n\x89PNG\r\n\n\r-\r\n"
    for nl in (b"\r\n", b"\n"):
        body = multipart([(["Content-Type: a/b"], data)], "b", nl=nl)
        for chunks in splits(body):
            assert leaves(decode(chunks)) == [({"content-type": "a/b"}, data)]


def test_empty_part_and_part_without_headers() -> None:
    body = b"--b\r\n\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\r\n--b--\r\n"
    assert leaves(decode([body])) == [({}, b""), ({"content-type": "text/plain"}, b"")]


@pytest.mark.parametrize(
    "near_miss",
    [b"\r\n--bX", b"\r\n-b\r\n", b"\n--c\r\n", b"--b0", b"\r\n--", b"\r\n--b-x"],
    ids=["suffix", "one-dash", "other-boundary", "glued-suffix", "truncated", "dash-suffix"],
)
def test_near_delimiters_are_data(near_miss: bytes) -> None:
    data = b"before" + near_miss + b"after"
    body = multipart([(["Content-Type: a/b"], data)], "b")
    for chunks in splits(body):
        [(_, got)] = leaves(decode(chunks))
        assert got == data


def test_nested_multipart_without_close_delimiter_is_closed_by_the_outer() -> None:
    body = (
        b"--o\r\nContent-Type: text/xml\r\n\r\n<x/>\r\n"
        b"--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n"
        b"--i\r\nContent-Type: a/1\r\n\r\none\r\n"
        b"--i\r\nContent-Type: a/2\r\n\r\ntwo\r\n"
        b"--o--\r\n"
    )
    decoder = MultipartDecoder(b"o")
    flat = decode([body], b"o")
    assert [d for _, d in leaves(flat)] == [b"<x/>", b"one", b"two"]
    assert [item for item in flat if item[0] == "end"] == [
        ("end", 0),
        ("end", 1),
        ("end", 1),
        ("end", 0),
    ]
    decoder.feed(body)
    decoder.close()
    assert "nested multipart without close delimiter" in decoder.defects


@pytest.mark.parametrize("end", [b"--b--", b"--b--\r\n", b"--b-- \t\r\n", b"--b--\n"])
def test_close_delimiter_at_the_very_end_is_no_defect(end: bytes) -> None:
    body = b"--b\r\nContent-Type: text/xml\r\n\r\n<a/>\r\n" + end
    for chunks in splits(body):
        decoder = MultipartDecoder(b"b")
        for chunk in chunks:
            decoder.feed(chunk)
        decoder.close()
        assert decoder.defects == [], chunks


@pytest.mark.parametrize("end", [b"--b--\r\n", b"--b-- \t\r\n", b"--b--\n", b"--b--\r\nepilogue"])
def test_body_fed_whole_ends_in_feed_with_data_in_one_piece(end: bytes) -> None:
    # after a whole line break a close delimiter cannot grow: nothing is left to close()
    body = b"--b\r\nContent-Type: text/xml\r\n\r\n<a/>\r\n" + end
    decoder = MultipartDecoder(b"b")
    events = decoder.feed(body)
    assert events[1:] == [b"<a/>", events[2]] and type(events[2]).__name__ == "PartEnd"
    assert decoder.close() == []
    assert decoder.defects == []


def test_nested_boundary_with_spaces_and_outer_prefix() -> None:
    inner = multipart([(["Content-Type: a/1"], b"--o2 is not mine")], "o 2")
    nested = (['Content-Type: multipart/mixed; boundary="o 2"'], inner)
    body = multipart([(["Content-Type: text/xml"], b"<x/>"), nested], "o")
    for chunks in splits(body):
        assert [d for _, d in leaves(decode(chunks, b"o"))] == [b"<x/>", b"--o2 is not mine"]


def test_no_delimiter_at_all_is_malformed() -> None:
    with pytest.raises(MalformedRequest):
        decode([b"just some bytes\r\n"])
    with pytest.raises(MalformedRequest):
        decode([b""])


@pytest.mark.parametrize("boundary", [b"", b"x" * 257])
def test_unusable_boundary(boundary: bytes) -> None:
    with pytest.raises(MalformedRequest):
        MultipartDecoder(boundary)


def _many_parts(n: int) -> bytes:
    return multipart([(["Content-Type: a/b"], b"x")] * n, "b")


@pytest.mark.parametrize(("count", "ok"), [(9, True), (10, True), (11, False)])
def test_part_limit(count: int, ok: bool) -> None:
    if ok:
        assert len(leaves(decode([_many_parts(count)], max_parts=10))) == count
    else:
        with pytest.raises(LimitExceeded):
            decode([_many_parts(count)], max_parts=10)


@pytest.mark.parametrize(("levels", "ok"), [(3, True), (4, True), (5, False)])
def test_depth_limit(levels: int, ok: bool) -> None:
    # ``levels`` multiparts nested, the body's own included
    body = multipart([(["Content-Type: a/b"], b"leaf")], f"b{levels - 1}")
    for level in range(levels - 1, 0, -1):
        body = multipart(
            [([f"Content-Type: multipart/mixed; boundary=b{level}"], body)], f"b{level - 1}"
        )
    if ok:
        assert leaves(decode([body], b"b0", max_depth=4)) == [({"content-type": "a/b"}, b"leaf")]
    else:
        with pytest.raises(LimitExceeded):
            decode([body], b"b0", max_depth=4)


def test_deep_nesting_is_refused_without_recursion() -> None:
    body = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
        for i in range(5000)
    )
    with pytest.raises(LimitExceeded):
        decode([body], b"b0", max_depth=4)


@pytest.mark.parametrize(("size", "ok"), [(99, True), (100, True), (101, False)])
def test_header_block_limit(size: int, ok: bool) -> None:
    line = "X-Pad: " + "a" * (size - len("X-Pad: ") - 4)  # + CRLF + blank line = size bytes
    body = multipart([([line], b"x")], "b")
    if ok:
        assert leaves(decode([body], max_header_size=100))[0][1] == b"x"
    else:
        with pytest.raises(LimitExceeded):
            decode([body], max_header_size=100)


def test_endless_header_line_is_refused_early() -> None:
    decoder = MultipartDecoder(b"b", max_header_size=1000)
    decoder.feed(b"--b\r\nX: ")
    with pytest.raises(LimitExceeded):
        for _ in range(100):
            decoder.feed(b"a" * 100)


@pytest.mark.parametrize(
    "body",
    [
        b"\r\n" * 2_000_000 + SIMPLE,  # CR/LF-dense preamble (CVE-2024-53981 shape)
        SIMPLE + b"-" * 4_000_000,  # huge epilogue (CVE-2026-40347 shape)
        multipart([(["Content-Type: a/b"], b"\r\n" + b"a" * 4_000_000)], "b"),  # CVE-2023-46136
        multipart([(["Content-Type: a/b"], b"\r\n" * 2_000_000)], "b"),  # python-multipart #67
    ],
    ids=["crlf-preamble", "epilogue", "long-line", "crlf-data"],
)
def test_hostile_shapes_take_linear_time(body: bytes) -> None:
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    started = time.perf_counter()
    decode(chunks)
    assert time.perf_counter() - started < 5  # quadratic behaviour would take minutes


@pytest.mark.parametrize(
    "near_miss", [b"\r\n--bX", b"--b-x", b"--b \tx", b"--b" + b" " * 300 + b"\r\n"]
)
def test_data_made_of_near_delimiters_is_refused_early(near_miss: bytes) -> None:
    # RFC 2046 forbids a delimiter's text inside a part; each near-miss costs a Python step
    body = multipart([(["Content-Type: a/b"], near_miss * 500_000)], "b")
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    decoder = MultipartDecoder(b"b")
    with pytest.raises(LimitExceeded, match="boundary-like"):
        for chunk in chunks:
            decoder.feed(chunk)
    assert decoder.part_count == 1


def test_some_near_delimiters_are_still_data() -> None:
    # an outer boundary extended by the inner one: each inner delimiter is an outer near-miss
    inner = multipart([(["Content-Type: a/1"], b"x")] * 200, "b1")
    body = multipart([(["Content-Type: multipart/mixed; boundary=b1"], inner)], "b")
    assert len(leaves(decode([body], max_parts=300))) == 200


# -- the stdlib email parser as an oracle on well-formed messages ------------------------------


def _random_message(rng: random.Random) -> tuple[bytes, str]:
    related = MIMEMultipart("related", boundary=f"==outer{rng.randrange(10**9)}==")
    related.attach(MIMEApplication(b"<Envelope/>", "xml", _encoder=lambda m: None))
    for _ in range(rng.randint(0, 3)):
        container = MIMEMultipart("mixed", boundary=f"==inner{rng.randrange(10**9)}==")
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(["text", "binary", "image"])
            if kind == "text":
                container.attach(MIMEText("héllo\n" * rng.randint(0, 50), "plain", "utf-8"))
            else:
                part = MIMEBase("image", "jpeg")
                part.set_payload(rng.randbytes(rng.randint(0, 3000)))
                email.encoders.encode_base64(part)
                container.attach(part)
        related.attach(container)
    if rng.random() < 0.5:
        part = MIMEBase("audio", "amr")
        part.set_payload(rng.randbytes(rng.randint(1, 500)))
        email.encoders.encode_base64(part)
        related.attach(part)
    raw = related.as_bytes(policy=email.policy.HTTP)
    head, _, body = raw.partition(b"\r\n\r\n")
    return body, related.get_boundary()


def test_matches_the_stdlib_email_parser_on_well_formed_messages() -> None:
    import email.encoders  # noqa: F401  (used by _random_message)

    rng = random.Random(2387)
    for _ in range(60):
        body, boundary = _random_message(rng)
        content_type = f'multipart/related; boundary="{boundary}"'
        oracle = email.message_from_bytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body,
            policy=email.policy.HTTP,
        )
        expected = [
            (p.get_content_type(), p.get_payload(decode=False).encode("ascii", "surrogateescape"))
            for p in oracle.walk()
            if not p.is_multipart()
        ]
        chunk = rng.randint(1, 4096)
        got = leaves(
            decode([body[i : i + chunk] for i in range(0, len(body), chunk)], boundary.encode())
        )
        assert [(h["content-type"].split(";")[0], d) for h, d in got] == expected


def test_binary_body_right_after_headers_without_newlines() -> None:
    # OpenMarket's shape (no blank line) with real binary data that has no line break for
    # longer than the header limit: the body must start at once, not wait for a newline
    data = b"\xff\xd8\xff\xe0" + bytes(range(14, 256)) * 200
    body = b"--b\r\nContent-Type: image/jpeg\r\nContent-ID: x\r\n" + data + b"\r\n--b--\r\n"
    for chunks in ([body], [body[i : i + 100] for i in range(0, len(body), 100)]):
        [(headers, got)] = leaves(decode(chunks, max_header_size=1000))
        assert (headers["content-id"], got) == ("x", data)


def test_header_line_split_anywhere_is_still_a_header() -> None:
    body = b"--b\nContent-Type: a/b\nContent-ID: <c>\n\nx\n--b--\n"
    for chunks in splits(body):
        [(headers, data)] = leaves(decode(chunks))
        assert headers == {"content-type": "a/b", "content-id": "<c>"} and data == b"x"


NESTED_CUT_BY_OUTER = {
    # what the inner level holds when the outer delimiter comes, and the leaves expected
    "after-inner-delimiter": (b"--i\r\nA: 1\r\n\r\none\r\n--i\r\n", [b"one", b""]),
    "inside-inner-headers": (
        b"--i\r\nA: 1\r\n\r\none\r\n--i\r\nContent-Type: a/2\r\n",
        [b"one", b""],
    ),
    "inside-inner-preamble": (b"preamble", []),
    "inside-inner-data": (b"--i\r\nA: 1\r\n\r\none\r\n--i-", [b"one\r\n--i-"]),
    "inside-a-deeper-level": (
        b"--i\r\nContent-Type: multipart/mixed; boundary=j\r\n\r\n--j\r\nA: 1\r\n\r\none",
        [b"one"],
    ),
}


@pytest.mark.parametrize(
    ("inner", "expected"), NESTED_CUT_BY_OUTER.values(), ids=NESTED_CUT_BY_OUTER.keys()
)
def test_outer_delimiter_ends_the_open_nested_levels_wherever_they_are(
    inner: bytes, expected: list[bytes]
) -> None:
    body = (
        b"--o\r\nContent-Type: text/xml\r\n\r\n<x/>\r\n"
        b"--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n" + inner + b"\r\n"
        b"--o\r\nContent-Type: a/3\r\n\r\nlast\r\n--o--\r\n"
    )
    whole = decode([body], b"o")
    assert [d for _, d in leaves(whole)] == [b"<x/>", *expected, b"last"]
    # every level opened is closed, innermost first, before the outer level's next part
    depths = [
        item[2] if item[0] == "start" else -1 - item[1] for item in whole if item[0] != "data"
    ]
    assert sum(1 for d in depths if d >= 0) == sum(1 for d in depths if d < 0)
    for chunks in splits(body):
        assert decode(chunks, b"o") == whole
    decoder = MultipartDecoder(b"o")
    decoder.feed(body)
    decoder.close()
    assert "nested multipart without close delimiter" in decoder.defects


@pytest.mark.parametrize(
    ("tail", "held"),
    [
        (b"", b""),  # nothing there can begin a delimiter: all of it is released
        (b"\r\n", b"\r\n"),  # a line break may be the one before a delimiter
        (b"\r", b"\r"),
        (b"x-", b"-"),  # a dash may begin one
        (b"\r\n--bou", b"\r\n--bou"),
        (b"a-b\r\n--b", b"-b\r\n--b"),  # holding from an earlier dash is still right
    ],
)
def test_a_large_part_is_released_as_it_arrives(tail: bytes, held: bytes) -> None:
    """Data with no delimiter in sight is released at once but for a tail that may begin
    one (and the line break before it), so a large part is not held back chunk by chunk."""
    decoder = MultipartDecoder(b"boundary")
    events = decoder.feed(b"--boundary\r\nContent-Type: video/mp4\r\n\r\n")
    data = bytes(random.Random(7).randrange(65, 91) for _ in range(5000))  # no "-", no breaks
    released = b"".join(e for e in events + decoder.feed(data + tail) if isinstance(e, bytes))
    assert released + held == data + tail
    rest = decoder.feed(b"Z\r\n--boundary--") + decoder.close()
    part = released + b"".join(e for e in rest if isinstance(e, bytes))
    assert part == data + tail + b"Z"


@pytest.mark.parametrize(
    "inner",
    [
        b"--b2\r\nX: y\r\n \r--b2--",  # a line that only the next byte tells is not a header
        b"--b2\r\nX: y\r\nZ--b2--",  # no blank line: the body starts with its close delimiter
    ],
)
def test_a_nested_multipart_closed_by_its_own_delimiter_has_no_missing_close_defect(
    inner: bytes,
) -> None:
    """A nested multipart whose own close delimiter comes right before the outer one is
    closed by it, even when deciding so needed the line break the outer delimiter takes."""
    body = b"--b1\r\nContent-Type: multipart/mixed; boundary=b2\r\n\r\n" + inner + b"\n--b1--"
    for chunks in splits(body):
        decoder = MultipartDecoder(b"b1")
        events = [e for chunk in chunks for e in decoder.feed(chunk)] + decoder.close()
        assert "nested multipart without close delimiter" not in decoder.defects, chunks
        assert "missing close delimiter" not in decoder.defects
        leaves = [e for e in flatten_events(events) if e[0] == "start" and not e[-1]]
        assert len(leaves) == 1  # the one inner part, no empty part made up after it


@pytest.mark.parametrize("between", [b"", b"\r\n", b"\n"])
def test_a_nested_delimiter_right_before_the_outer_one_closes_its_level(between: bytes) -> None:
    """``--inner`` then the outer delimiter (glued, ``--inner--outer--``, or on the next line)
    ends the nested multipart there, as a last delimiter without its ``--`` ends a body: the
    part before it is kept whole, no empty part is made up after it, and the outer part after
    it is read."""
    body = (
        b"--b1\r\nContent-Type: multipart/mixed; boundary=b2\r\n\r\n--b2\r\nX: y\r\n\r\nabc\r\n--b2"
        + between
        + b"--b1\r\nA: b\r\n\r\nlast\r\n--b1--"
    )
    expected = None
    for chunks in splits(body):
        decoder = MultipartDecoder(b"b1")
        events = flatten_events(
            [e for chunk in chunks for e in decoder.feed(chunk)] + decoder.close()
        )
        assert events == [
            ("start", (("Content-Type", "multipart/mixed; boundary=b2"),), 0, True),
            ("start", (("X", "y"),), 1, False),
            ("data", b"abc"),
            ("end", 1),
            ("end", 0),
            ("start", (("A", "b"),), 0, False),
            ("data", b"last"),
            ("end", 0),
        ], chunks
        expected = expected or decoder.defects
        assert decoder.defects == expected == ["nested multipart without close delimiter"]
