"""flask_mm7.wholebody.split_whole: the decoder's parts exactly, or None.

Whenever ``split_whole`` takes a body, the streaming decoder must give the same leaves (headers,
bytes, enclosing multiparts) and no defect; on any body it declines, the decoder decides. The
bodies: the relay corpus, the seed example, the benchmark's shapes, hand-made quirks, and
hypothesis mutations of well-formed bodies.
"""

from __future__ import annotations

import io
import typing as t

import pytest
from helpers import SEED_BOUNDARY, decoder_leaves, mm7_body, multipart, seed_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_relays import CASES

from flask_mm7.errors import MM7Error
from flask_mm7.headers import parse_options
from flask_mm7.parts import Limits, read_mime
from flask_mm7.wholebody import split_whole


def check(body: bytes, boundary: bytes, **limits: int) -> bool:
    """Assert the contract; True when split_whole took the body."""
    got = split_whole(body, boundary, **limits)
    if got is None:
        return False
    expected = decoder_leaves(body, boundary, **limits)
    assert not isinstance(expected, str), expected
    leaves, defects = expected
    assert defects == []
    assert got == leaves
    return True


def _boundary(content_type: str) -> bytes:
    return parse_options(content_type)[1]["boundary"].encode()


@pytest.mark.parametrize("name", list(CASES))
def test_relay_corpus(name: str) -> None:
    case = CASES[name]()
    boundary = parse_options(case.content_type)[1].get("boundary")
    if boundary:
        check(case.body, boundary.encode())


def test_seed_example_as_printed_is_left_to_the_decoder() -> None:
    """The printed example glues a delimiter to the XML and has a part without a blank line."""
    for line_ending in (b"\n", b"\r\n"):
        assert check(seed_body(line_ending), SEED_BOUNDARY.encode()) is False


@pytest.mark.parametrize("size", ["tiny", "typical", "many", "large"])
def test_benchmark_bodies_are_taken(size: str) -> None:
    from bench.bodies import make_body

    body = make_body(size, smoke=True)
    assert check(body.data, _boundary(body.content_type), max_parts=1000)


def _nested(outer: str = "out", inner: str = "in", inner_close: bool = True) -> bytes:
    inner_body = multipart(
        [(["Content-Type: image/gif", "Content-ID: <a>"], b"GIF89a"), (["X: y"], b"t")],
        inner,
        close=inner_close,
    )
    return multipart(
        [
            (["Content-Type: text/xml", "Content-ID: <soap>"], b"<x/>"),
            ([f'Content-Type: multipart/mixed; boundary="{inner}"'], inner_body),
            (["Content-Type: a/b"], b"last"),
        ],
        outer,
    )


TAKEN = {
    "flat": multipart([(["Content-Type: text/xml"], b"<x/>"), (["A: b"], b"data")], "b"),
    "nested": _nested(),
    "empty data": multipart([(["A: b"], b""), (["A: c"], b"\r\n")], "b"),
    "preamble and epilogue": multipart(
        [(["A: b"], b"x")], "b", preamble=b"junk - junk\r\n", epilogue=b"--b\r\nA: c\r\n\r\n"
    ),
    "multipart without boundary is a leaf": multipart(
        [(["Content-Type: multipart/mixed"], b"--zz\r\n\r\nq\r\n--zz--")], "b"
    ),
}

DECLINED = {
    "LF framing": (multipart([(["A: b"], b"x")], "b", nl=b"\n"), b"b"),
    "padding after delimiter": (b"--b \r\nA: b\r\n\r\nx\r\n--b--\r\n", b"b"),
    "glued delimiter": (b"--b\r\nA: b\r\n\r\nx--b--\r\n", b"b"),
    "near miss in data": (b"--b\r\nA: b\r\n\r\nx\r\n--b1 not\r\n--b--\r\n", b"b"),
    "no blank line": (b"--b\r\nA: b\r\nbody\r\n--b--\r\n", b"b"),
    "folded header": (b"--b\r\nA: b\r\n c\r\n\r\nx\r\n--b--\r\n", b"b"),
    "no close delimiter": (b"--b\r\nA: b\r\n\r\nx\r\n", b"b"),
    "inner close missing": (_nested(inner_close=False), b"out"),
    "inner delimiter extends the outer": (_nested(outer="b", inner="b1"), b"b"),
    "outer delimiter extends the inner": (_nested(outer="b1", inner="b"), b"b1"),
    "no headers": (b"--b\r\n\r\nx\r\n--b--\r\n", b"b"),
    # the inner close marker "--" is also the start of the outer delimiter: the decoder takes
    # it as the close, and the outer delimiter is gone (found by the random search)
    "inner close glued to the outer delimiter": (
        _nested().replace(b"\r\n--in--\r\n\r\n--out\r\n", b"\r\n--in--out\r\n"),
        b"out",
    ),
    "no delimiter": (b"just text", b"b"),
    "only a close delimiter": (b"--b--\r\n", b"b"),
}


