"""Read an MM7 request body from a stream into decoded, possibly spooled, parts.

Drives :class:`flask_mm7.mime.MultipartDecoder` over a binary stream in fixed chunks (a body
read whole in memory is first offered to :mod:`flask_mm7.wholebody`, which splits a plain one
in about two thirds of the time and declines anything else), undoes each part's
Content-Transfer-Encoding as the bytes stream through (base64, quoted-printable; 7bit, 8bit,
binary and unknown ones pass unchanged, any case), spools parts larger than a threshold to
temporary files, and picks the SOAP root part. A bare XML body (no multipart) is a
root with no other parts. Knows nothing of WSGI, SOAP or Flask.
"""

from __future__ import annotations

import binascii
import dataclasses
import tempfile
import typing as t
import urllib.parse

from . import wholebody
from .attachments import Attachment, strip_id
from .errors import LimitExceeded, MalformedRequest
from .headers import parse_options
from .logs import get_logger
from .mime import MultipartDecoder, PartStart, header_value

logger = get_logger(__name__)

_XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64 = bytes(b for b in range(256) if b not in _B64_ALPHABET)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one request body may hold (see :class:`flask_mm7.config.Settings`)."""

    #: most MIME parts in the body, nested containers included
    max_parts: int = 256
    #: most levels of multipart nesting, the body's own level included
    max_depth: int = 4
    #: most bytes in one part's header block
    max_part_header_size: int = 16384
    #: most bytes in the SOAP (root) part
    max_soap_size: int = 262144
    #: parts larger than this many bytes are spooled to a temporary file ...
    spool_threshold: int = 524288
    #: ... unless the whole body is known (Content-Length) to be at most this many bytes:
    #: then it is parsed in memory, which is several times faster
    max_memory_body_size: int = 8 * 1024 * 1024
    #: directory for spooled parts (None: the system's temporary directory)
    spool_dir: str | None = None
    #: bytes read from the stream at a time (a body too large to keep in memory is read and
    #: spooled in chunks this size: 256 KiB rather than 64 KiB takes a 50 MB delivery from
    #: 58 to 51 ms, a quarter of the per-chunk work, for ~0.5 MiB more peak memory)
    chunk_size: int = 262144


DEFAULT_LIMITS = Limits()


def is_xml_type(mimetype: str) -> bool:
    return mimetype in _XML_TYPES or mimetype.endswith("+xml")


class MimeBody:
    """The parts of one request body: the SOAP ``root`` and the leaf ``parts`` after it.

    Use it as a context manager, or call :meth:`close`, to remove spooled files.
    """

    def __init__(
        self, root: Attachment, parts: list[Attachment], defects: list[str] | None = None
    ) -> None:
        #: the SOAP envelope part
        self.root = root
        #: every other leaf part, in document order (nested multiparts flattened)
        self.parts = parts
        #: tolerated deviations from the MIME standards
        self.defects = defects or []

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
            if part.content_id == wanted
            or wanted in part.container_ids
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
    limits = limits or DEFAULT_LIMITS
    mimetype, options = parse_options(content_type)
    boundary = options.get("boundary")
    first = b""
    if mimetype.startswith("multipart/") and not boundary:
        # Skycore's delivery-report example declares multipart/related with no boundary over
        # a bare XML body; a body that opens with a delimiter line tells its own boundary.
        first = stream.read(limits.chunk_size)
        sniffed = first.lstrip()
        if sniffed.startswith(b"--"):
            boundary = sniffed[2:].split(b"\n", 1)[0].strip().decode("latin-1")
        else:
            mimetype = "text/xml"
    if not mimetype.startswith("multipart/") or not boundary:
        return MimeBody(_read_bare(stream, first, content_type, limits), [])
    spool_threshold: int | None = limits.spool_threshold
    first_size = limits.chunk_size
    if content_length is not None and content_length <= limits.max_memory_body_size:
        spool_threshold = None
        # Kept in memory anyway, so read it in one call and feed it to the decoder in one
        # piece (its events do not depend on how the body is cut): each part's data is then
        # one slice, without a decoder pass per chunk or a join of the chunks (5 MiB body:
        # 1.25 -> 1.0 ms). A stream that returns less or more than announced is read on in
        # chunks as usual.
        first_size = max(content_length, first_size)
    return _read_multipart(
        stream, first, boundary, options.get("start"), limits, spool_threshold, first_size
    )


def _read_bare(
    stream: t.IO[bytes] | t.BinaryIO, first: bytes, content_type: str | None, limits: Limits
) -> Attachment:
    data = first + stream.read(limits.max_soap_size + 1 - len(first))
    if len(data) > limits.max_soap_size:
        raise LimitExceeded(2007, f"SOAP envelope larger than {limits.max_soap_size} bytes")
    return Attachment([("Content-Type", content_type or "text/xml")], data=data)


class _Sink:
    """Collects one leaf part's decoded bytes: in memory, then in a temp file past a threshold."""

    __slots__ = ("headers", "container_ids", "chunks", "size", "file", "decode", "threshold", "dir")

    def __init__(
        self,
        headers: list[tuple[str, str]],
        container_ids: tuple[str, ...],
        decode: _Base64 | _QuotedPrintable | None,
        threshold: int | None,
        spool_dir: str | None,
    ) -> None:
        self.headers = headers
        self.container_ids = container_ids
        self.chunks: list[bytes] = []
        self.size = 0
        self.file: t.IO[bytes] | None = None
        self.threshold = threshold
        self.dir = spool_dir
        self.decode = decode

    def write(self, data: bytes) -> None:
        if self.decode is not None:
            data = self.decode.feed(data)
        self.size += len(data)
        if self.file is not None:
            self.file.write(data)
            return
        self.chunks.append(data)
        if self.threshold is not None and self.size > self.threshold:
            # closed by MimeBody.close() when the request ends
            self.file = tempfile.TemporaryFile(dir=self.dir)  # noqa: SIM115
            self.file.writelines(self.chunks)
            self.chunks = []

    def finish(self, index: int, defects: list[str]) -> Attachment:
        if self.decode is not None:
            tail = self.decode.flush()
            if self.decode.defect:
                defects.append(self.decode.defect)
            self.decode = None
            self.write(tail)
        if self.file is not None:
            self.file.seek(0)
            return Attachment(
                self.headers, file=self.file, size=self.size,
                container_ids=self.container_ids, index=index,
            )  # fmt: skip
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return Attachment(self.headers, data=data, container_ids=self.container_ids, index=index)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()


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
    stream: t.IO[bytes] | t.BinaryIO,
    first: bytes,
    boundary: str,
    start: str | None,
    limits: Limits,
    spool_threshold: int | None,
    first_size: int,
) -> MimeBody:
    try:
        raw_boundary = boundary.encode("latin-1")
    except UnicodeEncodeError:
        raw_boundary = boundary.encode()
    read = stream.read
    chunk_size = limits.chunk_size
    chunk = first or read(first_size)
    ahead: bytes | None = None  # a chunk read to learn whether ``chunk`` is the whole body
    if spool_threshold is None and not first and chunk:
        ahead = read(chunk_size)
        if not ahead:  # the whole body, in memory: the decoder only if it is not plain
            split = wholebody.split_whole(
                chunk,
                raw_boundary,
                max_parts=limits.max_parts,
                max_depth=limits.max_depth,
                max_header_size=limits.max_part_header_size,
            )
            if split is not None:
                whole_defects: list[str] = []  # from transfer encodings only
                return _finish(_whole_leaves(split, whole_defects), start, whole_defects)
    decoder = MultipartDecoder(
        raw_boundary,
        max_parts=limits.max_parts,
        max_depth=limits.max_depth,
        max_header_size=limits.max_part_header_size,
    )
    leaves: list[Attachment] = []
    # ids of the multiparts the current part is nested in, outermost first (a tuple: every
    # leaf's Attachment shares it)
    containers: tuple[str, ...] = ()
    sink: _Sink | None = None
    # A leaf kept in memory and not transfer-encoded needs no _Sink: its data is collected in
    # ``chunks`` (one slice when the body is fed whole) and its Attachment built here.
    chunks: list[bytes] | None = None
    headers: list[tuple[str, str]] = []
    defects = decoder.defects
    try:
        while True:
            events = decoder.feed(chunk) if chunk else decoder.close()
            for event in events:
                kind = type(event)
                if kind is bytes:
                    if chunks is not None:
                        chunks.append(event)  # type: ignore[arg-type]
                    else:
                        sink.write(event)  # type: ignore[union-attr, arg-type]
                elif kind is PartStart:
                    headers = event.headers  # type: ignore[union-attr]
                    if event.is_multipart:  # type: ignore[union-attr]
                        containers = (*containers, _part_id(headers) or "")
                        continue
                    decode = _transfer_decoder(headers)
                    if decode is None and spool_threshold is None:
                        chunks = []
                    else:
                        sink = _Sink(headers, containers, decode, spool_threshold, limits.spool_dir)
                elif chunks is not None:  # PartEnd of a leaf without a _Sink
                    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    leaves.append(
                        Attachment(headers, data, container_ids=containers, index=len(leaves))
                    )
                    chunks = None
                elif sink is not None:  # PartEnd of a leaf
                    leaves.append(sink.finish(len(leaves), defects))
                    sink = None
                elif containers:  # PartEnd of a container
                    containers = containers[:-1]
            if not chunk:
                break
            if ahead is not None:
                chunk, ahead = ahead, None
            else:
                chunk = read(chunk_size)
    except BaseException:
        if sink is not None:
            sink.discard()
        for leaf in leaves:
            leaf.close()
        raise
    return _finish(leaves, start, defects)


