"""The stream driver: transfer decoding, root selection, bare XML bodies, spooling."""

from __future__ import annotations

import base64
import io
import quopri
import typing as t

import pytest
from helpers import SEED_CONTENT_TYPE, multipart, seed_body

from flask_mm7._attachments import AttachmentReleased
from flask_mm7._errors import LimitExceeded, MalformedRequest
from flask_mm7._parts import Limits, read_mime

BINARY = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n=3D="


def _read(body: bytes, content_type: str, chunk_size: int = 65536, **limits: object):  # type: ignore[no-untyped-def]
    return read_mime(io.BytesIO(body), content_type, limits=Limits(chunk_size=chunk_size, **limits))  # type: ignore[arg-type]


def _root_and(parts: list[tuple[list[str], bytes]]) -> bytes:
    return multipart([(["Content-Type: text/xml"], b"<Envelope/>"), *parts], "b")


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("base64", base64.encodebytes(BINARY)),
        ("BASE64", base64.encodebytes(BINARY)),
        ("Base64", base64.b64encode(BINARY)),  # one endless line
        ("quoted-printable", quopri.encodestring(BINARY)),
        ("Quoted-Printable", quopri.encodestring(BINARY)),
        ("binary", BINARY),
        ("8bit", BINARY),
        ("7bit", BINARY),
        ("x-unknown", BINARY),
        (None, BINARY),
    ],
)
@pytest.mark.parametrize("chunk_size", [1, 7, 100, 65536])
def test_transfer_encodings(encoding: str | None, encoded: bytes, chunk_size: int) -> None:
    headers = ["Content-Type: application/octet-stream"]
    if encoding:
        headers.append(f"Content-Transfer-Encoding: {encoding}")
    with _read(
        _root_and([(headers, encoded)]), "multipart/related; boundary=b", chunk_size
    ) as body:
        [part] = body.parts
        # QP carries line breaks as text line breaks: the stdlib codec is the oracle
        expected = quopri.decodestring(encoded) if "quoted" in (encoding or "").lower() else BINARY
        assert part.read() == expected
        assert part.size == len(expected)


def test_base64_with_junk_and_missing_padding() -> None:
    encoded = b"  aGVs\r\nbG8g*d29y!bGQ"  # "hello world" without padding, with stray bytes
    data = _root_and([(["Content-Transfer-Encoding: base64"], encoded)])
    with _read(data, "multipart/related; boundary=b") as body:
        assert body.parts[0].read() == b"hello world"


def test_bad_base64_never_raises() -> None:
    data = _root_and([(["Content-Transfer-Encoding: base64"], b"a===b=c")])
    with _read(data, "multipart/related; boundary=b") as body:
        assert isinstance(body.parts[0].read(), bytes)


@pytest.mark.parametrize(
    ("start", "ids"),
    [
        ('"<soap>"', "soap"),
        ("soap", "soap"),
        ('" <soap> "', "soap"),
        ('"<missing>"', "first-xml"),
        (None, "first-xml"),
    ],
)
def test_root_selection(start: str | None, ids: str) -> None:
    body = multipart(
        [
            (["Content-Type: image/gif", "Content-ID: <img>"], b"GIF"),
            (["Content-Type: text/xml", "Content-ID: <first-xml>"], b"<a/>"),
            (["Content-Type: text/xml", "Content-ID: soap "], b"<Envelope/>"),
        ],
        "b",
    )
    content_type = "multipart/related; boundary=b" + (f"; start={start}" if start else "")
    with _read(body, content_type) as mime:
        assert mime.root.content_id == ids
        assert [p.content_id for p in mime.parts] == [
            i for i in ("img", "first-xml", "soap") if i != ids
        ]


def test_root_is_first_part_when_nothing_is_xml() -> None:
    body = multipart([(["Content-Type: application/octet-stream"], b"<E/>"), ([], b"x")], "b")
    with _read(body, "multipart/related; boundary=b") as mime:
        assert mime.root.read() == b"<E/>"


def test_upper_case_parameters_and_content_location() -> None:
    body = multipart(
        [
            (["Content-Type: text/xml", "Content-Location: soap.xml"], b"<E/>"),
            (["Content-Type: image/gif", "Content-Location: Bomb.gif"], b"GIF"),
        ],
        "b",
    )
    content_type = 'Multipart/Related; TYPE="text/xml"; START="soap.xml"; BOUNDARY="b"'
    with _read(body, content_type) as mime:
        assert mime.root.content_location == "soap.xml"
        assert mime.parts[0].filename == "Bomb.gif"
        assert mime.find("Bomb.gif") == [mime.parts[0]]


