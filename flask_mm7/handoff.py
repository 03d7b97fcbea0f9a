"""Hand a received message to a worker: write it to a directory that outlives the request, and
rebuild it there.

The handler calls :func:`save` (then enqueues the returned path on a task queue: RQ, Celery...)
and answers 1000 only when both succeeded; the worker calls :func:`loaded` and gets the same kind
of message the handler had (a frozen ``DeliverRequest``, ``DeliveryReport`` or ``ReadReply``,
its attachments readable from files). On disk, one directory per message::

    <directory>/<name>/message.json   its fields, as JSON
    <directory>/<name>/0.bin, 1.bin   its attachments' decoded content

The directory is written under a temporary name, flushed to disk, then renamed: a worker never
sees half a message, and a message whose save returned survives a crash of the host. ``name``
is a digest of the message itself (operation, TransactionID, sender, SOAP element and
attachments), so the same message saved twice (a relay's retry) lands in the same directory,
the first copy kept, and the name is a ready idempotency key (an RQ job id, say). Stdlib only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import typing as t
from xml.etree import ElementTree

import defusedxml.ElementTree
from werkzeug.datastructures import Headers

from ._attachments import Attachment
from ._messages import Address, DeliverRequest, DeliveryReport, Message, ReadReply

FORMAT = 1
_TYPES: dict[str, type[t.Any]] = {
    cls.__name__: cls for cls in (DeliverRequest, DeliveryReport, ReadReply)
}
#: fields stored on their own (not as JSON values)
_SPECIAL = ("headers", "element", "attachments", "defects")
_BLOCK = 256 * 1024


def _encode(value: t.Any) -> t.Any:
    if isinstance(value, Address):
        return {"$address": dataclasses.asdict(value)}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"handoff cannot store a {type(value).__name__}")


def _decode(value: t.Any) -> t.Any:
    if isinstance(value, dict):
        if "$address" in value:
            return Address(**value["$address"])
        if "$datetime" in value:
            return datetime.datetime.fromisoformat(value["$datetime"])
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _sync(path: str | os.PathLike[str]) -> None:
    """fsync a file or a directory (where the platform can)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a directory on Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(msg: Message, directory: str | os.PathLike[str], *, fsync: bool = True) -> pathlib.Path:
    """Write ``msg`` into a new subdirectory of ``directory`` (created if missing); its path.

    Call it in the handler, before the handler returns (the attachments are gone after).
    ``fsync=False`` skips flushing to disk (faster; a power loss may then lose the message).
    """
    root = pathlib.Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    temporary = pathlib.Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        identity = hashlib.sha256()
        sender = getattr(msg, "sender", None)
        for text in (type(msg).__name__, msg.transaction_id, str(sender or "")):
            identity.update(text.encode("utf-8", "surrogatepass") + b"\0")
        element = ElementTree.tostring(msg.element, encoding="unicode")
        identity.update(hashlib.sha256(element.encode("utf-8", "surrogatepass")).digest())
        attachments = []
        for attachment in getattr(msg, "attachments", ()):
            name = f"{attachment.index}.bin"
            content = hashlib.sha256()
            stream = attachment.stream
            position = stream.tell()
            stream.seek(0)
            try:
                with open(temporary / name, "xb") as out:
                    while block := stream.read(_BLOCK):
                        content.update(block)
                        out.write(block)
                    if fsync:
                        out.flush()
                        os.fsync(out.fileno())
            finally:
                stream.seek(position)
            identity.update(attachment.mimetype.encode("ascii", "backslashreplace") + b"\0")
            identity.update(content.digest())
            attachments.append(
                {
                    "file": name,
                    "headers": [list(pair) for pair in attachment.headers.items()],
                    "size": attachment.size,
                    "container_ids": list(attachment.container_ids),
                    "index": attachment.index,
                }
            )
        fields = {
            field.name: _encode(getattr(msg, field.name))
            for field in dataclasses.fields(msg)
            if field.name not in _SPECIAL
        }
        record = {
            "format": FORMAT,
            "type": type(msg).__name__,
            "fields": fields,
            "headers": [list(pair) for pair in msg.headers.items()],
            "element": element,
            "element_tail": msg.element.tail,  # text after the element: not in its XML
            "defects": list(msg.defects),
            "attachments": attachments,
        }
        with open(temporary / "message.json", "x", encoding="ascii") as out:
            json.dump(record, out, indent=1)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        final = root / identity.hexdigest()[:40]
        try:
            os.rename(temporary, final)
        except OSError:
            if not (final / "message.json").is_file():
                raise
            shutil.rmtree(temporary)  # saved before (a retry): keep the first copy
        if fsync:
            _sync(root)
        return final
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def load(path: str | os.PathLike[str]) -> Message:
    """The message :func:`save` wrote to ``path``: a frozen dataclass whose attachments read
    from the saved files, open until :func:`close` (or use :func:`loaded`)."""
    root = pathlib.Path(path)
    with open(root / "message.json", encoding="ascii") as source:
        record = json.load(source)
    if record.get("format") != FORMAT:
        raise ValueError(f"{root}: not a saved message of format {FORMAT}")
    cls = _TYPES[record["type"]]
    fields = {name: _decode(value) for name, value in record["fields"].items()}
    fields["headers"] = Headers([tuple(pair) for pair in record["headers"]])
    fields["element"] = defusedxml.ElementTree.fromstring(record["element"])
    fields["element"].tail = record["element_tail"]
    fields["defects"] = tuple(record["defects"])
    if record["attachments"] or cls is DeliverRequest:
        fields["attachments"] = [
            Attachment(
                [(name, value) for name, value in item["headers"]],
                file=open(root / pathlib.PurePath(item["file"]).name, "rb"),  # noqa: SIM115
                size=item["size"],
                container_ids=tuple(item["container_ids"]),
                index=item["index"],
            )
            for item in record["attachments"]
        ]
    return t.cast(Message, cls(**fields))


def close(msg: Message) -> None:
    """Close the files of a loaded message's attachments."""
    for attachment in getattr(msg, "attachments", ()):
        attachment.close()


@contextlib.contextmanager
def loaded(path: str | os.PathLike[str]) -> t.Iterator[Message]:
    """``with loaded(path) as msg:`` :func:`load`, then :func:`close` at the end."""
    msg = load(path)
    try:
        yield msg
    finally:
        close(msg)
