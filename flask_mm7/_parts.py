"""Read an MM7 request body from a stream into decoded, possibly spooled, parts.

Drives :class:`flask_mm7._mime.MultipartDecoder` over a binary stream in fixed chunks (a body of
known, modest size in one piece), undoes each part's Content-Transfer-Encoding as the bytes
stream through (base64, quoted-printable; 7bit, 8bit, binary and unknown ones pass unchanged,
any case), and picks the SOAP root part. A bare XML body (no multipart) is a root with no other
parts. Knows nothing of WSGI, SOAP or Flask.

Memory and files per request are bounded whatever the parts: decoded part data is kept in
memory up to ``Limits.max_memory_body_size`` in all (a part larger than
``Limits.spool_threshold`` goes to disk at once unless the whole body is known to fit); the
rest goes to one temporary file per request, each spooled part a region of it.
"""

from __future__ import annotations

import binascii
import dataclasses
import io
import tempfile
import typing as t
import urllib.parse

from werkzeug.http import dump_options_header

from ._attachments import Attachment, strip_id
from ._config import DEFAULTS
from ._errors import LimitExceeded, MalformedRequest
from ._headers import is_xml_type, parse_options
from ._logs import get_logger
from ._mime import Event, MultipartDecoder, PartStart, header_value

logger = get_logger(__name__)

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64 = bytes(b for b in range(256) if b not in _B64_ALPHABET)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one request body may hold (see :class:`flask_mm7._config.Settings`)."""

    #: most MIME parts in the body, nested containers included
    max_parts: int = DEFAULTS.max_parts
    #: most levels of multipart nesting, the body's own level included
    max_depth: int = DEFAULTS.max_depth
    #: most bytes in one part's header block
    max_part_header_size: int = DEFAULTS.max_part_header_size
    #: most bytes in the SOAP (root) part
    max_soap_size: int = DEFAULTS.max_soap_size
    #: parts larger than this many bytes are spooled to a temporary file ...
    spool_threshold: int = DEFAULTS.spool_threshold
    #: ... unless the whole body is known (Content-Length) to be at most this many bytes:
    #: then it is parsed in memory, which is several times faster
    max_memory_body_size: int = DEFAULTS.max_memory_body_size
    #: directory for spooled parts (None: the system's temporary directory)
    spool_dir: str | None = DEFAULTS.spool_dir
    #: bytes read from the stream at a time (a body too large to keep in memory is read and
    #: spooled in chunks this size: 256 KiB rather than 64 KiB takes a 50 MB delivery from
    #: 58 to 51 ms, a quarter of the per-chunk work, for ~0.5 MiB more peak memory)
    chunk_size: int = 262144


DEFAULT_LIMITS = Limits()


class MimeBody:
    """The parts of one request body: the SOAP ``root`` and the leaf ``parts`` after it.

    Use it as a context manager, or call :meth:`close`, to remove spooled files.
    """

    def __init__(
        self,
        root: Attachment,
        parts: list[Attachment],
        defects: list[str] | None = None,
        spool: _Spool | None = None,
    ) -> None:
        #: the SOAP envelope part
        self.root = root
        #: every other leaf part, in document order (nested multiparts flattened)
        self.parts = parts
        #: tolerated deviations from the MIME standards
        self.defects = defects or []
        self._spool = spool

    def find(self, reference: str) -> list[Attachment]:
        """The leaf parts a ``Content/@href`` points at, or [] when it points at nothing.

        ``cid:x`` (with or without a space, with or without brackets, %-encoded as RFC 2392
        has it or not) matches a part's or an enclosing multipart's Content-ID; anything else
        matches a Content-Location or a Content-ID. When nothing matches exactly, case is
        ignored (relays rewrite ids in upper or lower case).
        """
        reference = reference.strip()
        is_cid = reference[:4].lower() == "cid:"
        wanted = strip_id(reference[4:] if is_cid else reference) or ""
        found = [  # the usual case, exact: cheap enough for every request
            part
            for part in self.parts
            # the container first: OpenMarket's href names it, so no part's own headers
            # are read (a hundred parts' Content-IDs cost ~150 µs)
            if wanted in part.container_ids
            or part.content_id == wanted
            or (not is_cid and part.content_location == wanted)
        ]
        if found:
            return found
        names = {wanted.casefold(), urllib.parse.unquote(wanted).casefold()}
        return [
            part
            for part in self.parts
            if _names(part, not is_cid, True) & names
            or any(c.casefold() in names for c in part.container_ids)
        ]

    def close(self) -> None:
        self.root.close()
        for part in self.parts:
            part.close()
        if self._spool is not None:
            self._spool.close()

    def __enter__(self) -> MimeBody:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_mime(
    stream: t.IO[bytes] | t.BinaryIO,
    content_type: str | None,
    *,
    limits: Limits | None = None,
    content_length: int | None = None,
) -> MimeBody:
    """Read a whole request body from ``stream`` and return its parts.

    :param stream: the body, read with ``stream.read(n)`` until it returns ``b""``; bound it
        first (the middleware does) since this reads to the end.
    :param content_type: the request's Content-Type header.
    :param content_length: the body's size when known; a body no larger than
        ``limits.max_memory_body_size`` is kept in memory whatever its parts' sizes.
    :raises MalformedRequest: the body is not multipart as declared or holds no root part.
    :raises LimitExceeded: a limit in ``limits`` was passed.
    """
    mimetype, options = parse_options(content_type)
    return read_body(stream, mimetype, options, limits or DEFAULT_LIMITS, content_length)


class Readable(t.Protocol):
    """What a body is read from: ``read(n)`` returns at most ``n`` bytes, ``b""`` at its end."""

    def read(self, size: int = -1, /) -> bytes: ...


def read_body(
    stream: Readable,
    mimetype: str,
    options: t.Mapping[str, str],
    limits: Limits,
    content_length: int | None,
) -> MimeBody:
    """:func:`read_mime` for a Content-Type already parsed (media type and parameters)."""
    boundary = options.get("boundary")
    first = b""
    if mimetype.startswith("multipart/") and not boundary:
        # Skycore's delivery-report example declares multipart/related with no boundary over
        # a bare XML body; a body that opens with a delimiter line tells its own boundary.
        first = _read_full(stream, limits.chunk_size)
        sniffed = first.lstrip()
        if sniffed.startswith(b"--"):
            boundary = sniffed[2:].split(b"\n", 1)[0].strip().decode("latin-1")
        else:
            mimetype = "text/xml"
    if not mimetype.startswith("multipart/") or not boundary:
        charset = {"charset": options["charset"]} if "charset" in options else {}
        content_type = dump_options_header(mimetype or "text/xml", charset)
        return MimeBody(_read_bare(stream, first, content_type, limits), [])
    spool_threshold: int | None = limits.spool_threshold
    first_size = limits.chunk_size
    if content_length is not None and content_length <= limits.max_memory_body_size:
        # known to fit in memory: read and decoded in one piece, no part spooled
        spool_threshold = None
        first_size = content_length or first_size
    return _read_multipart(
        stream,
        first or _read_full(stream, first_size),
        boundary,
        options.get("start"),
        limits,
        spool_threshold,
    )


def _read_full(stream: Readable, size: int) -> bytes:
    """``size`` bytes of ``stream``, fewer only at its end (a stream may return less per call:
    the decoder then still sees chunks of a useful size)."""
    data = stream.read(size)
    if len(data) >= size or not data:
        return data
    pieces = [data]
    missing = size - len(data)
    while missing > 0:
        data = stream.read(missing)
        if not data:
            break
        pieces.append(data)
        missing -= len(data)
    return b"".join(pieces)


def _read_bare(stream: Readable, first: bytes, content_type: str, limits: Limits) -> Attachment:
    data = first + _read_full(stream, limits.max_soap_size + 1 - len(first))
    if len(data) > limits.max_soap_size:
        raise LimitExceeded(2007, f"SOAP envelope larger than {limits.max_soap_size} bytes")
    return Attachment([("Content-Type", content_type)], data=data)


class _Spool:
    """One request's temporary file: every spooled part is a region of it, written in turn.

    Created on the first spooled part; removed by :meth:`close` (``MimeBody.close``).
    """

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self.file: t.IO[bytes] | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        if self.file is None:
            # closed by close() when the request ends
            self.file = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115
        self.file.write(data)
        self.size += len(data)

    def region(self, offset: int, size: int) -> t.IO[bytes]:
        """A read-only binary file over ``size`` bytes from ``offset``."""
        assert self.file is not None
        self.file.flush()
        return io.BufferedReader(_Region(self.file, offset, size))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class _Region(io.RawIOBase):
    """A window onto part of a shared file, with its own position."""

    def __init__(self, file: t.IO[bytes], offset: int, size: int) -> None:
        self._file = t.cast(io.BufferedIOBase, file)  # a TemporaryFile: it has readinto
        self._offset = offset
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        count = min(len(buffer), self._size - self._position)
        if count <= 0:
            return 0
        self._file.seek(self._offset + self._position)
        # straight into the caller's buffer: no intermediate bytes object
        read = self._file.readinto(memoryview(buffer).cast("B")[:count])
        self._position += read
        return read

    def readall(self) -> bytes:
        # ``read()`` of the whole part: one read of the file. RawIOBase's own readall calls
        # readinto for 8 KiB at a time, a Python step per 8 KiB that made reading a spooled
        # part back cost more than parsing and spooling it (a 9 MiB body: 22 ms, 10 with this)
        count = self._size - self._position
        if count <= 0:
            return b""
        self._file.seek(self._offset + self._position)
        data = self._file.read(count)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position


class _Reader:
    """Turns the decoder's events into leaf Attachments, within the memory budget."""

    def __init__(self, limits: Limits, spool_threshold: int | None) -> None:
        self.limits = limits
        self.threshold = spool_threshold
        self.spool = _Spool(limits.spool_dir)
        self.leaves: list[Attachment] = []
        #: decoded bytes of the finished leaves kept in memory
        self.in_memory = 0
        #: ids of the multiparts the current part is nested in, outermost first
        self.containers: tuple[str, ...] = ()
        # the open leaf: its headers, decoder, data in memory (or where it starts on disk)
        self.headers: list[tuple[str, str]] | None = None
        self.decode: _Base64 | _QuotedPrintable | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.spooled_at = -1

    def take(self, events: list[Event], defects: list[str]) -> None:
        """Act on the decoder's events, in order."""
        for event in events:
            if isinstance(event, bytes):
                self.write(event)
            elif isinstance(event, PartStart):
                if event.is_multipart:
                    self.containers = (*self.containers, _part_id(event.headers) or "")
                else:
                    self.headers = event.headers
                    self.decode = _transfer_decoder(event.headers)
            elif self.headers is not None:  # the end of a leaf
                self.finish(defects)
            elif self.containers:  # the end of a container
                self.containers = self.containers[:-1]

    def write(self, data: bytes) -> None:
        if self.decode is not None:
            data = self.decode.feed(data)
        self.size += len(data)
        if self.spooled_at >= 0:
            self.spool.write(data)
            return
        self.chunks.append(data)
        if (self.threshold is not None and self.size > self.threshold) or (
            self.in_memory + self.size > self.limits.max_memory_body_size
        ):
            self.spooled_at = self.spool.size
            for chunk in self.chunks:
                self.spool.write(chunk)
            self.chunks = []

    def finish(self, defects: list[str]) -> None:
        if self.decode is not None:
            decode, self.decode = self.decode, None
            self.write(decode.flush())
            if decode.defect:
                defects.append(decode.defect)
        assert self.headers is not None
        index = len(self.leaves)
        if self.spooled_at >= 0:
            file = self.spool.region(self.spooled_at, self.size)
            leaf = Attachment(
                self.headers, file=file, size=self.size,
                container_ids=self.containers, index=index,
            )  # fmt: skip
        else:
            self.in_memory += self.size
            data = b"".join(self.chunks)
            leaf = Attachment(self.headers, data, container_ids=self.containers, index=index)
        self.leaves.append(leaf)
        self.headers = None
        self.chunks = []
        self.size = 0
        self.spooled_at = -1

    def discard(self) -> None:
        for leaf in self.leaves:
            leaf.close()
        self.spool.close()