def _whole_leaves(split: list[wholebody.Leaf], defects: list[str]) -> list[Attachment]:
    """Attachments for :func:`flask_mm7.wholebody.split_whole`'s leaves, transfer-decoded
    as the streaming path decodes them."""
    leaves = []
    ids: dict[int, tuple[str, ...]] = {}  # the leaves of one multipart share its tuple
    for index, (headers, data, containers) in enumerate(split):
        if not containers:
            container_ids: tuple[str, ...] = ()
        elif id(containers) in ids:
            container_ids = ids[id(containers)]
        else:
            container_ids = ids[id(containers)] = tuple(_part_id(h) or "" for h in containers)
        decode = _transfer_decoder(headers)
        if decode is None:
            leaves.append(Attachment(headers, data, container_ids=container_ids, index=index))
        else:  # decoded as the streaming path decodes it
            sink = _Sink(headers, container_ids, decode, None, None)
            sink.write(data)
            leaves.append(sink.finish(index, defects))
    return leaves


def _finish(leaves: list[Attachment], start: str | None, defects: list[str]) -> MimeBody:
    """The body of ``leaves``: its root chosen, or MalformedRequest when it has none."""
    root_index = _choose_root(leaves, strip_id(start), defects)
    if root_index is None:
        for leaf in leaves:
            leaf.close()
        raise MalformedRequest(2007, "No SOAP part in the multipart body")
    root = leaves.pop(root_index)
    if defects:
        logger.debug("tolerated MIME defects: %s", ", ".join(defects))
    return MimeBody(root, leaves, defects)


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
