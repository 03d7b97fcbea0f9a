"""Property tests: any bytes and any headers get an MM7 reply or a SOAP Fault, nothing else.

Invariant (``mm7_invariants.check_reply``): the HTTP status is in a known set, a ``text/xml``
body parses as a SOAP 1.1 envelope with defusedxml, nothing leaks (traceback, paths, exception
reprs), the handler runs at most once, no fd is left open; no exception escapes either adapter.
And for the decoder alone: ``MultipartDecoder`` raises nothing but ``MM7Error`` subclasses, and
the same bytes cut differently give the same events.

Bounded and reproducible for CI (``derandomize=True``, no example database, ~250 examples per
test); ``fuzz/atheris_mm7.py`` runs the same invariant for hours.
"""

from __future__ import annotations

import time
import typing as t

import pytest
from helpers import SEED_CONTENT_TYPE, envelope, flatten_events, mm7_body, seed_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mm7_invariants import KNOWN_STATUSES, App, RawRequest, check_reply, open_fds

from flask_mm7._errors import MM7Error
from flask_mm7._mime import MultipartDecoder
from flask_mm7.testing import build_deliver, build_delivery_report

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _seeds() -> list[tuple[bytes, str]]:
    """Valid requests to mutate: helper-built, stdlib-email-built and the seed example."""
    kit = build_deliver(
        transaction_id="FUZZ-1", text="hello", attachments=[b"\xff\xd8\xff" * 20], subject="s"
    )
    flat = build_deliver(transaction_id="FUZZ-2", text="x", nested=False, linesep="\n")
    report = build_delivery_report(
        message_id="M1",
        recipient="12125550123",
        sender="222111",
        transaction_id="FUZZ-3",
        multipart=True,
    )
    return [
        mm7_body(),
        mm7_body(nested=False, nl=b"\n"),
        (seed_body(), SEED_CONTENT_TYPE),
        (kit.body, kit.content_type),
        (flat.body, flat.content_type),
        (report.body, report.content_type),
        (envelope(), "text/xml; charset=utf-8"),
    ]


SEEDS = _seeds()


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[dict[str, t.Any]]:
    spool = tmp_path_factory.mktemp("spool")
    built = {
        kind: App(kind, spool_threshold=64, spool_dir=str(spool), max_parts=16)
        for kind in ("middleware", "extension")
    }
    yield {"apps": built, "spool": spool}


def _post(apps: dict[str, t.Any], request: RawRequest) -> None:
    """Send ``request`` to both adapters and check the invariant on each answer."""
    for app in apps["apps"].values():
        fds = open_fds()
        outcome = app.run(request)
        check_reply(outcome, allowed=KNOWN_STATUSES)
        assert open_fds() == fds
        assert list(apps["spool"].iterdir()) == []
        if outcome.status == 200 and outcome.reached_after is None:
            assert len(outcome.calls) == 1


# -- strategies ---------------------------------------------------------------------------------

_PARAM_VALUES = st.one_of(
    st.sampled_from(
        [
            '"outer-b"',
            "outer-b",
            "outer-b ",
            '"outer-b',
            '"' + "\\" * 50,
            '""',
            '"<soap-start>"',
            "soap-start",
            '"text/xml"',
            "'outer-b'",
            '"a\\"b"',
            "=?utf-8?q?x?=",
        ]
    ),
    st.text(max_size=30),
)
_PARAM_NAMES = st.sampled_from(["boundary", "BOUNDARY", "start", "type", "charset", "start-info"])
_MIMETYPES = st.one_of(
    st.sampled_from(
        [
            "multipart/related",
            "Multipart/Related",
            "multipart/mixed",
            "multipart/form-data",
            "text/xml",
            "application/xml",
            "application/soap+xml",
            "application/json",
            "",
        ]
    ),
    st.text(max_size=20),
)


@st.composite
def content_types(draw: st.DrawFn) -> str | None:
    if draw(st.integers(0, 20)) == 0:
        return None
    mimetype = draw(_MIMETYPES)
    params = draw(st.lists(st.tuples(_PARAM_NAMES, _PARAM_VALUES), max_size=4))
    separator = draw(st.sampled_from(["; ", ";", " ; ", ",", ";\t"]))
    pieces = [mimetype] + [f"{name}={value}" for name, value in params]
    text = separator.join(pieces)
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str]:
    """A valid body after a few byte flips, truncations, insertions, duplications, deletions."""
    body, content_type = draw(st.sampled_from(SEEDS))
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate", "delete", "crlf"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(
                st.one_of(
                    st.binary(max_size=16),
                    st.sampled_from([b"--outer-b", b"\r\n", b"<!DOCTYPE x>", b"]]>", b"&x;"]),
                )
            )
        elif op == "duplicate":
            end = min(len(data), at + draw(st.integers(1, 400)))
            data[at:at] = data[at:end]
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            data[at:at] = draw(st.sampled_from([b"\r", b"\n", b"\r\n", b"\xc2\xa0"]))
    return bytes(data), content_type


