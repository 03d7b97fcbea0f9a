"""Split a well-formed multipart body held whole in memory with a few C-level calls, or decline.

:class:`flask_mm7.mime.MultipartDecoder` is the reference: a streaming state machine that
tolerates every deviation real relays send. Most bodies deviate in nothing, and most arrive
whole (the receive path reads a body of known, modest size in one call); for those, one
``bytes.find`` per part for its level's whole delimiter finds every part, where the decoder
spends Python on each delimiter, each search window and each event, and searches nested
levels for the short prefix their delimiters share. This module takes only bodies on which
it gives what the decoder gives (each case below is one where the two could differ;
``tests/test_wholebody.py`` checks the rest differentially); on anything else
:func:`split_whole` returns None and the caller runs the decoder, which also raises the
errors. It declines when:

* a delimiter is followed by anything but CRLF (a normal one) or ``--`` (a close one):
  transport padding, LF-only or CR-only framing, or a ``--boundary`` near-miss inside data;
* a part's data does not end with the CRLF before the next delimiter (a glued delimiter);
* a header block is not the usual one (:func:`flask_mm7.mime.quick_header_block`), or its
  blank line lies past the next delimiter;
* a level has no close delimiter (what follows a close delimiter is ignored, as the decoder
  ignores an epilogue);
* one open delimiter is a prefix of another (the decoder then decides level by level);
* a limit (parts, depth, boundary length) would be passed: the decoder raises the error;
* the body holds no part at all.

It keeps no state and raises nothing of its own. Knows nothing of transfer encodings, SOAP
or WSGI.
"""

from __future__ import annotations

import typing as t

from .mime import (
    QUICK_HEADER_WINDOW,
    declares_multipart,
    header_value,
    multipart_boundary,
    quick_header_block,
)

Headers = t.List[t.Tuple[str, str]]
#: a leaf part: its headers, its raw (still transfer-encoded) bytes, and the headers of the
#: multiparts it is nested in, outermost first
Leaf = t.Tuple[Headers, bytes, t.Tuple[Headers, ...]]

_CRLF = b"\r\n"
_CLOSE = b"--"


class _Declined(Exception):
    """The body is not one this module takes."""


def split_whole(
    body: bytes,
    boundary: bytes,
    *,
    max_parts: int = 256,
    max_depth: int = 4,
    max_header_size: int = 16384,
) -> list[Leaf] | None:
    """Every leaf part of ``body`` in document order, or None to let the decoder do it.

    The arguments are those of :class:`flask_mm7.mime.MultipartDecoder`; the result holds
    the same parts, headers and bytes as its events for the same body, with no defects.
    """
    if not boundary or len(boundary) > 256:
        return None
    splitter = _Splitter(body, max_parts, max_depth, min(max_header_size, QUICK_HEADER_WINDOW))
    try:
        splitter.level(0, len(body), [b"--" + boundary], ())
    except _Declined:
        return None
    return splitter.leaves or None


class _Splitter:
    """One body's walk: the leaves found so far and the limits to stay within."""

    __slots__ = ("body", "leaves", "parts", "max_parts", "max_depth", "window")

    def __init__(self, body: bytes, max_parts: int, max_depth: int, window: int) -> None:
        self.body = body
        self.leaves: list[Leaf] = []
        self.parts = 0
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.window = window

    def level(
        self, start: int, end: int, delimiters: list[bytes], containers: tuple[Headers, ...]
    ) -> None:
        """The parts of the multipart in ``body[start:end]``; ``delimiters[-1]`` is its own.

        Positions only: the one copy of a part's bytes is its final slice.
        """
        body = self.body
        delimiter = delimiters[-1]
        hit = body.find(delimiter, start, end)  # the preamble before it is ignored
        if hit < 0:
            raise _Declined
        while True:
            after = hit + len(delimiter)
            # both within this level's region: the decoder would take a "--" that is also
            # the start of the enclosing level's next delimiter as a close marker
            if body.startswith(_CLOSE, after, end):
                return  # the close delimiter: what follows is the epilogue, ignored
            if not body.startswith(_CRLF, after, end):
                raise _Declined  # padding, another line break, or a near-miss in data
            pos = after + 2
            hit = body.find(delimiter, pos, end)
            if hit < 0:
                raise _Declined  # no close delimiter
            block = quick_header_block(body, pos, self.window)
            if block is None:
                raise _Declined
            stop, text, headers = block
            if stop > hit:
                raise _Declined  # the blank line lies past the next delimiter
            self.parts += 1
            if self.parts > self.max_parts:
                raise _Declined
            if declares_multipart(text):
                inner = multipart_boundary(header_value(headers, "content-type"))
                if inner is not None:
                    self.nested(stop, hit, headers, inner, delimiters, containers)
                    continue
            # the CRLF before the next delimiter belongs to it (RFC 2046)
            if stop == hit:
                data = b""
            elif stop <= hit - 2 and body.startswith(_CRLF, hit - 2):
                data = body[stop : hit - 2]
            else:
                raise _Declined  # a delimiter glued to the data
            self.leaves.append((headers, data, containers))

    def nested(
        self,
        start: int,
        end: int,
        headers: Headers,
        boundary: str,
        delimiters: list[bytes],
        containers: tuple[Headers, ...],
    ) -> None:
        if len(delimiters) >= self.max_depth:
            raise _Declined
        try:
            raw = boundary.encode("latin-1")
        except UnicodeEncodeError:
            raw = boundary.encode()
        delimiter = b"--" + raw
        if any(delimiter.startswith(d) or d.startswith(delimiter) for d in delimiters):
            raise _Declined
        self.level(start, end, [*delimiters, delimiter], (*containers, headers))
