"""A tolerant, sans-IO push decoder for MM7's multipart/related bodies.

Feed it bytes in chunks of any size; it returns events: :class:`PartStart` (a part's headers),
``bytes`` (a leaf part's raw, still transfer-encoded data) and :class:`PartEnd`. Nested
``multipart/*`` parts are entered, so a consumer sees every leaf in document order with its
enclosing containers announced around it. It does no I/O and knows nothing of WSGI, SOAP,
transfer encodings or Flask; :mod:`flask_mm7._parts` drives it from a stream.

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
  U+00A0) up to :data:`MAX_PADDING` bytes, a preamble, leading blank lines, an epilogue.
* A last delimiter without its closing ``--`` (``--b`` instead of ``--b--``: a relay's
  simulator), and an inner multipart whose close delimiter is missing (the outer delimiter
  then closes it).
* Folded headers, any-case header names, non-UTF-8 header bytes (decoded as Latin-1).

A body that ends inside a part (its data, its header block, a nested multipart's preamble) or
inside a delimiter was cut short: :meth:`MultipartDecoder.close` raises
:class:`~flask_mm7._errors.IncompleteBody`, so a truncated message is never delivered.

A ``--boundary`` match followed by anything but padding, a line break, ``--`` or the end of the
input is not a delimiter (for boundary ``B1`` the text ``--B10`` is data); this keeps glued
delimiters working without splitting on near-misses.

How it works: a stack of single-boundary levels, like the ``multipart`` library's push parser.
Level 0 reads the body; a part that is itself a multipart opens the next level, and the
container's body (what level 0 finds before its own next delimiter) is handed to that level as
a range of the same buffer, not a copy, whose events are passed on in document order. A level
knows only its own delimiter, so an inner boundary that extends the outer one (the testing
kit's ``outer + ".mixed"``) is an outer near-miss passed on to the inner level as data, and an
outer delimiter ends whatever inner levels are still open (parsed as if their close delimiter
came there).

Linear by construction: each level finds its delimiter with ``bytes.find`` over each byte of
its own range once, so a byte is scanned at most once per level (``max_depth`` times in all); a
near-miss costs a Python step, so a body may hold at most :data:`MAX_NEAR_MISSES` of them; a
header block is matched by unambiguous regexes bounded by the header size limit; and bytes a
level must hold back for more input are parsed again only once the new input is at least as
large, so a body fed in tiny pieces costs linear time too. The usual steps (a delimiter line
ending in CRLF, a header block of unfolded CRLF lines ending in a blank line) take a few Python
lines each; everything else goes the general way. Every tolerated deviation is recorded in
:attr:`MultipartDecoder.defects`.
"""

from __future__ import annotations

import re
import typing as t

from ._config import DEFAULTS
from ._errors import IncompleteBody, LimitExceeded, MalformedRequest
from ._headers import parse_options