class _Base64:
    """Streaming base64 decoder that skips whitespace and stray bytes (RFC 2045 §6.8)."""

    defect: str | None = None

    def __init__(self) -> None:
        self.carry = b""

    def feed(self, data: bytes) -> bytes:
        data = self.carry + data.translate(None, _NOT_B64)
        cut = len(data) - len(data) % 4
        self.carry = data[cut:]
        return self._decode(data[:cut])

    def flush(self) -> bytes:
        carry, self.carry = self.carry, b""
        if len(carry) == 1:
            self.defect = "base64 data with a stray final character"
            return b""
        return self._decode(carry + b"=" * (-len(carry) % 4)) if carry else b""

    def _decode(self, data: bytes) -> bytes:
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            self.defect = "invalid base64 padding"
            return b""


class _QuotedPrintable:
    """Streaming quoted-printable decoder (RFC 2045 §6.7): decodes whole lines at a time."""

    defect: str | None = None

    def __init__(self) -> None:
        self.carry = b""

    def feed(self, data: bytes) -> bytes:
        data = self.carry + data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > 4096:  # an endless line: cut where no escape is split
            cut = len(data)
            escape = data.find(b"=", cut - 2)
            if escape >= 0:
                cut = escape
        self.carry = data[cut:]
        return binascii.a2b_qp(data[:cut])

    def flush(self) -> bytes:
        carry, self.carry = self.carry, b""
        return binascii.a2b_qp(carry)


