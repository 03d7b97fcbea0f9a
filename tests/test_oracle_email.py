"""``read_mime`` against an independent MIME parser: the stdlib ``email`` package.

Thousands of multipart/related messages are generated with ``email.mime`` and
``EmailMessage.set_content`` (nesting up to three levels, text in several charsets, binary data
in base64, quoted-printable, 8bit and binary, Content-IDs, folded headers, CRLF or LF line
ends), serialised by the stdlib generator, and read both by ``read_mime`` (whole, and streamed
in small chunks with spooling) and by ``email.message_from_bytes``. The two must find the same
leaves in the same order, with the same decoded bytes and the same headers.

``ORACLE_EMAIL_MESSAGES=50000`` runs more messages than the default 1,500.
"""

from __future__ import annotations

import email
import email.policy
import io
import os
import random
import typing as t
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest
from helpers import envelope

from flask_mm7._parts import Limits, MimeBody, read_mime

#: 1,500 messages take ~16 s of CPU (generation and the stdlib parser are most of it)
COUNT = int(os.environ.get("ORACLE_EMAIL_MESSAGES", "1500"))
POLICIES = {
    "CRLF": email.policy.SMTP,  # linesep "\r\n", max_line_length 78
    "LF": email.policy.default,  # linesep "\n"
}
WORDS = ["hello", "héllo", "Grüße", "привет", "你好", "naïve", "€100", "--", "=3D", "line"]
CHARSETS = ["utf-8", "iso-8859-1", "us-ascii", "utf-16", "koi8-r", "iso-8859-15"]
ENCODINGS = ["base64", "quoted-printable", "8bit", "binary", "7bit"]


def _text(rng: random.Random, charset: str) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(0, 40))]
    for i in range(len(words)):
        if rng.random() < 0.1:
            words[i] += rng.choice(["\n", "\r\n", "\n\n", " \n", "\t"])
    text = " ".join(words)
    return text.encode(charset, "replace").decode(charset) if charset != "utf-16" else text