#: the most transport padding (blanks) a delimiter line may carry before its line break; a
#: longer run makes the match data, so a decision never waits on more than this
MAX_PADDING = 256
#: RFC 2046's padding (LWSP) plus U+00A0, raw or UTF-8 encoded
_PADDING = rb"[ \t\xa0\xc2]*"
#: what may follow ``--boundary``: ``--`` (a close delimiter), or padding and a line break.
#: Group 1: the ``--``; group 2: the padding; group 3: the line break, if there is one
_TAIL = re.compile(rb"(--)|(" + _PADDING + rb")(\r\n|\n|\r)?")
#: most near-misses (a delimiter's text followed by other data) in one body. RFC 2046 forbids
#: a delimiter's text inside a part, so a real body has few (one per nested delimiter whose
#: boundary extends an outer one); each costs a Python step, so this bounds what a body made
#: of them costs (20-30 ms through the middleware, measured) before it is refused
MAX_NEAR_MISSES = 16384

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_EOL = rb"(?:\r\n|\n|\r)"
#: a run of header lines (name, colon, value, line break, folded continuation lines), then
#: group 1: the blank line that ends it, if there is one (blanks on it tolerated). Each byte
#: can be taken one way only (a continuation line starts with exactly one blank), so a failed
#: line costs its own length, never a backtrack over the lines before it.
_HEADER_BLOCK = re.compile(
    rb"(?:" + _TOKEN + rb"[ \t]*:[^\r\n]*" + _EOL + rb"(?:[ \t][^\r\n]*" + _EOL + rb")*)*"
    rb"([ \t]*" + _EOL + rb")?"
)
#: a line the header block regex would take if it were complete: a header or a continuation
_HEADER_LINE_START = re.compile(_TOKEN + rb"[ \t]*:|[ \t]")
#: what an incomplete line may hold and still turn out to be a header or a blank line
_HEADER_PREFIX = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*[ \t]*")
#: one header field in a block's text: (name, value with its continuation lines)
#: the usual header block: header lines ending in CRLF, without folding, then a blank line.
#: Taken apart by splitting (:func:`_crlf_fields`) instead of ``_HEADER_BLOCK`` and
#: :func:`parse_header_block`: measured side by side, the decoder takes 26 instead of 36 µs
#: on the benchmark's tiny body and ``read_mime`` 83 instead of 91 µs on its typical one
_CRLF_BLOCK = re.compile(rb"(?:" + _TOKEN + rb":[^\r\n]*\r\n)*\r\n")
_FIELD = re.compile("(" + _TOKEN.decode() + r")[ \t]*:([^\r\n]*(?:(?:\r\n|\n|\r)[ \t][^\r\n]*)*)")


class PartStart(t.NamedTuple):
    """A part begins. ``headers`` keeps the order and spelling of the wire."""

    headers: list[tuple[str, str]]
    #: 0 for the parts of the body itself, 1 for the parts inside a nested multipart, ...
    depth: int
    #: True when the part is itself a multipart container whose parts follow
    is_multipart: bool


class PartEnd(t.NamedTuple):
    """The current leaf part, or the innermost open container, ends."""

    depth: int


#: what ``feed`` and ``close`` return: a leaf part's data comes as plain ``bytes`` (still
#: transfer-encoded)
Event = t.Union[PartStart, bytes, PartEnd]

#: a level's states; in ``_NESTED`` (a container's body) what is not the level's own is the
#: child level's, forwarded to it
_PREAMBLE, _HEADERS, _BODY, _NESTED, _EPILOGUE, _DONE = range(6)


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (any case), or None."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def multipart_boundary(content_type: str | None) -> str | None:
    """The boundary of a ``multipart/*`` content type, or None for anything else."""
    if not content_type or content_type[:10].lower() != "multipart/":
        return None
    return parse_options(content_type)[1].get("boundary") or None


def parse_header_block(raw: bytes) -> list[tuple[str, str]]:
    """The fields of a header block's bytes: names as sent, values stripped and unfolded.

    UTF-8 when valid (so U+00A0 strips as whitespace), else Latin-1. A folded value (RFC 5322
    §2.2.3) has each run of whitespace, its line breaks included, made one space.
    """
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [
        (name, " ".join(value.split()) if "\n" in value or "\r" in value else value.strip())
        for name, value in _FIELD.findall(text)
    ]


#: the shortest ``-``-free piece of a delimiter worth searching for instead of all of it
_MIN_PIECE = 8
#: hits of a piece without its delimiter before a level searches for the whole delimiter
_MAX_PIECE_MISSES = 64
_LF_OR_CR = (b"\n", b"\r")


