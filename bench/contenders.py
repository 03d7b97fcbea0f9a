"""The parsers under test, each behind one signature: ``run(stream, content_type, sink)``.

Every contender reads the HTTP body from ``stream`` (a file-like object, read in 64 KiB
chunks unless the library does its own reading), follows the nested ``multipart/mixed`` part
(recursing into it: every contender must reach the leaf parts, so the comparison is fair) and
hands the root part and every leaf part to ``sink``: ``sink.begin()``, ``sink.feed(bytes)``
any number of times, ``sink.end()``. :class:`CollectSink` copies the parts out (what the
timings use); :class:`CountSink` only counts bytes (what the memory probes use).

How the third-party parsers are made to accept MM7 parts, which carry no
``Content-Disposition`` (they are form-data parsers):

* ``multipart`` (``PushMultipartParser``): a subclass overrides the documented hook
  ``_create_segment`` to build the ``MultipartSegment`` without the form-data check.
* ``werkzeug`` (``werkzeug.sansio.multipart.MultipartDecoder``): a subclass overrides
  ``_parse_headers`` to add ``Content-Disposition: form-data; name="part"`` when absent.
* ``python-multipart`` (``python_multipart.MultipartParser``): its callback API does not look
  at the headers, nothing to patch.
* ``email`` (stdlib): ``BytesFeedParser()`` with the default policy (``compat32``, what
  ``email.message_from_bytes`` uses and what a hand-written receiver does) fed the HTTP
  headers and the body in 64 KiB chunks (what ``BytesParser.parse`` does, without the extra
  copy), then ``walk()`` and ``get_payload(decode=True)`` for every leaf. ``email-http`` is
  the same with ``policy=email.policy.HTTP`` (2-3x dearer; the earlier runs' ``email`` row).

A contender whose library is missing is listed with ``available() == False`` and printed
"n/a" (``ours`` too, until ``flask_mm7._parts`` exists).
"""

from __future__ import annotations

import email.parser
import email.policy
import importlib
import io
import tempfile
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Callable, Dict, List, Optional, Tuple, Union

CHUNK = 64 * 1024


class CollectSink:
    """Copies every part out as one ``bytes``: ``parts`` is [root, leaf, leaf, ...]."""

    __slots__ = ("parts", "_cur")

    def __init__(self) -> None:
        self.parts: List[bytes] = []
        self._cur: List[bytes] = []

    def begin(self) -> None:
        self._cur = []

    def feed(self, data: bytes) -> None:
        self._cur.append(data)

    def end(self) -> None:
        cur = self._cur
        self.parts.append(cur[0] if len(cur) == 1 else b"".join(cur))
        self._cur = []


class CountSink:
    """Counts parts and bytes and keeps nothing (for the memory probes)."""

    __slots__ = ("count", "nbytes")

    def __init__(self) -> None:
        self.count = 0
        self.nbytes = 0

    def begin(self) -> None:
        self.count += 1

    def feed(self, data: bytes) -> None:
        self.nbytes += len(data)

    def end(self) -> None:
        pass


Sink = Any  # CollectSink | CountSink: anything with begin/feed/end
RunFn = Callable[[BinaryIO, str, Sink], None]


def boundary_of(content_type: str) -> bytes:
    """The ``boundary`` parameter of a multipart Content-Type (quoted or not)."""
    lower = content_type.lower()
    i = lower.find("boundary=")
    if i < 0:
        raise ValueError(f"no boundary in {content_type!r}")
    value = content_type[i + 9 :].strip()
    if value.startswith('"'):
        return value[1 : value.index('"', 1)].encode("latin-1")
    return value.split(";", 1)[0].strip().encode("latin-1")


# --------------------------------------------------------------------------------------
# floor: the least work a streaming parser can do in Python
# --------------------------------------------------------------------------------------


