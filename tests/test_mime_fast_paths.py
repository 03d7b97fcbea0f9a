"""The decoder's quick header path gives exactly what its general path gives.

``MultipartDecoder`` takes a usual header block (CRLF lines, all headers, then a blank line)
with a search and one anchored regex, and hands every other block to the general regex path.
These tests run each body again with the quick path switched off, whole and cut into chunks,
and compare the events and defects.
"""

from __future__ import annotations

import pytest
from helpers import SEED_BOUNDARY, flatten_events, seed_body, splits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_mm7.errors import MM7Error
from flask_mm7.mime import MultipartDecoder


def _decode(chunks: list[bytes], boundary: bytes, quick: bool) -> tuple[object, ...]:
    decoder = MultipartDecoder(boundary, max_header_size=4096)
    if not quick:
        decoder._quick_window = 0
    events: list[object] = []
    try:
        for chunk in chunks:
            events.extend(decoder.feed(chunk))
        events.extend(decoder.close())
    except MM7Error as error:
        return ("error", type(error).__name__, str(error))
    return (flatten_events(events), tuple(decoder.defects))


def assert_same(body: bytes, boundary: bytes = b"b") -> None:
    expected = _decode([body], boundary, quick=False)
    assert _decode([body], boundary, quick=True) == expected
    for chunks in splits(body):
        assert _decode(chunks, boundary, quick=True) == expected


HEADER_BLOCKS = {
    "usual": b"Content-Type: text/plain\r\nContent-ID: <a>\r\n\r\n",
    "one header": b"Content-Type: text/plain\r\n\r\n",
    "no headers": b"\r\n",
    "no headers, data starts with a blank line": b"\r\n\r\n",
    "lone CR between headers": b"Content-Type: text/plain\rContent-ID: <a>\r\n\r\n",
    "lone LF between headers": b"Content-Type: text/plain\nContent-ID: <a>\r\n\r\n",
    "LF before a non-header line": b"Content-Type: text/plain\nnot a header\r\n\r\n",
    "LF-only block": b"Content-Type: text/plain\nContent-ID: <a>\n\n",
    "CR-only block": b"Content-Type: text/plain\rContent-ID: <a>\r\r",
    "folded header": b"Content-Type: text/plain;\r\n charset=utf-8\r\nContent-ID: <a>\r\n\r\n",
    "tab-folded header": b"Content-Type: text/plain;\r\n\tcharset=utf-8\r\n\r\n",
    "no blank line (OpenMarket)": b"Content-Type: text/plain\r\nContent-ID: <a>\r\nhello\r\n",
    "non-header line then blank": b"Content-Type: text/plain\r\nhello world\r\n\r\n",
    "name with a space before the colon": b"Content-Type : text/plain\r\n\r\n",
    "words then a colon": b"Content-Type: text/plain\r\nfoo bar: baz\r\n\r\n",
    "blank line with spaces": b"Content-Type: text/plain\r\n  \r\n\r\n",
    "U+00A0 padding, UTF-8": "Content-ID: \u00a0<a>\u00a0\r\n\r\n".encode(),
    "Latin-1 value": b"Content-Description: caf\xe9\r\n\r\n",
    "empty value": b"Content-ID:\r\nContent-Type: text/plain\r\n\r\n",
    "trailing blanks in value": b"Content-ID: <a>  \t\r\n\r\n",
    "nested multipart": b'Content-Type: multipart/mixed; boundary="c"\r\n\r\n',
    "header-like data after the blank line": b"Content-ID: <a>\r\n\r\nX: y\r\n\r\n",
}


@pytest.mark.parametrize("name", list(HEADER_BLOCKS))
def test_quick_path_matches_general_path(name: str) -> None:
    block = HEADER_BLOCKS[name]
    body = (
        b"--b\r\n" + block + b"data line\r\n--b\r\n"
        b"Content-Type: text/xml\r\n\r\n<x/>\r\n"
        b"--b\r\n" + block + b"more\r\n--b--\r\n"
    )
    assert_same(body)


def test_quick_path_matches_general_path_on_the_seed_example() -> None:
    for line_ending in (b"\n", b"\r\n"):
        assert_same(seed_body(line_ending), SEED_BOUNDARY.encode())


def test_block_longer_than_the_quick_window_goes_the_general_way() -> None:
    long_value = b"x" * 3000
    assert_same(b"--b\r\nContent-Description: " + long_value + b"\r\n\r\ndata\r\n--b--\r\n")


_LINE_PIECES = st.sampled_from(
    [b"Content-Type", b"Content-ID", b"X", b"a b", b"", b" ", b"\t", b":", b": ", b"v",
     b"<id>", b"\xa0", b"\xc2\xa0", b"\xe9", b"\r\n", b"\n", b"\r", b"--", b"--b"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_LINE_PIECES, max_size=6).map(b"".join), max_size=6))
def test_quick_path_matches_general_path_on_generated_blocks(lines: list[bytes]) -> None:
    block = b"\r\n".join(lines) + b"\r\n\r\n"
    assert_same(b"--b\r\n" + block + b"data\r\n--b\r\n" + block + b"--b--\r\n")


def _long_nested_body(inner_data: bytes, inner_close: bool = True) -> bytes:
    outer, inner = b"----=_Part_1_1111111111.1234567890", b"----=_Part_2_2222222222.1234567890"
    body = (
        b"--" + outer + b"\r\nContent-Type: text/xml\r\n\r\n<x/>\r\n"
        b"--" + outer + b'\r\nContent-Type: multipart/mixed; boundary="' + inner + b'"\r\n\r\n'
        b"--" + inner + b"\r\nContent-Type: image/jpeg\r\n\r\n" + inner_data + b"\r\n"
        b"--" + inner + b"\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    )
    if inner_close:
        body += b"--" + inner + b"--\r\n"
    return body + b"--" + outer + b"\r\nContent-Type: a/b\r\n\r\nlast\r\n--" + outer + b"--\r\n"


LONG = bytes(range(256)) * 400  # 100 KiB: cut by every chunk size below


@pytest.mark.parametrize(
    "name",
    ["plain", "near misses", "outer delimiter inside", "inner close missing", "glued"],
)
def test_long_nested_parts_whole_and_chunked(name: str) -> None:
    """Parts longer than a chunk inside a nested multipart, with near-miss and outer
    delimiters in their data: the same events however the body is cut."""
    outer, inner = (
        b"--" + b"----=_Part_1_1111111111.1234567890",
        b"--" + b"----=_Part_2_2222222222.1234567890",
    )
    data = {
        "plain": LONG,
        "near misses": LONG[:70000] + inner[:-1] + b"X" + LONG[:50000] + outer[:20] + LONG[:9000],
        "outer delimiter inside": LONG[:80000] + b"\r\n" + outer + b"\r\nX: y\r\n\r\n" + LONG,
        "inner close missing": LONG,
        "glued": LONG[:90000] + inner + b"1" + LONG[:10],
    }[name]
    body = _long_nested_body(data, inner_close=name != "inner close missing")
    boundary = b"----=_Part_1_1111111111.1234567890"
    expected = _decode([body], boundary, quick=False)
    assert _decode([body], boundary, quick=True) == expected
    for size in (1000, 65536, 65537, 100_003):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert _decode(chunks, boundary, quick=True) == expected
        assert _decode(chunks, boundary, quick=False) == expected