class _Level:
    """One multipart level: the parts between one boundary's delimiters.

    It finds its own delimiter in the bytes it is given, emits each part's start and a leaf's
    data, and hands the body of a part that is itself a multipart to a child level (one level
    deeper), whose events are passed on in order. Bytes are passed as a range of the caller's
    buffer (``buf[pos:size]``), not copied. Each level keeps back, and parses again with the
    next input, only the bytes that may still turn out to be (the line break before) its
    delimiter, or a header block not complete yet.

    ``bytes.find`` steps byte by byte through a run of any byte its needle holds, and every
    delimiter holds ``-``: content made of dashes cost 5-10x random bytes. So a level looks for
    ``piece``, its delimiter's longest run without a ``-`` (at ``offset`` in it), when it is long
    enough to be as rare as the delimiter (relays' boundaries have one), and checks the whole
    delimiter around each hit; content that holds the piece alone many times (a Python step
    each) makes it search for the whole delimiter instead.
    """

    __slots__ = (
        "decoder", "delimiter", "line", "close", "depth", "piece", "offset", "misses", "keep",
        "state", "child", "held", "pending", "pending_size",
    )  # fmt: skip

    def __init__(self, decoder: MultipartDecoder, delimiter: bytes, depth: int) -> None:
        self.decoder = decoder
        self.delimiter = delimiter
        #: the usual delimiter line, and the close delimiter
        self.line = delimiter + b"\r\n"
        self.close = delimiter + b"--"
        self.depth = depth
        piece = max(delimiter.split(b"-"), key=len)
        if len(piece) < _MIN_PIECE:
            piece = delimiter
        self.piece = piece
        self.offset = delimiter.index(piece)
        self.misses = 0
        #: trailing bytes that may still be a delimiter (and the line break before it)
        self.keep = len(delimiter) + MAX_PADDING + 4
        self.state = _PREAMBLE
        #: the level of the open nested multipart (state _NESTED)
        self.child: _Level | None = None
        #: bytes held back: more input decides what they are
        self.held = b""
        #: input given since the level last stopped to wait (only while bytes are held)
        self.pending: list[bytes] = []
        self.pending_size = 0

    def feed(self, buf: bytes, pos: int, size: int, events: list[Event]) -> None:
        """Take ``buf[pos:size]``, the next bytes of this level, and append the events they
        complete."""
        if self.held:
            # Bytes held back are parsed again with the new ones; doing so only once the new
            # input is at least as large as what is held keeps the total work linear in the
            # input, however small the pieces it is fed in.
            self.pending.append(buf[pos:size])
            self.pending_size += size - pos
            if self.pending_size < len(self.held):
                return
            buf = self._joined()
            pos, size = 0, len(buf)
        self.run(buf, pos, size, False, events)

    def _joined(self) -> bytes:
        """The held bytes and the pending ones, which are parsed now."""
        buf = b"".join([self.held, *self.pending])
        self.held = b""
        self.pending = []
        self.pending_size = 0
        return buf

    def end(self, events: list[Event]) -> None:
        """The enclosing level's delimiter came: whatever is still open here ends before it.

        What is left is parsed as if a close delimiter followed, which gives the events of a
        part closed where the enclosing delimiter's line break begins."""
        if self.state == _DONE:
            return
        buf = self._joined()
        self.run(buf, 0, len(buf), False, events)
        if self.state != _DONE:
            held = len(self.held)  # what the level could not decide on without more input
            # a whole delimiter right before the enclosing one was this level's last: it closes
            # the level (as a last delimiter without its "--" ends the body), no part after it
            self.pending.append(
                b"--" if self.held.endswith(self.delimiter) else b"\r\n" + self.close
            )
            buf = self._joined()
            if self.run(buf, 0, len(buf), True, events) > held:
                # the added close delimiter ended it (a level that stopped only to see how a
                # line ends may close with its own, at or before ``held``)
                self.decoder.defects.append("nested multipart without close delimiter")

    def finish(self, buf: bytes, pos: int, size: int, events: list[Event]) -> None:
        """Take ``buf[pos:size]``, the last bytes of this level (the body ends)."""
        if self.held:
            self.pending.append(buf[pos:size])
            buf = self._joined()
            pos, size = 0, len(buf)
        self.run(buf, pos, size, True, events)

    def run(self, buf: bytes, pos: int, size: int, final: bool, events: list[Event]) -> int:
        """Advance through ``buf[pos:size]`` as far as it allows (``final``: no more input
        comes), hold back the rest, and return where it stopped. The usual steps (a delimiter
        line ending in CRLF, a header block ending in a blank line) are taken here; the rest by
        ``_find`` and ``_headers``."""
        state = self.state
        piece, offset, line, close = self.piece, self.offset, self.line, self.close
        decoder = self.decoder
        depth = self.depth
        while True:
            if state == _HEADERS:
                limit = pos + decoder.max_header_size
                block = _CRLF_BLOCK.match(buf, pos, min(size, limit + 1))
                if block is not None:  # the usual header block
                    stop = block.end()
                    if stop > limit:
                        raise LimitExceeded(2007, "Part header block too large")
                    end = stop - 2  # the blank line
                    headers = _crlf_fields(buf[pos : end - 2]) if end > pos else []
                else:
                    block = _HEADER_BLOCK.match(buf, pos, min(size, limit + 1))
                    stop = block.end()  # type: ignore[union-attr]
                    end = block.start(1)  # type: ignore[union-attr]
                    if (end < 0 or stop == size or stop > limit) and self._headers(
                        buf, pos, stop, end, size, final
                    ):
                        break  # more input decides
                    if end < 0:
                        end = stop  # no blank line: the body starts at the first other line
                    headers = parse_header_block(buf[pos:end]) if end > pos else []
                decoder.part_count += 1
                if decoder.part_count > decoder.max_parts:
                    raise LimitExceeded(2007, f"More than {decoder.max_parts} MIME parts")
                boundary = _boundary(headers)
                pos = stop
                if not boundary:  # a leaf (a multipart without a boundary is one too: opaque)
                    events.append(PartStart(headers, depth, False))
                    state = _BODY
                    continue
                if depth + 1 >= decoder.max_depth:
                    raise LimitExceeded(2007, f"MIME parts nested deeper than {decoder.max_depth}")
                events.append(PartStart(headers, depth, True))
                self.child = _Level(decoder, b"--" + boundary, depth + 1)
                state = _NESTED  # the nested multipart, from its preamble on
                continue
            if state == _DONE:
                self.state = state
                return pos
            hit = buf.find(piece, pos + offset, size)
            start = hit - offset
            if hit >= 0 and buf.startswith(line, start, size):  # the usual delimiter line
                end = start + len(line)
                is_close = False
            elif hit >= 0 and buf.startswith(close, start, size):  # the close delimiter
                end = start + len(close)
                is_close = True
            else:
                found = self._find(buf, hit, size, final)
                piece, offset = self.piece, self.offset
                if found is None or found[1] < 0:  # none yet, or more input decides
                    self.state = state
                    if final:
                        if state == _NESTED:
                            self._forward(buf, pos, size, final, events)
                            pos = size
                    else:
                        release = self._release(buf, pos, size, found)
                        if release > pos:
                            if state == _BODY:
                                events.append(buf[pos:release])
                            elif state == _NESTED:
                                self._forward(buf, pos, release, final, events)
                            pos = release
                    if pos < size:
                        self.held = buf[pos:size]
                    return pos
                start, end, is_close = found
            if state in (_BODY, _NESTED):
                # the line break before the delimiter belongs to it (RFC 2046)
                if buf.endswith(b"\r\n", pos, start):
                    data_end = start - 2
                elif buf.endswith(_LF_OR_CR, pos, start):
                    data_end = start - 1
                else:
                    data_end = start
                if state == _BODY:
                    if data_end > pos:
                        events.append(buf[pos:data_end])
                    events.append(PartEnd(depth))
                else:
                    child = self.child
                    assert child is not None
                    if data_end > pos:
                        child.feed(buf, pos, data_end, events)
                    child.end(events)
                    self.child = None
            pos = end
            if not is_close:
                state = _HEADERS
            else:
                state = _DONE
                if depth:
                    events.append(PartEnd(depth - 1))
        self.state = state
        if pos < size:
            self.held = buf[pos:size]
        return pos

    def _release(self, buf: bytes, pos: int, size: int, found: tuple[int, int, bool] | None) -> int:
        """Up to where ``buf[pos:size]`` cannot be (the line break before) a delimiter any
        more. With none in sight only a tail that may begin one waits: from a ``-`` among the
        last ``len(delimiter) - 1`` bytes (a longer one would hold the whole piece searched
        for), and the line break before it. So most chunks of a large part leave nothing
        held, and the next one is parsed where it lies instead of joined to a held tail."""
        if found is not None:  # a delimiter whose tail is not here yet: room for padding
            return size - self.keep
        dash = buf.find(b"-", max(pos, size - len(self.delimiter) + 1), size)
        release = size if dash < 0 else dash
        if buf.endswith(b"\r\n", pos, release):
            return release - 2
        if buf.endswith(_LF_OR_CR, pos, release):
            return release - 1
        return release

    def _forward(self, buf: bytes, pos: int, size: int, final: bool, events: list[Event]) -> None:
        """Hand ``buf[pos:size]``, bytes of the container's body, to the child level."""
        child = self.child
        assert child is not None
        if final:
            child.finish(buf, pos, size, events)
        else:
            child.feed(buf, pos, size, events)
        if child.state == _DONE:  # closed: the rest up to our delimiter is its epilogue
            self.state = _EPILOGUE
            self.child = None

    def _headers(
        self, buf: bytes, pos: int, stop: int, blank_line: int, size: int, final: bool
    ) -> bool:
        """The unusual header blocks: ``_HEADER_BLOCK`` matched from ``pos`` to ``stop`` (a
        blank line at ``blank_line``, or -1) in ``buf[:size]``. Returns True when more input is
        needed first; raises when the block is too large or cut short."""
        decoder = self.decoder
        limit = pos + decoder.max_header_size
        if stop > limit:
            raise LimitExceeded(2007, "Part header block too large")
        if blank_line >= 0:
            # "\r" may be the first half of the blank line's CRLF
            return stop == size and buf[stop - 1] == 13 and not final
        if pos == size:
            return True  # (at the end: a whole last delimiter without its "--")
        if _HEADER_LINE_START.match(buf, stop, size) and not (stop == pos and buf[stop] in b" \t"):
            # a header line (or a continuation) whose line break is not here
            if limit + 1 < size:
                raise LimitExceeded(2007, "Part header block too large")
            if final:
                raise IncompleteBody(2007, "Request body ends inside a MIME part's headers")
            return True
        if not final and _line_may_go_on(buf, pos, stop, size):
            if size - pos > decoder.max_header_size:
                raise LimitExceeded(2007, "Part header block too large")
            return True
        if stop == size:  # headers, then the end of the input: no body, no delimiter
            if final:
                raise IncompleteBody(2007, "Request body ends inside a MIME part's headers")
            return True
        if stop > pos:
            decoder.defects.append("no blank line after part headers")
        return False

    def _find(self, buf: bytes, hit: int, size: int, final: bool) -> tuple[int, int, bool] | None:
        """The first delimiter from ``hit`` (where ``piece`` was found, or -1) in ``buf[:size]``:
        (start, end, whether it closes the level), skipping near-misses; ``end`` is -1 when the
        bytes from ``start`` may still become one (more input decides)."""
        piece, offset, delimiter = self.piece, self.offset, self.delimiter
        while hit >= 0:
            start = hit - offset
            if piece is not delimiter and not buf.startswith(delimiter, start, size):
                self.misses += 1
                if self.misses > _MAX_PIECE_MISSES:
                    piece, offset = self.piece, self.offset = delimiter, 0
                hit = buf.find(piece, start + 1 + offset, size)
                continue
            tail_at = start + len(delimiter)
            if buf.startswith(b"\r\n", tail_at, size):  # the usual tail
                return start, tail_at + 2, False
            tail = _TAIL.match(buf, tail_at, size)
            close_mark, padding, line_break = tail.groups()  # type: ignore[union-attr]
            end = tail.end()  # type: ignore[union-attr]
            if close_mark:
                return start, end, True
            if len(padding) <= MAX_PADDING:  # else far too much padding: data
                if end == size and not final and line_break in (None, b"\r"):
                    return start, -1, False  # more padding, an LF, or "--" may follow
                if line_break or end == size:
                    return start, end, False
                if not final and end == tail_at and tail_at + 1 == size and buf[tail_at] == 45:
                    return start, -1, False  # "--b-": may become "--b--"
            # a near-miss: a delimiter's text followed by other data
            decoder = self.decoder
            decoder.near_misses += 1
            if decoder.near_misses > MAX_NEAR_MISSES:
                raise LimitExceeded(
                    2007, f"More than {MAX_NEAR_MISSES} boundary-like strings in the body"
                )
            hit = buf.find(piece, start + 1 + offset, size)
        return None