def _transfer_decoder(headers: list[tuple[str, str]]) -> _Base64 | _QuotedPrintable | None:
    """The streaming decoder for a part's Content-Transfer-Encoding; None: bytes pass as sent."""
    for name, value in headers:
        if len(name) == 25 and name.lower() == "content-transfer-encoding":
            encoding = value.strip().lower()
            if encoding == "base64":
                return _Base64()
            if encoding == "quoted-printable":
                return _QuotedPrintable()
            return None
    return None


def _part_id(headers: list[tuple[str, str]]) -> str | None:
    return strip_id(header_value(headers, "content-id")) or strip_id(
        header_value(headers, "content-location")
    )


def _read_multipart(
    stream: Readable,
    first: bytes,
    boundary: str,
    start: str | None,
    limits: Limits,
    spool_threshold: int | None,
) -> MimeBody:
    try:
        raw_boundary = boundary.encode("latin-1")
    except UnicodeEncodeError:
        raw_boundary = boundary.encode()
    decoder = MultipartDecoder(
        raw_boundary,
        max_parts=limits.max_parts,
        max_depth=limits.max_depth,
        max_header_size=limits.max_part_header_size,
    )
    reader = _Reader(limits, spool_threshold)
    defects = decoder.defects
    chunk = first
    try:
        while True:
            reader.take(decoder.feed(chunk) if chunk else decoder.close(), defects)
            if not chunk:
                break
            chunk = _read_full(stream, limits.chunk_size)
        return _finish(reader.leaves, start, defects, reader.spool, limits)
    except BaseException:
        reader.discard()
        raise