@st.composite
def raw_requests(
    draw: st.DrawFn, body: bytes, content_type: st.SearchStrategy[str | None]
) -> RawRequest:
    framing = draw(st.sampled_from(["length", "length", "chunked", "none", "bad-length"]))
    request = RawRequest(
        body=body,
        content_type=draw(content_type),
        max_read=draw(st.sampled_from([None, None, 1, 3, 64, 1000])),
    )
    if framing == "chunked":
        request.chunked, request.content_length = True, None
    elif framing == "none":
        request.content_length = None
    elif framing == "bad-length":
        request.content_length = draw(st.sampled_from(["-1", "1e3", "x", str(len(body) + 5)]))
    headers = draw(
        st.dictionaries(
            st.sampled_from(["SOAPAction", "UAProf", "X-OpenMarket-Carrier-Id", "Expect"]),
            st.text(max_size=40).map(
                lambda s: s.encode("utf-8", "surrogatepass").decode("latin-1")
            ),
            max_size=3,
        )
    )
    request.headers = headers
    return request


# -- request-level properties --------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_random_bytes_random_headers(apps: dict[str, t.Any], data: st.DataObject) -> None:
    body = data.draw(st.binary(max_size=2048))
    request = data.draw(raw_requests(body, content_types()))
    _post(apps, request)


@FUZZ
@given(data=st.data())
def test_mutated_valid_bodies(apps: dict[str, t.Any], data: st.DataObject) -> None:
    body, content_type = data.draw(mutated())
    _post(apps, RawRequest(body=body, content_type=content_type))


@FUZZ
@given(data=st.data())
def test_valid_bodies_under_random_content_types(
    apps: dict[str, t.Any], data: st.DataObject
) -> None:
    body, _ = data.draw(st.sampled_from(SEEDS))
    request = data.draw(raw_requests(body, content_types()))
    _post(apps, request)


@FUZZ
@given(data=st.data())
def test_mutated_bodies_any_framing(apps: dict[str, t.Any], data: st.DataObject) -> None:
    body, content_type = data.draw(mutated())
    request = data.draw(raw_requests(body, st.just(content_type)))
    request.method = data.draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
    request.path = data.draw(st.sampled_from(["/mm7", "/mm7", "/mm7/", "/other"]))
    _post(apps, request)


# -- decoder-level properties --------------------------------------------------------------------

_TOKENS = st.sampled_from(
    [
        b"--b",
        b"--b--",
        b"--b ",
        b"\r\n",
        b"\n",
        b"\r",
        b"\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=c\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n",
        b"Content-Type: text/plain",
        b"--c",
        b"--c--",
        b"Content-ID: <x>",
        b": ",
        b" ",
        b"\t",
        b"\xa0",
        b"\xc2",
        b"xxxxxxxxxx",
        b"\x00\xff",
    ]
)
_DECODER_INPUT = st.lists(st.one_of(_TOKENS, st.binary(max_size=12)), max_size=60).map(b"".join)


def _decode(boundary: bytes, chunks: list[bytes]) -> tuple[list[tuple[t.Any, ...]], str | None]:
    """Merged events (chunking must not show) and the MM7Error class raised, if any."""
    try:
        decoder = MultipartDecoder(boundary, max_parts=8, max_depth=3, max_header_size=200)
    except MM7Error as error:
        return [], type(error).__name__
    events: list[t.Any] = []
    try:
        for chunk in chunks:
            events += decoder.feed(chunk)
        events += decoder.close()
    except MM7Error as error:
        return [], type(error).__name__
    return flatten_events(events), None


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    if not data:
        return [data]
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=12))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


@FUZZ
@given(data=st.data())
def test_decoder_raises_only_mm7_errors_and_ignores_chunking(data: st.DataObject) -> None:
    boundary = data.draw(
        st.one_of(st.just(b"b"), st.sampled_from([b"", b"b" * 257, b"a b", b"\xa0"]))
    )
    body = data.draw(_DECODER_INPUT)
    whole = _decode(boundary, [body])
    bytewise = _decode(boundary, [body[i : i + 1] for i in range(len(body))])
    assert bytewise == whole
    assert _decode(boundary, data.draw(chunkings(body))) == whole


@FUZZ
@given(data=st.data())
def test_decoder_on_mutated_real_bodies(data: st.DataObject) -> None:
    body, _ = data.draw(mutated())
    boundary = b"outer-b" if b"--outer-b" in body[:200] else b"----=_Part_139078_1411587550"
    whole = _decode(boundary, [body])
    assert _decode(boundary, data.draw(chunkings(body))) == whole


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_decoder_time_per_byte_on_repeated_delimiter_pieces(data: st.DataObject) -> None:
    # half a megabyte made of the decoder's own pieces (delimiters, line ends, blanks, header
    # text), whole or chunked: a Python step per byte or a quadratic step would take seconds
    piece = data.draw(st.lists(_TOKENS, min_size=1, max_size=6).map(b"".join))
    body = data.draw(_DECODER_INPUT) + piece * (500_000 // len(piece) + 1)
    size = data.draw(st.sampled_from([len(body), 65536, 4099]))
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    started = time.perf_counter()
    _decode(b"b", chunks)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, (piece, size, elapsed)
