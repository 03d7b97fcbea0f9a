"""A tolerant, sans-IO push decoder for MM7's multipart/related bodies.

Feed it bytes in chunks of any size; it returns events: :class:`PartStart` (a part's headers),
:class:`PartData` (a leaf part's raw, still transfer-encoded bytes) and :class:`PartEnd`.
Nested ``multipart/*`` parts are entered, so a consumer sees every leaf in document order with
its enclosing containers announced around it. It does no I/O and knows nothing of WSGI, SOAP,
transfer encodings or Flask; :mod:`flask_mm7.parts` drives it from a stream.

Why hand-written: Werkzeug's ``MultipartDecoder`` is built for ``multipart/form-data`` and
rejects parts without ``Content-Disposition`` (every MM7 part lacks one); the stdlib ``email``
parser holds the whole body in memory, is quadratic in the number of parts (bpo-31449) and
recursive on nesting (``RecursionError`` at 2,000 levels); ``multipart`` and
``python-multipart`` are form-data parsers too. None tolerates what MM7 relays really send
(RFC 2046 §5.1.1 is the standard; each deviation below is accepted on purpose):

* LF-only or CR-only line ends instead of CRLF (the OpenMarket printed example, instantcom's
  3GPP fixtures).
* A delimiter glued to the end of the previous part's data, with no line break before it
  (OpenMarket's example: ``</ns1:Envelope>------=_Part_...``). We therefore look for
  ``--boundary`` anywhere, not only at a line start; a preceding line break, when present,
  belongs to the delimiter (RFC 2046) and is removed from the data.
* No blank line between a part's headers and its body (OpenMarket's example): the header block
  also ends at the first line that is not a header (``Name: value``) or a folded continuation.
* Transport padding after a delimiter (RFC 2046 allows spaces and tabs; the example has
  U+00A0), a preamble, leading blank lines, an epilogue.
* A missing close delimiter at the end of the body (``--b`` instead of ``--b--``, or none at
  all after the last part's data: OpenMarket's own simulator), and an inner multipart whose
  close delimiter is missing (the outer delimiter then closes it).
* Folded headers, any-case header names, non-UTF-8 header bytes (decoded as Latin-1).

A ``--boundary`` match followed by anything but padding, a line break, ``--`` or the end of the
input is not a delimiter (for boundary ``B1`` the text ``--B10`` is data); this keeps glued
delimiters working without splitting on near-misses.

Every tolerated deviation is recorded in :attr:`MultipartDecoder.defects`. Limits (parts,
nesting depth, header block size) are enforced as the bytes arrive, in linear time.
"""

from __future__ import annotations

import typing as t

from werkzeug.http import parse_options_header

from .errors import LimitExceeded, MalformedRequest

#: bytes that may pad a delimiter line: RFC 2046's LWSP plus U+00A0 (raw and UTF-8 encoded)
_PADDING = b" \t\xa0\xc2"
_LINE_BREAKS = (b"\r\n", b"\n", b"\r")
_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


class PartStart(t.NamedTuple):
    """A part begins. ``headers`` keeps the order and spelling of the wire."""

    headers: list[tuple[str, str]]
    #: 0 for the parts of the body itself, 1 for the parts inside a nested multipart, ...
    depth: int
    #: True when the part is itself a multipart container whose parts follow
    is_multipart: bool


class PartData(t.NamedTuple):
    """A piece of the current leaf part's body, still transfer-encoded."""

    data: bytes


class PartEnd(t.NamedTuple):
    """The current leaf part, or the innermost open container, ends."""

    depth: int


Event = t.Union[PartStart, PartData, PartEnd]

_DISCARD, _HEADERS, _BODY, _DONE = range(4)


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (any case), or None."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def multipart_boundary(content_type: str | None) -> str | None:
    """The boundary of a ``multipart/*`` content type, or None for anything else."""
    if not content_type:
        return None
    mimetype, options = parse_options_header(content_type)
    if not mimetype.startswith("multipart/"):
        return None
    boundary = options.get("boundary")
    return boundary or None