def _finish(
    leaves: list[Attachment], start: str | None, defects: list[str], spool: _Spool, limits: Limits
) -> MimeBody:
    """The body of ``leaves``: its root chosen, or MalformedRequest when it has none (the
    caller releases the leaves and the spool when this raises)."""
    root_index = _choose_root(leaves, strip_id(start), defects)
    if root_index is None:
        raise MalformedRequest(2007, "No SOAP part in the multipart body")
    if leaves[root_index].size > limits.max_soap_size:
        raise LimitExceeded(2007, f"SOAP envelope larger than {limits.max_soap_size} bytes")
    root = leaves.pop(root_index)
    if defects:
        logger.debug("tolerated MIME defects: %s", ", ".join(defects))
    return MimeBody(root, leaves, defects, spool)


def _names(part: Attachment, with_location: bool, fold: bool) -> set[str]:
    """A part's Content-ID (and Content-Location), case-folded when ``fold``."""
    names = {part.content_id or ""}
    if with_location:
        names.add(part.content_location or "")
    names.discard("")
    return {name.casefold() for name in names} if fold else names


def _choose_root(leaves: list[Attachment], start: str | None, defects: list[str]) -> int | None:
    """RFC 2387: the part named by ``start``, else the first; we prefer an XML part to the first.

    ``start`` is matched with or without angle brackets (OpenMarket sends ``start="soap-start"``
    for ``Content-ID: <soap-start>``). A ``start`` naming no part falls back like a missing one.
    """
    # top-level parts only (no container_ids), scanned lazily: the usual root is the first
    if start is not None:
        for i, leaf in enumerate(leaves):
            if not leaf.container_ids and (
                leaf.content_id == start or leaf.content_location == start
            ):
                return i
        folded = start.casefold()
        for i, leaf in enumerate(leaves):
            if not leaf.container_ids and folded in _names(leaf, True, True):
                defects.append("start parameter matches a Content-ID in another case")
                return i
        defects.append("start parameter names no part")
    for i, leaf in enumerate(leaves):
        if not leaf.container_ids and is_xml_type(leaf.mimetype):
            return i
    return next((i for i, leaf in enumerate(leaves) if not leaf.container_ids), None)