def _crlf_fields(raw: bytes) -> list[tuple[str, str]]:
    """:func:`parse_header_block` for a block ``_CRLF_BLOCK`` matched (its last CRLF cut off):
    the same fields, found by splitting instead of a second regex."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    fields = []
    for line in text.split("\r\n"):
        name, _, value = line.partition(":")
        fields.append((name, value.strip()))
    return fields


def _boundary(headers: list[tuple[str, str]]) -> bytes | None:
    """The delimiter's boundary of a part that is a multipart container, else None."""
    boundary = multipart_boundary(header_value(headers, "content-type"))
    if boundary is None:
        return None
    try:
        return boundary.encode("latin-1")
    except UnicodeEncodeError:
        return boundary.encode()


def _line_may_go_on(buf: bytes, start: int, end: int, size: int) -> bool:
    """Can the incomplete line at ``end`` (after a header block from ``start``) still become a
    header line or the blank line ending the block, ``buf[:size]`` being all there is?"""
    if buf.find(b"\n", end, size) >= 0 or buf.find(b"\r", end, size) >= 0:
        return False  # the line is complete: it is the body's first line
    if end == start and buf[end:size].strip(b" \t") == b"":
        return True  # blanks may become the blank line
    return _HEADER_PREFIX.fullmatch(buf, end, size) is not None