class MultipartDecoder:
    """Push parser for one multipart body: ``feed(chunk)`` then ``close()``, each returning events.

    .. code-block:: python

        decoder = MultipartDecoder(b"----=_Part_1")
        for chunk in chunks:
            for event in decoder.feed(chunk):
                ...
        for event in decoder.close():
            ...

    :param boundary: the ``boundary`` parameter of the body's Content-Type.
    :param max_parts: most parts (leaves and nested containers) accepted in the whole body.
    :param max_depth: most levels of multipart nesting, the body's own level included.
    :param max_header_size: most bytes in one part's header block.
    :raises LimitExceeded: when a limit is passed (from ``feed`` or ``close``).
    :raises MalformedRequest: when the body holds no part at all.
    """

    def __init__(
        self,
        boundary: bytes,
        *,
        max_parts: int = 256,
        max_depth: int = 4,
        max_header_size: int = 16384,
    ) -> None:
        if not boundary or len(boundary) > 256:
            # RFC 2046 allows 70 bytes; real ones are shorter. Refusing absurd ones keeps the
            # search cheap (python-multipart 0.0.28 caps at 256 too).
            raise MalformedRequest(2007, "Invalid multipart boundary")
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.max_header_size = max_header_size
        #: tolerated deviations from RFC 2046, in the order met
        self.defects: list[str] = []
        #: number of parts seen so far
        self.part_count = 0
        self._delimiters: list[bytes] = [b"--" + boundary]
        self._buffer = bytearray()
        self._state = _DISCARD
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        # bytes kept back when no delimiter is in sight: a delimiter may start in them,
        # and so may the line break that belongs to it
        self._keep = len(self._delimiters[0]) + 2

    # -- public API ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Take the next chunk of the body and return the events it completes."""
        if self._state == _DONE:
            return []  # the epilogue: ignored without being buffered
        self._buffer += data
        events: list[Event] = []
        self._run(events, final=False)
        return events

    def close(self) -> list[Event]:
        """Signal the end of the body and return the remaining events."""
        events: list[Event] = []
        if self._state != _DONE:
            self._run(events, final=True)
            if self._state == _HEADERS and self._headers:
                # the body ended inside a header block: a part with no data
                self._start_part(events)
            if self._state == _BODY:
                data = bytes(self._buffer)
                for line_break in _LINE_BREAKS:
                    if data.endswith(line_break):
                        data = data[: -len(line_break)]
                        break
                if data:
                    events.append(PartData(data))
                events.append(PartEnd(len(self._delimiters) - 1))
            if self.part_count == 0:
                raise MalformedRequest(2007, "No multipart delimiter found in the body")
            self.defects.append("missing close delimiter")
            for depth in range(len(self._delimiters) - 2, -1, -1):
                events.append(PartEnd(depth))
            del self._delimiters[1:]
            self._state = _DONE
        self._buffer.clear()
        return events

    # -- the state machine ------------------------------------------------------------------

    def _run(self, events: list[Event], final: bool) -> None:
        while True:
            if self._state == _HEADERS:
                if not self._read_headers(events, final):
                    return
            elif self._state == _DONE:
                self._buffer.clear()
                return
            elif not self._read_until_delimiter(events, final):
                return

    def _read_until_delimiter(self, events: list[Event], final: bool) -> bool:
        """In a part body or a preamble/epilogue: find the next delimiter. False: need data."""
        buf = self._buffer
        found = self._find_delimiter(final)
        if found is None:
            if final:
                return False  # close() decides what the unterminated rest is
            # no delimiter in sight: release what cannot belong to one
            end = len(buf) - self._keep
            if end > 0:
                if self._state == _BODY:
                    events.append(PartData(bytes(buf[:end])))
                del buf[:end]
            return False
        start, end, level, is_close, pending = found
        if pending:  # a delimiter at ``start`` needs more bytes to be recognised
            release = start - 2
            if release > 0:
                if self._state == _BODY:
                    events.append(PartData(bytes(buf[:release])))
                del buf[:release]
            return False
        if self._state == _BODY:
            data_end = start
            if buf.endswith(b"\r\n", 0, start):
                data_end -= 2
            elif buf.endswith(b"\n", 0, start) or buf.endswith(b"\r", 0, start):
                data_end -= 1
            if data_end > 0:
                events.append(PartData(bytes(buf[:data_end])))
            events.append(PartEnd(len(self._delimiters) - 1))
        del buf[:end]
        # a delimiter of an outer level closes the inner multiparts still open
        while len(self._delimiters) - 1 > level:
            self._delimiters.pop()
            self.defects.append("nested multipart without close delimiter")
            events.append(PartEnd(len(self._delimiters) - 1))
        if is_close:
            if level == 0:
                self._state = _DONE
            else:
                self._delimiters.pop()
                events.append(PartEnd(level - 1))
                self._state = _DISCARD  # the container's epilogue
        else:
            self._state = _HEADERS
            self._headers = []
            self._header_bytes = 0
        self._keep = max(len(d) for d in self._delimiters) + 2
        return True

    def _find_delimiter(self, final: bool) -> tuple[int, int, int, bool, bool] | None:
        """The earliest delimiter as (start, end, level, is_close, pending), or None.

        ``pending`` is True when the match at ``start`` cannot be judged without more data.
        """
        buf = self._buffer
        best: tuple[int, int, int, bool, bool] | None = None
        for level, delimiter in enumerate(self._delimiters):
            pos = buf.find(delimiter)
            while pos >= 0 and (best is None or pos <= best[0]):
                verdict = self._judge(pos + len(delimiter), final)
                if verdict is None:
                    candidate = (pos, 0, level, False, True)
                elif verdict[0] < 0:  # not a delimiter: look further
                    pos = buf.find(delimiter, pos + 1)
                    continue
                else:
                    candidate = (pos, verdict[0], level, verdict[1], False)
                # at one position a judged match beats a pending one, and among judged
                # matches the inner level wins (its delimiter is the longer, more specific one)
                if best is None or pos < best[0] or best[4] or not candidate[4]:
                    best = candidate
                break
        return best

    def _judge(self, after: int, final: bool) -> tuple[int, bool] | None:
        """Is the ``--boundary`` match ending at ``after`` a delimiter?

        Returns (end of the delimiter line, is_close), (-1, False) for "not a delimiter", or
        None when more data is needed to tell.
        """
        buf = self._buffer
        size = len(buf)
        if size - after < 2 and not final:
            return None
        is_close = buf.startswith(b"--", after)
        pos = after + 2 if is_close else after
        while pos < size and buf[pos] in _PADDING:
            pos += 1
        if pos >= size:
            return (size, is_close) if final else None
        byte = buf[pos]
        if byte == 10:  # LF
            return pos + 1, is_close
        if byte == 13:  # CR, maybe CRLF
            if pos + 1 >= size and not final:
                return None
            return (pos + 2 if buf.startswith(b"\n", pos + 1) else pos + 1), is_close
        if is_close:
            # "--b--" glued to what follows (the next outer delimiter, or an epilogue)
            return after + 2, True
        return -1, False

    def _read_headers(self, events: list[Event], final: bool) -> bool:
        """Consume header lines of the current part. False: need more data."""
        buf = self._buffer
        while True:
            newline = buf.find(b"\n")
            carriage = buf.find(b"\r", 0, newline if newline >= 0 else len(buf))
            if carriage >= 0 and carriage + 1 != newline:
                # a lone CR ends the line (CR-only senders), unless an LF may still follow
                if carriage + 1 == len(buf) and not final:
                    return False
                newline = carriage
            elif newline < 0:
                if len(buf) + self._header_bytes > self.max_header_size:
                    raise LimitExceeded(2007, "Part header block too large")
                if not final or not buf:
                    return False
                newline = len(buf)  # the body ended in a header line: treat it as the last
            line_end = newline + 1
            line = bytes(buf[:newline]).rstrip(b"\r")
            self._header_bytes += line_end
            if self._header_bytes > self.max_header_size:
                raise LimitExceeded(2007, "Part header block too large")
            if not line.strip(b" \t"):
                del buf[:line_end]  # the blank line ends the block
                self._start_part(events)
                return True
            first = line[0]
            if first in (32, 9) and self._headers:  # folded continuation (RFC 5322 §2.2.3)
                name, value = self._headers[-1]
                self._headers[-1] = (name, value + " " + _decode(line.strip()))
                del buf[:line_end]
                continue
            colon = line.find(b":")
            if colon <= 0 or not _is_token(line[:colon]):
                # not a header: the body starts here without a blank line (OpenMarket)
                self._header_bytes -= line_end
                if self._headers:
                    self.defects.append("no blank line after part headers")
                self._start_part(events)
                return True
            self._headers.append((_decode(line[:colon]), _decode(line[colon + 1 :]).strip()))
            del buf[:line_end]

    def _start_part(self, events: list[Event]) -> None:
        self.part_count += 1
        if self.part_count > self.max_parts:
            raise LimitExceeded(2007, f"More than {self.max_parts} MIME parts")
        headers = self._headers
        depth = len(self._delimiters) - 1
        boundary = multipart_boundary(header_value(headers, "content-type"))
        if boundary is not None:
            if len(self._delimiters) >= self.max_depth:
                raise LimitExceeded(2007, f"MIME parts nested deeper than {self.max_depth}")
            events.append(PartStart(headers, depth, True))
            self._delimiters.append(b"--" + boundary.encode("latin-1", "replace"))
            self._keep = max(len(d) for d in self._delimiters) + 2
            self._state = _DISCARD  # the nested multipart's preamble
        else:
            events.append(PartStart(headers, depth, False))
            self._state = _BODY
        self._headers = []


def _is_token(name: bytes) -> bool:
    return all(byte in _TOKEN_CHARS for byte in name)


def _decode(raw: bytes) -> str:
    """Header bytes as text: UTF-8 when valid (so U+00A0 strips as whitespace), else Latin-1."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")