@pytest.mark.parametrize("reference", ["cid:default.cid", "cid: default.cid", "cid:<default.cid>"])
def test_find_by_content_id_of_container(reference: str) -> None:
    with _read(seed_body(), SEED_CONTENT_TYPE) as mime:
        assert [p.content_id for p in mime.find(reference)] == ["image_0.jpg", "text_0.txt"]
        assert [p.content_id for p in mime.find("cid:text_0.txt")] == ["text_0.txt"]
        assert mime.find("cid:nothing") == []


@pytest.mark.parametrize(
    "content_type",
    ["text/xml", "text/xml; charset=utf-8", "application/soap+xml", "multipart/related"],
)
def test_bare_xml_body(content_type: str) -> None:
    with _read(b"<Envelope/>", content_type) as mime:
        assert mime.root.read() == b"<Envelope/>"
        assert mime.parts == []


def test_multipart_without_boundary_sniffs_it_from_the_body() -> None:
    body = multipart([(["Content-Type: text/xml"], b"<E/>"), ([], b"x")], "sniffed")
    with _read(b"\r\n" + body, "multipart/related; type=text/xml") as mime:
        assert mime.root.read() == b"<E/>"
        assert [p.read() for p in mime.parts] == [b"x"]


@pytest.mark.parametrize(("size", "ok"), [(99, True), (100, True), (101, False)])
def test_bare_soap_size_limit(size: int, ok: bool) -> None:
    if ok:
        assert _read(b"x" * size, "text/xml", max_soap_size=100).root.size == size
    else:
        with pytest.raises(LimitExceeded):
            _read(b"x" * size, "text/xml", max_soap_size=100)


def test_only_containers_is_malformed() -> None:
    inner = multipart([], "i")
    body = multipart([(["Content-Type: multipart/mixed; boundary=i"], inner)], "b")
    with pytest.raises(MalformedRequest):
        _read(body, "multipart/related; boundary=b")


def test_large_parts_spool_to_disk(tmp_path: object) -> None:
    payload = b"z" * 5000
    body = _root_and([(["Content-Type: video/3gpp"], payload), ([], b"small")])
    mime = _read(body, "multipart/related; boundary=b", chunk_size=512, spool_threshold=1024)
    big, small = mime.parts
    assert not isinstance(big.stream, io.BytesIO) and isinstance(small.stream, io.BytesIO)
    assert big.read() == payload and big.size == 5000
    out = io.BytesIO()
    big.save(out)
    assert out.getvalue() == payload
    spool = mime._spool.file
    assert spool is not None and not spool.closed
    mime.close()
    assert spool.closed


@pytest.mark.parametrize("where", ["memory", "spooled"])
def test_an_attachment_read_after_its_request_says_it_was_released(where: str) -> None:
    payload = b"z" * 5000
    body = _root_and([(["Content-Type: text/plain"], payload)])
    threshold = 1024 if where == "spooled" else 1 << 20
    mime = _read(body, "multipart/related; boundary=b", chunk_size=512, spool_threshold=threshold)
    (part,) = mime.parts
    mime.close()
    for read in (part.read, part.getvalue, lambda: part.text, lambda: part.save(io.BytesIO())):
        with pytest.raises(AttachmentReleased, match="released when its request ended"):
            read()
    assert part.size == 5000 and part.mimetype == "text/plain"  # its description stays


