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

Linear by construction: delimiters are found with ``bytes.find`` (a near-miss costs a Python
step, so a body may hold at most :data:`MAX_NEAR_MISSES` of them) and each level's next one is
searched for once per buffer, not again after every inner part; a header block is matched by
unambiguous regexes bounded by the header size limit; and bytes that must wait for more input
are parsed again only once the input held has doubled, so a body fed in tiny pieces costs
linear time too. Every tolerated deviation is recorded in :attr:`MultipartDecoder.defects`.
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

_PREAMBLE, _HEADERS, _BODY, _EPILOGUE, _DONE = range(5)


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


class _Search:
    """How the delimiters of one or more adjacent open levels are looked for: by ``needle``,
    the delimiter of the outermost of them, which the others extend (the testing kit's inner
    boundary extends the outer one, so one scan finds both), and where in the buffer being
    parsed the last search started and what it found.

    ``bytes.find`` steps byte by byte through a run of any byte its needle holds, and every
    delimiter holds ``-``: content made of dashes cost 5-10x random bytes. So the search
    looks for ``piece``, the needle's longest run without a ``-`` (at ``offset`` in it), when
    it is long enough to be as rare as the delimiter (relays' boundaries have one), and checks
    the whole needle around each hit; content that holds the piece alone many times (a Python
    step each) makes it search for the whole needle instead."""

    __slots__ = (
        "needle", "piece", "offset", "misses", "first", "searched_from", "found", "level"
    )  # fmt: skip

    def __init__(self, needle: bytes, first: int) -> None:
        self.needle = needle
        piece = max(needle.split(b"-"), key=len)
        if len(piece) < _MIN_PIECE:
            piece = needle
        self.piece = piece
        self.offset = needle.index(piece)
        self.misses = 0
        #: the outermost level searched for; the next search's ``first`` ends its range
        self.first = first
        # An outer level is searched again only past its last result, not after each inner
        # part (which would scan the rest of the nested multipart once per part).
        self.searched_from = -1
        self.found: _Found | None = None
        self.level = -1

    def missed(self) -> None:
        """The piece was found without its needle around it."""
        self.misses += 1
        if self.misses > _MAX_PIECE_MISSES:
            self.piece, self.offset = self.needle, 0


#: the shortest ``-``-free piece of a delimiter worth searching for instead of all of it
_MIN_PIECE = 8
#: hits of a piece without its delimiter before a search looks for the whole delimiter
_MAX_PIECE_MISSES = 64


class _Found(t.NamedTuple):
    """A delimiter in the buffer: where it starts and ends, and whether it closes its level.
    ``end`` is -1 when the bytes from ``start`` may still become one: more input decides."""

    start: int
    end: int
    is_close: bool