def _floor_delimiter(
    buf: bytes, pos: int, i: int, stack: List[bytes], read: Any, sink: Sink, in_body: bool
) -> Optional[Tuple[bytes, int, bool]]:
    """The floors' step at the delimiter ``stack[-1]`` found at ``buf[i]``: the part being fed
    ends; a close delimiter closes its level (None: the body is done), else the next part's
    headers (read up to the blank line) open a leaf or a nested level. Returns the buffer,
    where parsing goes on, and whether a leaf's payload follows."""
    delim = stack[-1]
    if in_body:
        sink.feed(buf[pos:i])
        sink.end()
        in_body = False
    j = i + len(delim)
    if buf[j : j + 2] == b"--":  # close delimiter
        stack.pop()
        return (buf, j + 2, False) if stack else None
    while True:  # headers: up to the blank line
        k = buf.find(b"\r\n\r\n", j)
        if k >= 0:
            break
        more = read(CHUNK)
        if not more:
            raise ValueError("floor: body ends inside part headers")
        buf = buf[pos:] + more
        j -= pos
        pos = 0
    headers = buf[j:k]
    m = headers.find(b"multipart/")
    if m < 0:
        sink.begin()
        return buf, k + 4, True
    stack.append(b"\r\n--" + boundary_of(headers[m:].decode("latin-1")))
    return buf, k + 2, False  # the nested first delimiter follows the blank line's CRLF


def run_floor(stream: BinaryIO, content_type: str, sink: Sink) -> None:
    """The reference: 64 KiB reads, delimiters found with ``bytes.find``, parts copied out,
    and no copy beyond that: a chunk is searched where it was read.

    :func:`run_floor_old` prepended a CRLF to the body and joined every chunk to the
    remainder of the last one (``buf[pos:] + more``): one more copy of every byte. Here the
    first delimiter is matched at the start, and a new chunk replaces the buffer unless a
    delimiter (or a header block) straddles the two: the few bytes of the old chunk that
    could start one are checked against the head of the new chunk, and fed on their own
    when they do not. Headers are read as :func:`run_floor_old` reads them.
    """
    read = stream.read
    stack = [b"\r\n--" + boundary_of(content_type)]
    buf = read(CHUNK)
    eof = not buf
    while len(buf) < len(stack[0]) and not eof:
        more = read(CHUNK)
        eof = not more
        buf += more
    pos = 0
    at_start = buf.startswith(stack[0][2:])  # the first delimiter, at the very start
    in_body = False  # False: preamble/epilogue (skip), True: a leaf's payload (feed)
    while True:
        delim = stack[-1]
        if at_start:
            i, at_start = -2, False  # as if the body began with the CRLF
        else:
            i = buf.find(delim, pos)
        if i == -1 or len(buf) < i + len(delim) + 2:
            if eof:
                raise ValueError("floor: body ends inside a part")
            more = read(CHUNK)
            eof = not more
            if i == -1:
                keep = len(buf) - len(delim) - 1  # a delimiter may straddle the chunks
                if keep > pos:
                    if in_body:
                        sink.feed(buf[pos:keep])
                    pos = keep
                tail = buf[pos:]
                hit = (tail + more[: len(delim) + 2]).find(delim)
                if len(more) > len(delim) + 1 and (hit < 0 or hit >= len(tail)):  # no join
                    if in_body and tail:
                        sink.feed(tail)
                    buf, pos = more, 0
                    continue
            buf = buf[pos:] + more
            pos = 0
            continue
        step = _floor_delimiter(buf, pos, i, stack, read, sink, in_body)
        if step is None:
            return
        buf, pos, in_body = step