def test_spooled_files_are_closed_when_parsing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    opened = []
    real = tempfile.TemporaryFile

    def tracking(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        handle = real(*args, **kwargs)  # type: ignore[call-overload]
        opened.append(handle)
        return handle

    monkeypatch.setattr(tempfile, "TemporaryFile", tracking)
    body = multipart(
        [(["Content-Type: text/xml"], b"<E/>"), ([], b"y" * 5000)], "b", close=False
    ) + (b"--b\r\n" + b"X: y\r\n" * 5000)
    with pytest.raises(LimitExceeded):
        _read(body, "multipart/related; boundary=b", chunk_size=512, spool_threshold=1024)
    assert len(opened) == 1 and opened[0].closed


def _snapshot(body: bytes, content_type: str, content_length: int | None, chunk_size: int):  # type: ignore[no-untyped-def]
    """Everything read_mime tells about a body, as plain data."""
    limits = Limits(chunk_size=chunk_size, spool_threshold=1 << 30)
    with read_mime(
        io.BytesIO(body), content_type, limits=limits, content_length=content_length
    ) as result:
        return [
            (part._raw_headers, part.getvalue(), part.container_ids, part.index)
            for part in (result.root, *result.parts)
        ], result.defects


def _one_piece_cases() -> dict[str, tuple[bytes, str]]:
    from test_mime import QUIRKS  # the framing quirks, one body each

    cases = {name: (body, "multipart/related; boundary=b") for name, body in QUIRKS.items()}
    cases["seed-lf"] = (seed_body(), SEED_CONTENT_TYPE)
    cases["seed-crlf"] = (seed_body(b"\r\n"), SEED_CONTENT_TYPE)
    cases["encodings"] = (
        _root_and(
            [
                (["Content-Transfer-Encoding: base64"], base64.encodebytes(BINARY)),
                (["Content-Transfer-Encoding: quoted-printable"], quopri.encodestring(BINARY)),
                (["Content-Type: image/png"], BINARY),
            ]
        ),
        "multipart/related; boundary=b",
    )
    return cases


@pytest.mark.parametrize(
    ("body", "content_type"), _one_piece_cases().values(), ids=_one_piece_cases().keys()
)
def test_body_read_in_one_piece_gives_what_streaming_gives(body: bytes, content_type: str) -> None:
    # content_length within max_memory_body_size: read_mime reads and decodes it in one piece
    whole = _snapshot(body, content_type, len(body), 65536)
    for chunk_size in (1, 7, 100, 65536):
        assert _snapshot(body, content_type, None, chunk_size) == whole


def test_start_and_href_match_ignoring_case_and_percent_encoding() -> None:
    body = multipart(
        [
            (["Content-Type: image/gif", "Content-ID: <first>"], b"GIF"),
            (["Content-Type: text/xml", "Content-ID: <SOAP-Start>"], b"<Envelope/>"),
            (["Content-Type: image/png", "Content-ID: <pic@host>"], b"PNG"),
        ],
        "b",
    )
    with _read(body, 'multipart/related; boundary=b; start="<soap-start>"') as mime:
        assert mime.root.content_id == "SOAP-Start"
        assert "start parameter matches a Content-ID in another case" in mime.defects
        assert [p.content_id for p in mime.find("cid:pic%40host")] == ["pic@host"]
        assert [p.content_id for p in mime.find("cid:PIC@HOST")] == ["pic@host"]
        assert [p.content_id for p in mime.find("cid:first")] == ["first"]


def test_parts_read_or_spooled_cannot_be_read_after_close() -> None:
    """A spooled part, one whose whole content was read, and one never read: after close()
    each says it was released (ValueError, as a closed file does)."""
    body = read_mime(
        io.BytesIO(seed_body(b"\r\n")), SEED_CONTENT_TYPE, limits=Limits(spool_threshold=10)
    )
    small = read_mime(io.BytesIO(seed_body(b"\r\n")), SEED_CONTENT_TYPE)
    spooled = [p for p in body.parts if not isinstance(p.stream, io.BytesIO)]
    assert spooled
    read_whole, never_read = small.parts[0], small.parts[1]
    assert read_whole.read()
    body.close()
    small.close()
    for part in [*spooled, read_whole, never_read]:
        for read in (part.read, lambda p=part: p.read(5), part.getvalue, lambda p=part: p.stream):
            with pytest.raises(ValueError, match="released"):
                read()


def test_a_spooled_part_is_read_back_in_few_reads_of_the_spool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``read()`` of a spooled part reads the spool file once, not 8 KiB at a time (a Python
    step per 8 KiB made reading a spooled part back dearer than parsing and spooling it)."""
    import tempfile

    reads: list[int] = []
    real = tempfile.TemporaryFile

    class Counting:
        def __init__(self, file: t.Any) -> None:
            self._file = file

        def __getattr__(self, name: str) -> t.Any:
            return getattr(self._file, name)

        def read(self, size: int = -1) -> bytes:
            reads.append(size)
            return self._file.read(size)  # type: ignore[no-any-return]

        def readinto(self, buffer: t.Any) -> int:
            reads.append(len(buffer))
            return self._file.readinto(buffer)  # type: ignore[no-any-return]

    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **kw: Counting(real(**kw)))
    payload = bytes(range(256)) * 4096  # 1 MiB
    body = _root_and([(["Content-Type: video/mp4"], payload), ([], b"small")])
    with _read(body, "multipart/related; boundary=b", spool_threshold=1024) as mime:
        big = mime.parts[0]
        assert not isinstance(big.stream, io.BytesIO)
        assert big.read() == payload
        assert len(reads) <= 2
        reads.clear()
        big.stream.seek(1000)
        chunks = iter(lambda: big.read(65536), b"")
        assert b"".join(chunks) == payload[1000:]
        assert len(reads) <= 20  # 16 reads of 64 KiB, straight into the caller's buffer
