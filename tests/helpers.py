"""Raw-bytes builders for the tests: exact control over every quirk, no parser of ours involved."""

from __future__ import annotations

import io
import os
import pathlib
import random
import time
import typing as t

import defusedxml.ElementTree as DefusedET

DATA = pathlib.Path(__file__).parent / "data"
NS6 = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
NS5 = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-5-MM7-1-0"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SEED_BOUNDARY = "----=_Part_139078_1411587550.1397492135426"
SEED_CONTENT_TYPE = (
    f'multipart/related; start="soap-start"; type="text/xml"; boundary="{SEED_BOUNDARY}"'
)


def seed_body(line_ending: bytes = b"\n") -> bytes:
    """The aggregator's printed example body, byte for byte (LF ends, NBSPs, glued delimiter)."""
    raw = (DATA / "seed-example.http").read_bytes()
    body = raw[raw.index(b"------=_Part") :]
    return body.replace(b"\n", line_ending) if line_ending != b"\n" else body


def deliver_inner(
    *,
    sender: str | None = None,
    recipients: str | None = None,
    href: str | None = 'href="cid:content"',
    extra: str = "",
    p: str = "mm7:",
) -> str:
    if sender is None:
        sender = f"<{p}Number>12125550123</{p}Number>"
    if recipients is None:
        recipients = f"<{p}To><{p}Number>222111</{p}Number></{p}To>"
    content = f'<{p}Content {href} allowAdaptations="true"/>' if href is not None else ""
    sender_xml = f"<{p}Sender>{sender}</{p}Sender>" if sender else ""
    return (
        f"<{p}LinkedID>L1</{p}LinkedID>{sender_xml}"
        f"<{p}Recipients>{recipients}</{p}Recipients>"
        f"<{p}TimeStamp>2014-04-14T16:15:23Z</{p}TimeStamp>{extra}{content}"
    )


def envelope(
    inner: str | None = None,
    *,
    operation: str = "DeliverReq",
    transaction_id: str = "TID-1",
    namespace: str = NS6,
    version: str | None = "6.8.0",
    soap_prefix: str = "env",
    mm7_prefix: str = "mm7",
    declaration: str = '<?xml version="1.0" encoding="UTF-8"?>\n',
) -> bytes:
    p = f"{mm7_prefix}:" if mm7_prefix else ""
    s = f"{soap_prefix}:" if soap_prefix else ""
    if inner is None:
        inner = deliver_inner(p=p)
    xmlns_mm7 = f'xmlns:{mm7_prefix}="{namespace}"' if mm7_prefix else f'xmlns="{namespace}"'
    xmlns_soap = f'xmlns:{soap_prefix}="{SOAP}"' if soap_prefix else ""
    version_xml = f"<{p}MM7Version>{version}</{p}MM7Version>" if version is not None else ""
    return (
        f"{declaration}<{s}Envelope {xmlns_soap} {xmlns_mm7}><{s}Header>"
        f'<{p}TransactionID {s}mustUnderstand="1">{transaction_id}</{p}TransactionID>'
        f"</{s}Header><{s}Body><{p}{operation}>{version_xml}{inner}</{p}{operation}>"
        f"</{s}Body></{s}Envelope>"
    ).encode()


Part = t.Tuple[t.Sequence[str], bytes]


class CountingInput(io.BytesIO):
    """``wsgi.input`` over bytes that counts what the app read; optionally trickles or breaks.

    :param max_read: ``read`` returns at most this many bytes a call (a slow socket).
    :param fail_after: ``read`` raises ConnectionResetError once this many bytes were read
        (a peer that went away mid-body).
    """

    def __init__(
        self, data: bytes = b"", *, max_read: int | None = None, fail_after: int | None = None
    ) -> None:
        super().__init__(data)
        self.bytes_read = 0
        self._max_read = max_read
        self._fail_after = fail_after

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        if self._fail_after is not None and self.bytes_read >= self._fail_after:
            raise ConnectionResetError(104, "Connection reset by peer")
        if self._max_read is not None:
            size = self._max_read if size < 0 else min(size, self._max_read)
        if self._fail_after is not None:
            left = self._fail_after - self.bytes_read
            size = left if size < 0 else min(size, left)
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = super().readline(size)
        self.bytes_read += len(data)
        return data


def multipart(
    parts: t.Sequence[Part],
    boundary: str = "BOUNDARY",
    *,
    nl: bytes = b"\r\n",
    preamble: bytes = b"",
    epilogue: bytes = b"",
    close: bool = True,
) -> bytes:
    """Join parts with RFC 2046 framing; each part is (header lines, body bytes)."""
    delimiter = b"--" + boundary.encode()
    out = [preamble]
    for headers, data in parts:
        out += [delimiter, nl]
        for line in headers:
            out += [line.encode(), nl]
        out += [nl, data, nl]
    if close:
        out += [delimiter, b"--", nl, epilogue]
    return b"".join(out)