def run_floor_old(stream: BinaryIO, content_type: str, sink: Sink) -> None:
    """The floor of the earlier runs: as :func:`run_floor`, but ``read`` + ``buf[pos:] +
    more`` copies every chunk once more (kept to compare with the earlier figures).

    Headers are not parsed beyond spotting a nested ``multipart/`` part and its boundary;
    a stack of delimiters follows the nesting in one pass over the body.
    """
    read = stream.read
    stack = [b"\r\n--" + boundary_of(content_type)]
    buf = b"\r\n" + read(CHUNK)  # so the first delimiter matches like the others
    pos = 0
    eof = False
    in_body = False  # False: preamble/epilogue (skip), True: a leaf's payload (feed)
    while True:
        delim = stack[-1]
        i = buf.find(delim, pos)
        if i < 0 or len(buf) < i + len(delim) + 2:
            if eof:
                raise ValueError("floor: body ends inside a part")
            if i < 0:
                keep = len(buf) - len(delim) - 1  # a delimiter may straddle the chunks
                if keep > pos:
                    if in_body:
                        sink.feed(buf[pos:keep])
                    pos = keep
            more = read(CHUNK)
            eof = not more
            buf = buf[pos:] + more
            pos = 0
            continue
        step = _floor_delimiter(buf, pos, i, stack, read, sink, in_body)
        if step is None:
            return
        buf, pos, in_body = step


# --------------------------------------------------------------------------------------
# multipart (PyPI), PushMultipartParser
# --------------------------------------------------------------------------------------


def _multipart_parser_class() -> Any:
    import multipart

    class MimePushParser(multipart.PushMultipartParser):  # type: ignore[misc,name-defined]
        """Accepts parts without Content-Disposition (MIME, not form-data)."""

        def _create_segment(self, headerlist: List[Tuple[str, str]]) -> Any:
            return multipart.MultipartSegment(headerlist)

    return MimePushParser


_MP_CLASS: Any = None


def _mp_class() -> Any:
    global _MP_CLASS
    if _MP_CLASS is None:
        _MP_CLASS = _multipart_parser_class()
    return _MP_CLASS


def run_multipart(stream: BinaryIO, content_type: str, sink: Sink) -> None:
    """``multipart.PushMultipartParser`` (subclassed), recursing into nested multiparts."""
    _run_multipart_chunked(stream, content_type, sink, CHUNK)


class _SpoolingSink:
    """Keeps each part in memory until it passes ``threshold`` bytes, then in its own
    ``tempfile.TemporaryFile``: what a lean streaming receiver does with the parser's output."""

    __slots__ = ("threshold", "spool_dir", "parts", "_chunks", "_size", "_file")

    def __init__(self, threshold: int, spool_dir: Optional[str]) -> None:
        self.threshold = threshold
        self.spool_dir = spool_dir
        #: finished parts: their bytes, or their temporary file
        self.parts: List[Union[bytes, IO[bytes]]] = []
        self._chunks: List[bytes] = []
        self._size = 0
        self._file: Optional[IO[bytes]] = None

    def begin(self) -> None:
        self._chunks, self._size, self._file = [], 0, None

    def feed(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)
            return
        self._chunks.append(data)
        self._size += len(data)
        if self._size > self.threshold:
            self._file = tempfile.TemporaryFile(dir=self.spool_dir)  # noqa: SIM115
            self._file.writelines(self._chunks)
            self._chunks = []

    def end(self) -> None:
        self.parts.append(b"".join(self._chunks) if self._file is None else self._file)
        self._chunks, self._file = [], None

    def close(self) -> None:
        for part in self.parts:
            if not isinstance(part, bytes):
                part.close()
        if self._file is not None:
            self._file.close()


def multipart_spool_runner(threshold: int, chunk: int, spool_dir: Optional[str] = None) -> RunFn:
    """A lean streaming receiver on ``multipart.PushMultipartParser``: reads the body in
    ``chunk``-byte reads, keeps each part in memory up to ``threshold`` bytes and spools a
    larger one to its own temporary file, then hands every part to the sink (a spooled one
    read back with ``read()``, or in 64 KiB reads when the sink only counts: as ours)."""

    def run(stream: BinaryIO, content_type: str, sink: Sink) -> None:
        spool = _SpoolingSink(threshold, spool_dir)
        try:
            _run_multipart_chunked(stream, content_type, spool, chunk)
            streaming = isinstance(sink, CountSink)
            for part in spool.parts:
                sink.begin()
                if isinstance(part, bytes):
                    sink.feed(part)
                else:
                    part.seek(0)
                    _feed_file(sink, part, streaming)
                sink.end()
        finally:
            spool.close()

    return run