_WAIT = -1


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
        #: each open level's delimiter, outermost first, and whether its preamble is over
        self._delimiters = [b"--" + boundary]
        self._seen = [False]
        self._searches = [_Search(self._delimiters[0], 0)]
        self._near_misses = 0
        #: bytes held back: more input decides what they are
        self._held = b""
        #: input fed since the decoder last stopped to wait (joined when it runs again)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._state = _PREAMBLE

    # -- public API ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Take the next chunk of the body and return the events it completes."""
        if self._state == _DONE or not data:
            return []  # the epilogue is ignored without being buffered
        self._pending.append(data)
        self._pending_size += len(data)
        # Bytes held back are parsed again with the new ones; doing so only once the new input
        # is at least as large as what is held keeps the total work linear in the input, however
        # small the pieces it is fed in.
        if self._pending_size < len(self._held):
            return []
        return self._run(final=False)

    def close(self) -> list[Event]:
        """Signal the end of the body and return the remaining events."""
        if self._state == _DONE:
            return []
        events = self._run(final=True)
        state = self._state
        if state == _DONE:
            return events
        if self.part_count == 0:
            raise MalformedRequest(2007, "No multipart delimiter found in the body")
        if state == _BODY or (state == _PREAMBLE and not self._seen[-1]):
            raise IncompleteBody(2007, "Request body ends inside a MIME part (truncated)")
        # the last delimiter was whole but no close delimiter followed: tolerated
        self.defects.append("missing close delimiter")
        for depth in range(len(self._delimiters) - 2, -1, -1):
            events.append(PartEnd(depth))
        self._state = _DONE
        self._held = b""
        return events

    # -- the state machine ------------------------------------------------------------------

    def _run(self, final: bool) -> list[Event]:
        """Advance through the held and pending bytes as far as they allow."""
        buf = b"".join([self._held, *self._pending])
        for search in self._searches:
            search.searched_from = -1  # a new buffer
        self._pending.clear()
        self._pending_size = 0
        events: list[Event] = []
        pos = 0
        waiting = False
        while self._state != _DONE and not waiting:
            if self._state == _HEADERS:
                pos, waiting = self._headers(buf, pos, final, events)
            else:
                pos, waiting = self._data(buf, pos, final, events)
        self._held = buf[pos:] if self._state != _DONE else b""
        return events

    def _data(self, buf: bytes, pos: int, final: bool, events: list[Event]) -> tuple[int, bool]:
        """In a part's data, a preamble or an epilogue: find the next delimiter and act on it.

        Returns where parsing goes on, and True when it must wait for more input."""
        found, level = self._next_delimiter(buf, pos, final)
        in_body = self._state == _BODY
        if found is None or found.end == _WAIT:
            if final:
                return pos, True  # close() decides what the unterminated rest is
            # release what cannot be part of a delimiter (or the line break before one) yet
            keep = max(len(d) for d in self._delimiters) + MAX_PADDING + 4
            release = len(buf) - keep
            if release <= pos:
                return pos, True
            if in_body:
                events.append(buf[pos:release])
            return release, True
        depth = len(self._delimiters) - 1
        if in_body:
            # the line break before the delimiter belongs to it (RFC 2046)
            data_end = found.start
            if buf.endswith(b"\r\n", pos, data_end):
                data_end -= 2
            elif buf.endswith((b"\n", b"\r"), pos, data_end):
                data_end -= 1
            if data_end > pos:
                events.append(buf[pos:data_end])
            events.append(PartEnd(depth))
        while depth > level:  # a delimiter of an outer level closes the inner multiparts
            self._pop()
            depth -= 1
            self.defects.append("nested multipart without close delimiter")
            events.append(PartEnd(depth))
        self._seen[level] = True
        if not found.is_close:
            self._state = _HEADERS
        elif level == 0:
            self._state = _DONE
        else:
            self._pop()
            events.append(PartEnd(level - 1))
            self._state = _EPILOGUE  # the container's epilogue, up to the next outer delimiter
        return found.end, False

    def _headers(self, buf: bytes, pos: int, final: bool, events: list[Event]) -> tuple[int, bool]:
        """At a part's header block: emit its PartStart and return where its body starts, and
        True when more input is needed first."""
        size = len(buf)
        if final and pos == size:
            return pos, True  # a whole last delimiter without its "--": close() tolerates it
        limit = pos + self.max_header_size
        block = _HEADER_BLOCK.match(buf, pos, min(size, limit + 1))
        stop = block.end()  # type: ignore[union-attr]
        blank_line = block.start(1)  # type: ignore[union-attr]
        if stop > limit:
            raise LimitExceeded(2007, "Part header block too large")
        if blank_line >= 0:
            end = blank_line
            if stop == size and buf[stop - 1] == 13 and not final:
                return pos, True  # "\r" may be the first half of the blank line's CRLF
        else:
            end = stop
            if _HEADER_LINE_START.match(buf, stop) and not (stop == pos and buf[stop] in b" \t"):
                # a header line (or a continuation) whose line break is not here
                if limit + 1 < size:
                    raise LimitExceeded(2007, "Part header block too large")
                if final:
                    raise IncompleteBody(2007, "Request body ends inside a MIME part's headers")
                return pos, True
            if not final and self._line_may_go_on(buf, pos, stop):
                if size - pos > self.max_header_size:
                    raise LimitExceeded(2007, "Part header block too large")
                return pos, True
            if stop == size:  # headers, then the end of the input: no body, no delimiter
                if final:
                    raise IncompleteBody(2007, "Request body ends inside a MIME part's headers")
                return pos, True
            if stop > pos:
                self.defects.append("no blank line after part headers")
        headers = parse_header_block(buf[pos:end]) if end > pos else []
        self.part_count += 1
        if self.part_count > self.max_parts:
            raise LimitExceeded(2007, f"More than {self.max_parts} MIME parts")
        depth = len(self._delimiters) - 1
        boundary = multipart_boundary(header_value(headers, "content-type"))
        if boundary is None:  # a leaf (a multipart without a boundary is one too: opaque)
            events.append(PartStart(headers, depth, False))
            self._state = _BODY
            return stop, False
        if len(self._delimiters) >= self.max_depth:
            raise LimitExceeded(2007, f"MIME parts nested deeper than {self.max_depth}")
        events.append(PartStart(headers, depth, True))
        try:
            raw = boundary.encode("latin-1")
        except UnicodeEncodeError:
            raw = boundary.encode()
        self._push(b"--" + raw)
        self._state = _PREAMBLE  # the nested multipart's preamble
        return stop, False

    def _push(self, delimiter: bytes) -> None:
        """Open a nested level: found by the innermost search when it extends its needle."""
        self._delimiters.append(delimiter)
        self._seen.append(False)
        last = self._searches[-1]
        if delimiter.startswith(last.needle):
            # a new search object: what the old one skipped may be the new level's
            self._searches[-1] = _Search(last.needle, last.first)
        else:
            self._searches.append(_Search(delimiter, len(self._delimiters) - 1))

    def _pop(self) -> None:
        """Close the innermost level."""
        self._delimiters.pop()
        self._seen.pop()
        last = self._searches.pop()
        if last.first < len(self._delimiters):  # the search served outer levels too
            self._searches.append(_Search(last.needle, last.first))

    @staticmethod
    def _line_may_go_on(buf: bytes, start: int, end: int) -> bool:
        """Can the incomplete line at ``end`` (after a header block from ``start``) still become
        a header line or the blank line ending the block?"""
        if buf.find(b"\n", end) >= 0 or buf.find(b"\r", end) >= 0:
            return False  # the line is complete: it is the body's first line
        if end == start and buf[end:].strip(b" \t") == b"":
            return True  # blanks may become the blank line
        return _HEADER_PREFIX.fullmatch(buf, end) is not None

    # -- finding delimiters -------------------------------------------------------------------

    def _next_delimiter(self, buf: bytes, pos: int, final: bool) -> tuple[_Found | None, int]:
        """The earliest delimiter of any open level at or after ``pos``, and its level.

        At the same position the inner level wins: its delimiter is the longer one."""
        best: _Found | None = None
        best_level = -1
        innermost = len(self._delimiters) - 1
        for search in reversed(self._searches):
            found = search.found
            if not (0 <= search.searched_from <= pos and (found is None or found.start >= pos)):
                search.found, search.level = self._search(search, innermost, buf, pos, final)
                search.searched_from = pos
                found = search.found
            if found is not None and (best is None or found.start < best.start):
                best, best_level = found, search.level
            innermost = search.first - 1
        return best, best_level

    def _search(
        self, search: _Search, innermost: int, buf: bytes, pos: int, final: bool
    ) -> tuple[_Found | None, int]:
        """The first delimiter at or after ``pos`` of the levels ``search`` covers (up to
        ``innermost``) and its level, skipping near-misses."""
        size = len(buf)
        while True:
            hit = buf.find(search.piece, pos + search.offset)
            if hit < 0:
                return None, -1
            start = hit - search.offset
            if search.piece is not search.needle and not buf.startswith(search.needle, start):
                search.missed()
                pos = start + 1
                continue
            for level in range(innermost, search.first - 1, -1):
                delimiter = self._delimiters[level]
                if not buf.startswith(delimiter, start):
                    continue
                tail_at = start + len(delimiter)
                if buf.startswith(b"\r\n", tail_at):  # the usual tail
                    return _Found(start, tail_at + 2, False), level
                tail = _TAIL.match(buf, tail_at)
                close_mark, padding, line_break = tail.groups()  # type: ignore[union-attr]
                end = tail.end()  # type: ignore[union-attr]
                if close_mark:
                    return _Found(start, end, True), level
                if len(padding) > MAX_PADDING:
                    continue  # far too much padding: data
                if end == size and not final and line_break in (None, b"\r"):
                    return _Found(start, _WAIT, False), level  # more padding, an LF, or "--"
                if line_break or end == size:
                    return _Found(start, end, False), level
                if not final and end == tail_at and tail_at + 1 == size and buf[tail_at] == 45:
                    return _Found(start, _WAIT, False), level  # "--b-": may become "--b--"
            # a near-miss: a delimiter's text followed by other data
            self._near_misses += 1
            if self._near_misses > MAX_NEAR_MISSES:
                raise LimitExceeded(
                    2007, f"More than {MAX_NEAR_MISSES} boundary-like strings in the body"
                )
            pos = start + 1