def _data(rng: random.Random) -> bytes:
    size = rng.choice([0, 1, 2, 3, 4, 57, 76, 100, 1000, rng.randint(0, 20000)])
    kind = rng.random()
    if kind < 0.4:
        return rng.randbytes(size)
    if kind < 0.7:  # line-structured text with awkward bytes
        pieces = [b"abc", b"\r\n", b"\n", b"\r", b"=", b"--", b" ", b"\t", b"\xff\x00"]
        return b"".join(rng.choices(pieces, k=size // 2))
    return bytes(rng.choices(b"AZaz09 =.\n", k=size))


def _content_id(rng: random.Random, serial: list[int]) -> str:
    serial[0] += 1
    # at most ~70 characters: a longer one has no place to fold, and the stdlib generator
    # then writes it as RFC 2047 encoded words, which no relay does to a Content-ID
    local = rng.choice(["part", "image", "Text.File", "a" * rng.randint(1, 40)])
    return f"<{local}{serial[0]}@{rng.choice(['example.com', 'relay.example.net', 'x'])}>"


def _leaf(rng: random.Random, serial: list[int]) -> Message:
    """One leaf part, by the stdlib's own MIME builders."""
    choice = rng.random()
    if choice < 0.3:  # email.mime text: the charset picks the encoding
        charset = rng.choice(CHARSETS)
        part: Message = MIMEText(_text(rng, charset), rng.choice(["plain", "html"]), charset)
    elif choice < 0.6:  # EmailMessage text with an explicit transfer encoding
        charset = rng.choice(["utf-8", "iso-8859-1", "us-ascii"])
        text = _text(rng, charset)
        cte = rng.choice(["base64", "quoted-printable", "8bit", "7bit"])
        if cte == "7bit" and not text.isascii():
            cte = "8bit"
        part = EmailMessage()
        part.set_content(text, subtype=rng.choice(["plain", "xml"]), charset=charset, cte=cte)
        if rng.random() < 0.2:
            del part["MIME-Version"]
    elif choice < 0.8:  # EmailMessage bytes with an explicit transfer encoding
        data = _data(rng)
        cte = rng.choice(ENCODINGS)
        if cte == "7bit":
            data = bytes(b for b in data if 0 < b < 128 and b not in b"\r\n")
        part = EmailMessage()
        maintype, subtype = rng.choice([("application", "octet-stream"), ("image", "jpeg")])
        part.set_content(data, maintype=maintype, subtype=subtype, cte=cte)
    elif choice < 0.9:
        part = MIMEImage(_data(rng) or b"x", _subtype=rng.choice(["png", "gif", "jpeg"]))
    else:
        part = MIMEApplication(_data(rng), _subtype="octet-stream")
    if rng.random() < 0.8:
        part["Content-ID"] = _content_id(rng, serial)
    if rng.random() < 0.3:
        name = rng.choice(["a.jpg", "Résumé final version.pdf", "x" * 90 + ".txt"])
        part.add_header("Content-Disposition", "attachment", filename=name)
    if rng.random() < 0.3:  # long enough that the generator folds it
        part["X-Note"] = " ".join(rng.choice(WORDS[:2] + ["relay", "note"]) for _ in range(30))
    return part


def _container(rng: random.Random, serial: list[int], depth: int) -> MIMEMultipart:
    subtype = "related" if depth == 1 else rng.choice(["mixed", "related", "alternative"])
    container = MIMEMultipart(subtype)
    for _ in range(rng.randint(0 if depth > 1 else 1, 5)):
        if depth < 3 and rng.random() < 0.2:
            container.attach(_container(rng, serial, depth + 1))
        else:
            container.attach(_leaf(rng, serial))
    if depth > 1 and rng.random() < 0.7:
        container["Content-ID"] = _content_id(rng, serial)
    if rng.random() < 0.2:
        container.preamble = "This is a multi-part message in MIME format."
    if rng.random() < 0.2:
        container.epilogue = rng.choice(["", "trailing words", "\n"])
    return container


class Generated(t.NamedTuple):
    content_type: str
    body: bytes
    linesep: str


def generate(seed: int) -> Generated:
    """Message number ``seed``: the SOAP root, then random parts, serialised by the stdlib."""
    rng = random.Random(seed)
    serial = [0]
    message = _container(rng, serial, 1)
    root = MIMEBase("text", "xml", charset="utf-8")
    root.set_payload(envelope(transaction_id=f"TID-{seed}").decode())
    root["Content-ID"] = "<soap-start>"
    message._payload.insert(0, root)  # type: ignore[attr-defined]  # the root goes first
    message.set_param("type", "text/xml")
    if rng.random() < 0.7:
        message.set_param("start", rng.choice(["<soap-start>", "soap-start"]))
    linesep = rng.choice(list(POLICIES))
    out = io.BytesIO()
    BytesGenerator(out, policy=POLICIES[linesep]).flatten(message)
    raw = out.getvalue()
    blank = (linesep.replace("LF", "\n").replace("CR", "\r") * 2).encode()
    body = raw.partition(blank)[2]
    # the HTTP header arrives unfolded (the WSGI server joins it); the generator wrote the
    # boundary it chose into the message's own header
    content_type = _normalise(str(message["Content-Type"]))
    return Generated(content_type, body, linesep)


def _normalise(value: str) -> str:
    """A header value unfolded, runs of whitespace one space, no blanks around it.

    ``read_mime`` hands values unfolded that way; the stdlib keeps the source's line breaks.
    """
    return " ".join(value.split())


class Leaf(t.NamedTuple):
    headers: list[tuple[str, str]]
    data: bytes
    #: Content-IDs of the enclosing multiparts (not the body itself), "" for one without
    containers: tuple[str, ...]


def stdlib_leaves(body: Generated) -> list[Leaf]:
    """The leaves the stdlib parser finds, in order, with decoded payloads."""
    http = f"Content-Type: {body.content_type}\r\n\r\n".encode()
    message = email.message_from_bytes(http + body.body, policy=email.policy.default)
    assert not message.defects, message.defects
    leaves: list[Leaf] = []

    def walk(part: Message, containers: tuple[str, ...]) -> None:
        assert not part.defects, part.defects
        if part.is_multipart():
            for child in t.cast("list[Message]", part.get_payload()):
                inner = containers
                if child.is_multipart():
                    cid = next((v for n, v in child.raw_items() if n.lower() == "content-id"), "")
                    inner = (*containers, _normalise(cid).strip("<>"))
                walk(child, inner)
            return
        headers = [(name, _normalise(value)) for name, value in part.raw_items()]
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        leaves.append(Leaf(headers, payload, containers))

    walk(message, ())
    return leaves


def our_leaves(mime: MimeBody) -> list[Leaf]:
    parts = sorted([mime.root, *mime.parts], key=lambda part: part.index)
    assert [part.index for part in parts] == list(range(len(parts)))
    return [
        Leaf([(n, _normalise(v)) for n, v in part.headers.items()], part.read(), part.container_ids)
        for part in parts
    ]


class Trickle(io.BytesIO):
    """A stream that returns at most ``most`` bytes a read, as a socket may."""

    def __init__(self, data: bytes, most: int) -> None:
        super().__init__(data)
        self.most = most

    def read(self, size: int | None = -1) -> bytes:
        return super().read(self.most if size is None or size < 0 else min(size, self.most))


def check(seed: int) -> None:
    body = generate(seed)
    expected = stdlib_leaves(body)
    rng = random.Random(-seed)
    whole = read_mime(io.BytesIO(body.body), body.content_type, content_length=len(body.body))
    streamed_limits = Limits(
        chunk_size=rng.choice([1, 7, 64, 1000, 4096]),
        max_memory_body_size=rng.choice([0, 16, 300]),
        spool_threshold=rng.choice([0, 100, 5000]),
    )
    stream = Trickle(body.body, rng.choice([1, 3, 100, 10**6]))
    streamed = read_mime(stream, body.content_type, limits=streamed_limits)
    with whole, streamed:
        for mime in (whole, streamed):
            assert mime.root.content_id == "soap-start"
            assert mime.root.index == 0
            found = our_leaves(mime)
            assert [leaf.headers for leaf in found] == [leaf.headers for leaf in expected]
            assert [leaf.containers for leaf in found] == [leaf.containers for leaf in expected]
            for ours, theirs in zip(found, expected):
                assert ours.data == theirs.data, (seed, ours.headers)
            assert len(found) == len(expected)
            # transfer encodings as the stdlib reads them
            for part, leaf in zip(
                sorted([mime.root, *mime.parts], key=lambda p: p.index), expected
            ):
                cte = {n.lower(): v for n, v in leaf.headers}.get("content-transfer-encoding")
                assert part.transfer_encoding == (cte.lower() if cte else None)
        # well-formed MIME from the stdlib: nothing for us to tolerate, in one piece or many
        assert not whole.defects and not streamed.defects, (whole.defects, streamed.defects)


BATCHES = 20


@pytest.mark.parametrize("batch", range(BATCHES))
def test_read_mime_finds_what_the_stdlib_email_parser_finds(batch: int) -> None:
    for seed in range(batch, COUNT, BATCHES):
        check(seed)


def test_the_corpus_covers_what_it_claims() -> None:
    """The generator really produces every encoding, both line ends, nesting, folding."""
    seen: set[str] = set()
    for seed in range(120):
        body = generate(seed)
        seen.add(body.linesep)
        for leaf in stdlib_leaves(body):
            headers = {n.lower(): v for n, v in leaf.headers}
            seen.add(headers.get("content-transfer-encoding", "none"))
            seen.add(headers.get("content-type", "").split(";")[0])
            if leaf.containers:
                seen.add(f"depth {len(leaf.containers) + 1}")
            if b"charset=" in str(headers.get("content-type")).encode():
                seen.add(str(headers["content-type"]).rpartition("charset=")[2].strip('"'))
        if b"\n\t" in body.body or b"\n " in body.body:
            seen.add("folded")
    for wanted in [
        "CRLF", "LF", "base64", "quoted-printable", "8bit", "binary", "7bit", "depth 2",
        "depth 3", "folded", "utf-8", "iso-8859-1", "utf-16", "image/png", "text/xml",
    ]:  # fmt: skip
        assert wanted in seen, (wanted, sorted(seen))