def _run_multipart_chunked(stream: BinaryIO, content_type: str, sink: Sink, size: int) -> None:
    """``multipart.PushMultipartParser`` over reads of ``size`` bytes, recursing."""
    cls = _mp_class()
    outer = cls(boundary_of(content_type), max_header_count=32)
    # one level of nesting is what MM7 uses; the inner parser is fed the nested part's body
    # chunks as the outer parser yields them (streaming, no extra copy)
    inner: Any = None
    read = stream.read

    def feed_inner(chunk: bytes) -> None:
        for ev in inner.parse(chunk):
            if ev is None:
                sink.end()
            elif isinstance(ev, bytes):
                sink.feed(ev)
            else:
                sink.begin()

    while not outer.closed:
        chunk = read(size)
        for ev in outer.parse(chunk):
            if ev is None:
                if inner is None:
                    sink.end()
                else:
                    feed_inner(b"")  # end of input for the nested parser
                    inner = None
            elif isinstance(ev, bytes):
                if inner is None:
                    sink.feed(ev)
                else:
                    feed_inner(ev)
            elif (ev.content_type or "").startswith("multipart/"):
                inner = cls(boundary_of(ev.header("Content-Type")), max_header_count=32)
            else:
                sink.begin()


# --------------------------------------------------------------------------------------
# python-multipart
# --------------------------------------------------------------------------------------


class _PMHandler:
    """Callbacks for one ``python_multipart.MultipartParser`` level."""

    def __init__(self, mod: Any, boundary: bytes, sink: Sink) -> None:
        self.mod = mod
        self.sink = sink
        self.field: bytes = b""
        self.value: bytes = b""
        self.ctype: Optional[bytes] = None
        self.inner: Optional[Any] = None
        self.parser = mod.MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self.on_part_begin,
                "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value,
                "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished,
                "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end,
            },
        )

    def on_part_begin(self) -> None:
        self.ctype = None
        self.field = b""
        self.value = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        if self.field.lower() == b"content-type":
            self.ctype = self.value
        self.field = b""
        self.value = b""

    def on_headers_finished(self) -> None:
        if self.ctype is not None and self.ctype.lower().startswith(b"multipart/"):
            self.inner = _PMHandler(
                self.mod, boundary_of(self.ctype.decode("latin-1")), self.sink
            )
        else:
            self.sink.begin()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.inner is not None:
            self.inner.parser.write(data[start:end])
        else:
            self.sink.feed(data[start:end])

    def on_part_end(self) -> None:
        if self.inner is not None:
            self.inner.parser.finalize()
            self.inner = None
        else:
            self.sink.end()


def run_python_multipart(stream: BinaryIO, content_type: str, sink: Sink) -> None:
    """``python_multipart.MultipartParser`` with callbacks, recursing into nested parts."""
    mod = importlib.import_module("python_multipart")
    handler = _PMHandler(mod, boundary_of(content_type), sink)
    write = handler.parser.write
    read = stream.read
    while True:
        chunk = read(CHUNK)
        if not chunk:
            break
        write(chunk)
    handler.parser.finalize()


# --------------------------------------------------------------------------------------
# Werkzeug sans-IO MultipartDecoder
# --------------------------------------------------------------------------------------


def _werkzeug_decoder_class() -> Any:
    from werkzeug.datastructures import Headers
    from werkzeug.sansio.multipart import MultipartDecoder

    class MimeDecoder(MultipartDecoder):
        """Adds a form-data Content-Disposition to parts that have none."""

        def _parse_headers(self, data: Any) -> Headers:
            headers = super()._parse_headers(data)
            if "content-disposition" not in headers:
                headers.add("Content-Disposition", 'form-data; name="part"')
            return headers

    return MimeDecoder


_WZ_CLASS: Any = None