@pytest.mark.parametrize("name", list(TAKEN))
def test_taken(name: str) -> None:
    assert check(TAKEN[name], b"out" if name == "nested" else b"b")


@pytest.mark.parametrize("name", list(DECLINED))
def test_declined(name: str) -> None:
    body, boundary = DECLINED[name]
    assert split_whole(body, boundary) is None


def test_limits_are_left_to_the_decoder() -> None:
    body = _nested()
    assert check(body, b"out")
    assert split_whole(body, b"out", max_parts=4) is None  # 5 parts
    assert split_whole(body, b"out", max_depth=1) is None
    assert split_whole(body, b"x" * 257) is None
    assert isinstance(decoder_leaves(body, b"out", max_parts=4), str)


_MUTATION = st.sampled_from(
    [b"\r", b"\n", b"\r\n", b"-", b"--", b" ", b":", b"\r\n\r\n", b"--out", b"--in", b"--in--",
     b"--out--", b"X", b"\t", b"Content-Type: multipart/mixed; boundary=in\r\n", b"\xa0",
     b"\r\n--in--", b"\r\n--out--\r\n", b"--out\r\nA: b\r\n\r\n", b"--in\r\nB: c\r\n\r\n"]
)  # fmt: skip


def _mutated(data: st.DataObject) -> bytes:
    """The nested body with up to three byte edits, many of them at delimiters, line breaks
    and header separators."""
    body = bytearray(_nested())
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(body)))
        cut = data.draw(st.integers(0, 3))
        body[at : at + cut] = data.draw(_MUTATION)
    return bytes(body)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_bodies(data: st.DataObject) -> None:
    check(_mutated(data), b"out", max_parts=8, max_depth=3)


def _read_both(body: bytes, content_type: str) -> tuple[object, object]:
    """read_mime with the body known whole (the fast path when it applies) and streamed in
    small chunks (the decoder always): each as comparable data, or the error."""

    def summary(**kwargs: t.Any) -> object:
        try:
            mime = read_mime(io.BytesIO(body), content_type, **kwargs)
        except MM7Error as error:
            return f"{type(error).__name__}: {error}"
        with mime:
            return [
                (p.index, p._raw_headers, p.getvalue(), p.container_ids)
                for p in (mime.root, *mime.parts)
            ], sorted(mime.defects)  # decoder and transfer defects interleave by chunking

    return (
        summary(content_length=len(body)),
        summary(limits=Limits(chunk_size=7, spool_threshold=1 << 30)),
    )


READ_MIME_CASES = {
    **{f"relay {name}": (lambda make=make: make()[:2]) for name, make in CASES.items()},
    "base64 and quoted-printable leaves": lambda: mm7_body(
        [
            (["Content-Type: image/gif", "Content-Transfer-Encoding: base64"], b"R0lG\r\nODlh"),
            (["Content-Type: text/plain", "Content-Transfer-Encoding: quoted-printable"],
             b"caf=C3=A9=\r\n!"),
            (["Content-Type: a/b", "Content-Transfer-Encoding: base64"], b"QQ=x"),
        ]
    ),
    "nested, start naming the second part": lambda: (
        _nested(),
        'multipart/related; boundary="out"; start="<a>"',
    ),
    "start in another case": lambda: (_nested(), 'multipart/related; boundary=out; start="SOAP"'),
    "start naming nothing": lambda: (_nested(), "multipart/related; boundary=out; start=zz"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(READ_MIME_CASES))
def test_read_mime_same_body_whole_or_streamed(name: str) -> None:
    body, content_type = READ_MIME_CASES[name]()
    whole, streamed = _read_both(body, content_type)
    assert whole == streamed
    if not name.startswith("relay"):  # these compare the fast path with the decoder
        assert split_whole(body, parse_options(content_type)[1]["boundary"].encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_read_mime_same_body_whole_or_streamed_on_mutated_bodies(data: st.DataObject) -> None:
    whole, streamed = _read_both(_mutated(data), 'multipart/related; boundary="out"')
    assert whole == streamed
