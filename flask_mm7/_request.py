"""The one immutable request an adapter builds from WSGI: method, path, the Content-Type
parsed once, the body's length, the headers, and the body as a bounded stream.

:meth:`Request.from_environ` also checks the HTTP framing an MM7 POST needs, before a byte of
the body is read: a Content-Type that is multipart (not form-data) or XML (415), a
Content-Length of ASCII digits (400) within ``max_content_length`` (413), or a chunked body
(counted as it is read), else 411. Knows nothing of MIME, SOAP or Flask.
"""

from __future__ import annotations

import types
import typing as t

from werkzeug.datastructures import EnvironHeaders

from ._errors import BodyTooLarge, IncompleteBody, LengthRequired, UnsupportedMediaType
from ._headers import is_xml_type, parse_options

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment


class Request(t.NamedTuple):
    """An MM7 POST as the receiver sees it."""

    method: str
    path: str
    #: the media type, lower case (``multipart/related``, ``text/xml``)
    mimetype: str
    #: the Content-Type parameters (``boundary``, ``start``, ``charset``...), keys lower case
    options: t.Mapping[str, str]
    #: the Content-Length, or None for a chunked body
    content_length: int | None
    headers: EnvironHeaders
    #: the body, read no further than its length or ``max_content_length``
    input: BoundedInput
    remote_addr: str | None = None

    @classmethod
    def from_environ(cls, environ: WSGIEnvironment, max_content_length: int) -> Request:
        """The request of ``environ``; raises an :class:`~flask_mm7._errors.MM7Error` when its
        framing is not one an MM7 body can have."""
        headers = EnvironHeaders(environ)
        mimetype, options = parse_options(headers.get("Content-Type"))
        acceptable = (
            mimetype != "multipart/form-data"
            if mimetype.startswith("multipart/")
            else is_xml_type(mimetype)
        )
        if not acceptable:
            raise UnsupportedMediaType(2007, "Content-Type must be multipart/related or XML")
        length = _content_length(environ, max_content_length)
        return cls(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=environ.get("PATH_INFO") or "/",
            mimetype=mimetype,
            options=types.MappingProxyType(options),
            content_length=length,
            headers=headers,
            input=BoundedInput(environ["wsgi.input"], length, max_content_length),
            remote_addr=environ.get("REMOTE_ADDR"),
        )


def _content_length(environ: WSGIEnvironment, limit: int) -> int | None:
    raw = environ.get("CONTENT_LENGTH", "").strip(" \t")  # HTTP's optional whitespace
    if raw:
        # 1*DIGIT, ASCII only: -1, abc, 1e3, "1, 2" are never read as empty, and
        # str.isdigit() alone passes "²" (int() then raises) and "٣" (int() reads 3)
        if not (raw.isascii() and raw.isdigit()):
            raise IncompleteBody(2007, "Invalid Content-Length")
        digits = raw.lstrip("0") or "0"
        # compared by length first: int() refuses more than 4300 digits (Python 3.11+)
        if len(digits) > len(str(limit)) or int(digits) > limit:
            raise BodyTooLarge(2007, f"Request body larger than {limit} bytes")
        return int(digits)
    if environ.get("wsgi.input_terminated"):  # chunked: counted as it is read
        return None
    raise LengthRequired(2007, "Content-Length required")


class BoundedInput:
    """``wsgi.input`` read no further than Content-Length, or counted up to the size limit.

    Hand-written rather than ``werkzeug.wsgi.get_input_stream``: that one reads an invalid
    Content-Length (``-1``, ``abc``) as an empty body, and refuses a chunked body of exactly
    the limit; MM7 needs both told apart (400 vs a valid request; "at the limit" is allowed).
    """

    def __init__(self, raw: t.IO[bytes], length: int | None, limit: int) -> None:
        self._raw = raw
        self._length = length
        self._remaining = length
        self._limit = limit
        self._total = 0

    @property
    def bytes_read(self) -> int:
        """How many bytes of the body were read (a chunked body's size once it is read)."""
        if self._remaining is not None and self._length is not None:
            return self._length - self._remaining
        return self._total

    def read(self, size: int = -1) -> bytes:
        if self._remaining is not None:
            if self._remaining <= 0:
                return b""
            size = self._remaining if size < 0 else min(size, self._remaining)
        else:  # chunked: never read more than one byte past the limit
            room = self._limit + 1 - self._total
            size = room if size < 0 else min(size, room)
        try:
            data = self._raw.read(size)
        except Exception as exc:  # noqa: BLE001
            # a reset connection, a closed socket, or the server's own error for broken
            # chunked framing (gunicorn's and Werkzeug's are not all OSErrors): the sender's
            # fault, answered with a Client Fault and logged in one line, never a traceback
            raise IncompleteBody(
                2007, f"Request body could not be read ({type(exc).__name__}: {exc})"[:200]
            ) from None
        if self._remaining is not None:
            if not data:
                raise IncompleteBody(2007, "Request body shorter than its Content-Length")
            self._remaining -= len(data)
        else:
            self._total += len(data)
            if self._total > self._limit:
                raise BodyTooLarge(2007, f"Request body larger than {self._limit} bytes")
        return data