def run_werkzeug(stream: BinaryIO, content_type: str, sink: Sink) -> None:
    """``werkzeug.sansio.multipart.MultipartDecoder`` (subclassed), recursing."""
    from werkzeug.sansio import multipart as wz

    global _WZ_CLASS
    if _WZ_CLASS is None:
        _WZ_CLASS = _werkzeug_decoder_class()
    cls = _WZ_CLASS
    need_data, data_t, field_t, epilogue_t = wz.NeedData, wz.Data, (wz.Field, wz.File), wz.Epilogue

    def pump(dec: Any, chunk: Optional[bytes], inner_box: List[Any]) -> bool:
        """Feed ``chunk`` to ``dec`` and dispatch its events; True once it is complete."""
        dec.receive_data(chunk)
        while True:
            ev = dec.next_event()
            if isinstance(ev, need_data):
                return False
            if isinstance(ev, epilogue_t):
                return True
            if isinstance(ev, data_t):
                if inner_box:
                    inner_dec, inner_inner = inner_box[0]
                    pump(inner_dec, ev.data, inner_inner)
                    if not ev.more_data:
                        pump(inner_dec, None, inner_inner)
                        inner_box.clear()
                else:
                    sink.feed(ev.data)
                    if not ev.more_data:
                        sink.end()
            elif isinstance(ev, field_t):
                ctype = ev.headers.get("content-type", "")
                if ctype.lower().startswith("multipart/"):
                    inner_box.append((cls(boundary_of(ctype)), []))
                else:
                    sink.begin()

    dec = cls(boundary_of(content_type))
    box: List[Any] = []
    read = stream.read
    while True:
        chunk = read(CHUNK)
        if not chunk:
            pump(dec, None, box)
            return
        pump(dec, chunk, box)


# --------------------------------------------------------------------------------------
# stdlib email
# --------------------------------------------------------------------------------------


def _email_runner(policy: Any) -> RunFn:
    def run(stream: BinaryIO, content_type: str, sink: Sink) -> None:
        _run_email(stream, content_type, sink, policy)

    return run