def mm7_body(
    attachments: t.Sequence[Part] = (
        (["Content-Type: image/jpeg", "Content-ID: <img>"], b"\xff\xd8JPEG\r\n--data\xff\xd9"),
        (["Content-Type: text/plain; charset=utf-8", "Content-ID: <txt>"], b"hello"),
    ),
    *,
    soap: bytes | None = None,
    nested: bool = True,
    boundary: str = "outer-b",
    inner_boundary: str = "inner-b",
    nl: bytes = b"\r\n",
) -> tuple[bytes, str]:
    """A DeliverReq body: SOAP root + content (nested multipart/mixed by default)."""
    soap = soap if soap is not None else envelope()
    root: Part = (["Content-Type: text/xml; charset=utf-8", "Content-ID: <soap-start>"], soap)
    if nested:
        content: list[Part] = [
            (
                [
                    f'Content-Type: multipart/mixed; boundary="{inner_boundary}"',
                    "Content-ID: <content>",
                ],
                multipart(attachments, inner_boundary, nl=nl),
            )
        ]
    else:
        content = list(attachments)
    body = multipart([root, *content], boundary, nl=nl)
    return body, f'multipart/related; type="text/xml"; start="<soap-start>"; boundary="{boundary}"'


def parse_reply(body: bytes, *, trimmed: bool = True) -> dict[str, str | None]:
    """A reply envelope's fields, read with defusedxml (no DTD, no entities).

    Every element's text by local name (the first of a name wins; trimmed, "" as None, unless
    ``trimmed`` is False: then exactly as the parser reads it), plus ``operation``: the Body's
    element (``DeliverRsp``, ``Fault``, ...), and ``namespace``: the MM7 namespace (for a
    Fault, that of its detail's element). Asserts that the body is a SOAP 1.1 Envelope.
    The tests' one reply reader: independent of :func:`flask_mm7.testing.parse_reply`, whose
    own tests compare the two.
    """
    root = DefusedET.fromstring(body, forbid_dtd=True)
    assert root.tag == f"{{{SOAP}}}Envelope", root.tag
    found: dict[str, str | None] = {}
    for element in root.iter():
        if isinstance(element.tag, str):
            text = element.text
            found.setdefault(
                element.tag.rpartition("}")[2], (text or "").strip() or None if trimmed else text
            )
    body_element = next((e for e in root if e.tag == f"{{{SOAP}}}Body"), None)
    operation = next(iter(body_element), None) if body_element is not None else None
    found["operation"] = operation.tag.rpartition("}")[2] if operation is not None else None
    if found["operation"] == "Fault":
        detail = next((e for e in operation if e.tag.rpartition("}")[2] == "detail"), None)  # type: ignore[union-attr]
        operation = next(iter(detail), None) if detail is not None else None
    tag = operation.tag if operation is not None else ""
    found["namespace"] = tag[1:].partition("}")[0] if tag.startswith("{") else None
    return found


def splits(data: bytes, seed: int = 0) -> t.Iterator[list[bytes]]:
    """The same bytes cut in many ways: whole, byte by byte, prime sizes, random cuts."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for size in (2, 3, 7, 13, 64, 4096):
        yield [data[i : i + size] for i in range(0, len(data), size)]
    rng = random.Random(seed)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12))))
        yield [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def handles_in(directory: pathlib.Path) -> list[str]:
    """Targets of this process's open file descriptors inside ``directory``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


def flatten_events(events: t.Iterable[object]) -> list[tuple[t.Any, ...]]:
    """Decoder events as comparable tuples, adjacent data merged (chunking must not show).

    Asserts that no data event is empty.
    """
    from flask_mm7._mime import PartEnd, PartStart

    flat: list[tuple[t.Any, ...]] = []
    for event in events:
        if isinstance(event, bytes):
            assert event, "empty data event"
            if flat and flat[-1][0] == "data":
                flat[-1] = ("data", flat[-1][1] + event)
            else:
                flat.append(("data", event))
        elif isinstance(event, PartStart):
            flat.append(("start", tuple(event.headers), event.depth, event.is_multipart))
        else:
            assert isinstance(event, PartEnd)
            flat.append(("end", event.depth))
    return flat


class Clock:
    """A clock a test moves by hand (``clock.now += 10``), for the dedupe stores' ``clock=``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_for(predicate: t.Callable[[], bool], timeout: float) -> float:
    """Poll ``predicate`` until true; the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - start