class MultipartDecoder:
    """Push parser for one multipart body: ``feed(chunk)`` then ``close()``, each returning events.

    .. code-block:: python

        decoder = MultipartDecoder(b"----=_Part_1")
        for chunk in chunks:
            for event in decoder.feed(chunk):
                ...
        for event in decoder.close():
            ...

    The events do not depend on how the body is cut into chunks.

    :param boundary: the ``boundary`` parameter of the body's Content-Type.
    :param max_parts: most parts (leaves and nested containers) accepted in the whole body.
    :param max_depth: most levels of multipart nesting, the body's own level included.
    :param max_header_size: most bytes in one part's header block.
    :raises LimitExceeded: when a limit is passed (from ``feed`` or ``close``).
    :raises MalformedRequest: when the body holds no part at all.
    :raises IncompleteBody: from ``close``, when the body ends inside a part or a delimiter.
    """

    def __init__(
        self,
        boundary: bytes,
        *,
        max_parts: int = DEFAULTS.max_parts,
        max_depth: int = DEFAULTS.max_depth,
        max_header_size: int = DEFAULTS.max_part_header_size,
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
        #: near-misses met in the whole body, all levels together
        self.near_misses = 0
        self._level = _Level(self, b"--" + boundary, 0)

    def feed(self, data: bytes) -> list[Event]:
        """Take the next chunk of the body and return the events it completes."""
        level = self._level
        if level.state == _DONE or not data:
            return []  # the epilogue is ignored without being buffered
        events: list[Event] = []
        level.feed(data, 0, len(data), events)
        return events

    def close(self) -> list[Event]:
        """Signal the end of the body and return the remaining events."""
        level = self._level
        if level.state == _DONE:
            return []
        events: list[Event] = []
        level.finish(b"", 0, 0, events)
        if level.state == _DONE:
            return events
        if self.part_count == 0:
            raise MalformedRequest(2007, "No multipart delimiter found in the body")
        innermost = level
        while innermost.child is not None:
            innermost = innermost.child
        if innermost.state in (_BODY, _PREAMBLE):
            raise IncompleteBody(2007, "Request body ends inside a MIME part (truncated)")
        # the last delimiter was whole but no close delimiter followed: tolerated
        self.defects.append("missing close delimiter")
        for depth in range(innermost.depth - 1, -1, -1):
            events.append(PartEnd(depth))
        level.state = _DONE
        level.held = b""
        return events
