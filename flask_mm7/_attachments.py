"""``Attachment``: one decoded MIME part of a received message, in memory or spooled to disk.

It behaves like Werkzeug's ``FileStorage`` (``read``, ``stream``, ``save``) and never turns a
sender's name into a path: :attr:`Attachment.safe_filename` is the only name to store under.
Knows nothing of MIME framing, SOAP or WSGI.
"""

from __future__ import annotations

import functools
import io
import mimetypes
import os
import shutil
import typing as t

from werkzeug.datastructures import Headers
from werkzeug.utils import secure_filename

from . import _charsets
from ._headers import parse_options
from ._mime import header_value

_STRIP = " \t\r\n\u00a0<>"


class AttachmentReleased(ValueError):
    """An attachment was read after its request ended (and its content was released)."""

    def __init__(self, attachment: Attachment) -> None:
        super().__init__(
            f"attachment {attachment.index} ({attachment.mimetype}) was released when its"
            " request ended: read or save it inside the handler"
        )


def strip_id(value: str | None) -> str | None:
    """A Content-ID or ``start`` value without angle brackets or padding, None when empty."""
    if value is None:
        return None
    value = value.strip(_STRIP)
    return value or None


class Attachment:
    """A leaf part of the message content, transfer-decoded.

    Small parts live in memory; larger ones were spooled to the request's temporary file.
    Either way it is released when the request ends: read or save it inside the handler.
    After that, reading it raises :class:`AttachmentReleased`, in memory or spooled alike.
    """

    def __init__(
        self,
        headers: list[tuple[str, str]],
        data: bytes | None = None,
        file: t.IO[bytes] | None = None,
        size: int | None = None,
        container_ids: tuple[str, ...] = (),
        index: int = 0,
    ) -> None:
        # header-derived attributes are computed on first use: most are never read
        self._raw_headers = headers
        self._data = data
        self._stream: t.IO[bytes] | None = file
        self._released = False
        #: decoded size in bytes
        self.size: int = len(data) if data is not None else (size or 0)
        #: Content-IDs (or Content-Locations) of the multiparts this part is nested in, outermost
        #: first: ``("default.cid",)`` for an image inside OpenMarket's multipart/mixed
        self.container_ids = container_ids
        #: position among the body's leaf parts, 0 for the first
        self.index = index

    def _header(self, name: str) -> str | None:
        return header_value(self._raw_headers, name)

    @property
    def content_type(self) -> str:
        """The full Content-Type header, e.g. ``image/jpeg; name="a.jpg"`` (RFC 2045's
        ``text/plain`` when absent)."""
        return self._header("content-type") or "text/plain"

    @functools.cached_property
    def _options(self) -> tuple[str, dict[str, str]]:
        return parse_options(self.content_type)

    @property
    def mimetype(self) -> str:
        """The media type alone, lower case, e.g. ``image/jpeg``."""
        return self._options[0] or "application/octet-stream"

    @property
    def mimetype_params(self) -> dict[str, str]:
        """The Content-Type parameters, keys in lower case."""
        return self._options[1]

    @property
    def content_id(self) -> str | None:
        """The Content-ID without angle brackets or padding, or None."""
        return strip_id(self._header("content-id"))

    @property
    def content_location(self) -> str | None:
        """The Content-Location header, or None."""
        return strip_id(self._header("content-location"))

    @property
    def transfer_encoding(self) -> str | None:
        """The Content-Transfer-Encoding the part was sent with (lower case), or None."""
        return strip_id((self._header("content-transfer-encoding") or "").lower())

    @functools.cached_property
    def filename(self) -> str | None:
        """The name the sender gave (Content-Disposition, ``name``, Content-Location).

        Untrusted: never use it as a path; see :attr:`safe_filename`.
        """
        disposition = self._header("content-disposition")
        filename = parse_options(disposition)[1].get("filename") if disposition else None
        if not filename:
            filename = self.mimetype_params.get("name")
        if not filename and self.content_location:
            filename = self.content_location.replace("\\", "/").rsplit("/", 1)[-1]
        return filename or None

    @property
    def headers(self) -> Headers:
        """The part's MIME headers."""
        return Headers(self._raw_headers)

    @property
    def safe_filename(self) -> str:
        """A file name safe to store under: no directories, no dots in front, never empty.

        Built from :attr:`filename`, else the Content-ID, through Werkzeug's
        ``secure_filename``; a name from the part's position and media type otherwise.
        """
        for candidate in (self.filename, self.content_id):
            if candidate:
                name = secure_filename(candidate)[:128]
                if name:
                    return name
        extension = mimetypes.guess_extension(self.mimetype) or ".bin"
        return f"part-{self.index}{extension}"

    @property
    def stream(self) -> t.IO[bytes]:
        """A binary file object with the decoded content."""
        if self._released:
            raise AttachmentReleased(self)
        if self._stream is None:
            self._stream = io.BytesIO(self._data or b"")
        return self._stream

    def read(self, size: int = -1) -> bytes:
        """Read from :attr:`stream` (the whole content the first time without arguments)."""
        return self.stream.read(size)

    def getvalue(self) -> bytes:
        """The whole decoded content, wherever the stream stands."""
        if self._released:
            raise AttachmentReleased(self)
        if self._data is not None:
            return self._data
        stream = self.stream
        position = stream.tell()
        stream.seek(0)
        try:
            return stream.read()
        finally:
            stream.seek(position)

    @property
    def text(self) -> str | None:
        """The content decoded by its charset for ``text/*`` parts (UTF-8 by default), else None.

        Undecodable bytes become U+FFFD; a charset that is not a real text encoding (unknown,
        ``base64``, ``undefined``...), UTF-7 under any name, and US-ASCII are read as UTF-8.
        Never raises.
        """
        if not self.mimetype.startswith("text/"):
            return None
        return _charsets.decode(self.getvalue(), self.mimetype_params.get("charset"))

    def save(self, dst: str | os.PathLike[str] | t.IO[bytes], buffer_size: int = 65536) -> None:
        """Write the content to a path or a binary file object.

        ``dst`` is yours to choose: never build it from :attr:`filename`; use
        :attr:`safe_filename`.
        """
        stream = self.stream
        stream.seek(0)
        if isinstance(dst, (str, os.PathLike)):
            with open(dst, "wb") as out:
                shutil.copyfileobj(stream, out, buffer_size)
        else:
            shutil.copyfileobj(stream, dst, buffer_size)

    def close(self) -> None:
        """Release the content (the request ended); reading it afterwards raises
        :class:`AttachmentReleased`."""
        self._released = True
        self._data = None
        if self._stream is not None:
            self._stream.close()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.mimetype} {self.size} bytes"
            f" content_id={self.content_id!r}>"
        )