def _run_email(stream: BinaryIO, content_type: str, sink: Sink, policy: Any) -> None:
    """``email`` feed parser on the HTTP headers + body, then walk the parts."""
    parser = email.parser.BytesFeedParser(policy=policy)
    parser.feed(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1"))
    read = stream.read
    while True:
        chunk = read(CHUNK)
        if not chunk:
            break
        parser.feed(chunk)
    msg = parser.close()
    for part in msg.walk():
        if part.is_multipart():
            continue
        sink.begin()
        sink.feed(part.get_payload(decode=True))
        sink.end()


# --------------------------------------------------------------------------------------
# ours
# --------------------------------------------------------------------------------------


_OURS_READ_MIME: Any = None


def _ours_read_mime() -> Any:
    """``flask_mm7._parts.read_mime``, imported once (as ``run_multipart`` builds its class
    once): an ``import_module`` per parse cost ~1.5 µs, charged to ours alone."""
    global _OURS_READ_MIME
    if _OURS_READ_MIME is None:
        _OURS_READ_MIME = importlib.import_module("flask_mm7._parts").read_mime
    return _OURS_READ_MIME


def ours_limits() -> Any:
    """Limits for ``read_mime``: the library's defaults (``None``). ``read_mime`` bounds parts,
    nesting and header sizes, not the body size (the middleware does), so the 50 MB body
    passes with them; change this to benchmark other settings (e.g. ``spool_threshold``)."""
    return None


_OURS_LIMITS: Any = "unset"


def _stream_size(stream: BinaryIO) -> Optional[int]:
    """The bytes left in a seekable stream (a BytesIO or a file), else None."""
    try:
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
        return end - here
    except (AttributeError, OSError):
        return None


def run_ours(stream: BinaryIO, content_type: str, sink: Sink) -> None:
    """``flask_mm7._parts.read_mime`` and every part's bytes (``read()``, or the stream in
    64 KiB chunks when the sink only counts)."""
    global _OURS_LIMITS
    if _OURS_LIMITS == "unset":
        _OURS_LIMITS = ours_limits()
    # the middleware passes the request's Content-Length; a benchmark stream knows its size
    _run_ours(stream, content_type, sink, _OURS_LIMITS, _stream_size(stream))


def ours_runner(limits: Any, with_length: bool = True) -> RunFn:
    """:func:`run_ours` with these ``Limits``; ``with_length=False`` passes no Content-Length
    (a chunked upload: the streaming path whatever the body's size)."""

    def run(stream: BinaryIO, content_type: str, sink: Sink) -> None:
        _run_ours(stream, content_type, sink, limits,
                  _stream_size(stream) if with_length else None)  # fmt: skip

    return run


def _feed_file(sink: Sink, f: Any, streaming: bool) -> None:
    """One part's bytes from the file ``f`` to ``sink``: in 64 KiB reads when the sink only
    counts (nothing is kept), else in one ``read()``, as a handler would."""
    if streaming:
        while True:
            data = f.read(CHUNK)
            if not data:
                break
            sink.feed(data)
    else:
        sink.feed(f.read())


def _drain(body: Any, sink: Sink) -> None:
    """Every part of a ``MimeBody`` (root first) to ``sink`` as a handler reads it, then
    ``close()``."""
    try:
        streaming = isinstance(sink, CountSink)
        for part in (body.root, *body.parts):
            sink.begin()
            _feed_file(sink, part.stream, streaming)
            sink.end()
    finally:
        body.close()


def _run_ours(
    stream: BinaryIO, content_type: str, sink: Sink, limits: Any, content_length: Optional[int]
) -> None:
    body = _ours_read_mime()(stream, content_type, limits=limits, content_length=content_length)
    _drain(body, sink)


def run_ours_decoder(stream: BinaryIO, content_type: str, sink: Sink) -> None:
    """``flask_mm7._mime.MultipartDecoder`` alone, fed 64 KiB reads as ``run_multipart`` feeds
    ``multipart``: each leaf's raw data to ``sink``, no part objects, no transfer decoding,
    no root choice. The same job as the multipart contender; ``ours`` is this plus
    ``read_mime``'s part objects."""
    from flask_mm7._mime import MultipartDecoder, PartEnd, PartStart

    decoder = MultipartDecoder(boundary_of(content_type))
    in_leaf = False
    while True:
        chunk = stream.read(CHUNK)
        for event in decoder.feed(chunk) if chunk else decoder.close():
            if isinstance(event, bytes):
                sink.feed(event)
            elif isinstance(event, PartStart):
                if not event.is_multipart:
                    sink.begin()
                    in_leaf = True
            elif isinstance(event, PartEnd) and in_leaf:
                sink.end()
                in_leaf = False
        if not chunk:
            return


def run_split_strict(stream: BinaryIO, content_type: str, sink: Sink) -> None:
    """A lower bound for ``read_mime``'s design, not a parser anyone should use: the whole
    body read at once, each level split with one ``bytes.find`` per part for its whole
    ``CRLF--boundary`` (a match not followed by CRLF or ``--`` skipped), every header block
    CRLF-framed and ended by a blank line, no limits, no tolerated deviation, no streaming;
    then the same part objects (``Attachment``), root choice and ``MimeBody`` as ``ours``. A
    body it does not understand raises. ``ours`` / ``split-strict`` is what tolerance,
    streaming and limits cost."""
    from flask_mm7._attachments import Attachment, strip_id
    from flask_mm7._headers import parse_options
    from flask_mm7._mime import _crlf_fields, header_value, multipart_boundary
    from flask_mm7._parts import MimeBody, _choose_root

    buf = stream.read()
    options = parse_options(content_type)[1]
    leaves: List[Any] = []

    def split(pos: int, end: int, delimiter: bytes, containers: Tuple[str, ...]) -> None:
        if not buf.startswith(delimiter[2:] + b"\r\n", pos):  # no preamble in these bodies
            pos = buf.index(delimiter + b"\r\n", pos, end) + 2
        pos += len(delimiter)
        while True:
            blank = buf.index(b"\r\n\r\n", pos, end)
            headers = _crlf_fields(buf[pos:blank])
            data_at = nxt = blank + 4
            while True:  # the next whole delimiter
                nxt = buf.index(delimiter, nxt, end)
                tail = buf[nxt + len(delimiter) : nxt + len(delimiter) + 2]
                if tail in (b"\r\n", b"--"):
                    break
                nxt += 1
            boundary = multipart_boundary(header_value(headers, "content-type"))
            if boundary:
                own = strip_id(header_value(headers, "content-id")) or ""
                split(data_at, nxt, b"\r\n--" + boundary.encode(), (*containers, own))
            else:
                leaves.append(Attachment(headers, buf[data_at:nxt], container_ids=containers,
                                         index=len(leaves)))  # fmt: skip
            pos = nxt + len(delimiter) + 2
            if tail == b"--":
                return

    split(0, len(buf), b"\r\n--" + options["boundary"].encode(), ())
    root = leaves.pop(_choose_root(leaves, strip_id(options.get("start")), []) or 0)
    body = MimeBody(root, leaves)
    _drain(body, sink)


# --------------------------------------------------------------------------------------


@dataclass
class Contender:
    """A named parser: ``modules`` must import for it to be available."""

    name: str
    run: RunFn
    modules: Tuple[str, ...]
    note: str

    def available(self) -> bool:
        for mod in self.modules:
            try:
                importlib.import_module(mod)
            except ImportError:
                return False
        return True

    def version(self) -> str:
        """The distribution version behind this contender (for the results header)."""
        dist = {
            "multipart": "multipart",
            "python-multipart": "python-multipart",
            "werkzeug": "Werkzeug",
            "ours": "flask-mm7",
            "ours-decoder": "flask-mm7",
            "split-strict": "flask-mm7",
        }.get(self.name)
        if dist is None:
            return "stdlib" if self.name.startswith("email") else "-"
        try:
            from importlib.metadata import version

            return version(dist)
        except Exception:
            return "?"


CONTENDERS: List[Contender] = [
    Contender("floor", run_floor, (), "64 KiB readinto + find + copy out (the reference)"),
    Contender(
        "floor-old", run_floor_old, (), "the earlier floor: read + concat (one more copy)"
    ),
    Contender("multipart", run_multipart, ("multipart",), "PushMultipartParser, subclassed"),
    Contender(
        "python-multipart",
        run_python_multipart,
        ("python_multipart",),
        "MultipartParser + callbacks",
    ),
    Contender(
        "werkzeug", run_werkzeug, ("werkzeug.sansio.multipart",), "sansio MultipartDecoder"
    ),
    Contender(
        "email",
        _email_runner(email.policy.compat32),
        (),
        "BytesFeedParser() (default policy compat32: message_from_bytes) + walk",
    ),
    Contender(
        "email-http",
        _email_runner(email.policy.HTTP),
        (),
        "BytesFeedParser(policy=HTTP) + walk (the earlier runs' email row)",
    ),
    Contender("ours", run_ours, ("flask_mm7._parts",), "flask_mm7._parts.read_mime"),
    Contender(
        "ours-decoder",
        run_ours_decoder,
        ("flask_mm7._mime",),
        "flask_mm7._mime.MultipartDecoder alone, leaf data to the sink (multipart's job)",
    ),
    Contender(
        "split-strict",
        run_split_strict,
        ("flask_mm7._parts",),
        "lower bound: whole-body find per part, no tolerance, ours' part objects",
    ),
]

BY_NAME: Dict[str, Contender] = {c.name: c for c in CONTENDERS}


def parse_bytes(contender: Contender, data: bytes, content_type: str) -> List[bytes]:
    """Run ``contender`` on ``data`` and return [root, leaf, ...] (for checks)."""
    sink = CollectSink()
    contender.run(io.BytesIO(data), content_type, sink)
    return sink.parts
