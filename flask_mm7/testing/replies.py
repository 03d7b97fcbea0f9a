"""Post requests to an app and read its replies and Faults with defusedxml."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIApplication

from .requests import MM7Request


@dataclass(frozen=True)
class MM7Reply:
    """What the receiver answered, read with defusedxml (no DTDs, no entities).

    Every MM7 field is None when the body is not a SOAP envelope (e.g. an HTML error page).
    Element names are matched by local name, so any prefix, a qualified or unqualified
    TransactionID, and unqualified children are all accepted.
    """

    http_status: int
    headers: t.Dict[str, str]
    body: bytes
    #: ``"DeliverRsp"``, ``"DeliveryReportRsp"``, ``"ReadReplyRsp"``, ``"Fault"`` (or any
    #: other Body element's local name), or None
    operation: str | None = None
    status_code: int | None = None
    status_text: str | None = None
    transaction_id: str | None = None
    mm7_version: str | None = None
    #: the MM7 namespace of the reply element (for a Fault, of its detail element)
    namespace: str | None = None
    #: ``faultcode`` as sent (e.g. ``"env:Server"``), for a Fault
    fault_code: str | None = None
    fault_string: str | None = None
    #: why the body could not be read as SOAP, if it could not
    error: str | None = field(default=None, repr=False)

    @property
    def is_fault(self) -> bool:
        return self.operation == "Fault"

    @property
    def ok(self) -> bool:
        """HTTP 200, not a Fault, and MM7 StatusCode 1000."""
        return self.http_status == 200 and not self.is_fault and self.status_code == 1000

    @property
    def summary(self) -> str:
        """One line in words, e.g. ``1000 Success (DeliverRsp, TransactionID 3691)`` or
        ``Fault Server 3000 Server Error``."""
        status = ""
        if self.status_code is not None:
            status = f"{self.status_code} {self.status_text or _status_words(self.status_code)}"
        if self.is_fault:
            code = (self.fault_code or "").rpartition(":")[2]
            words = " ".join(w for w in ("Fault", code, status or self.fault_string or "") if w)
        elif self.operation is not None:
            words = status or f"no status ({self.operation})"
            details = [self.operation]
            if self.transaction_id is not None:
                details.append(f"TransactionID {self.transaction_id}")
            words += f" ({', '.join(details)})"
        else:
            words = f"no MM7 reply ({self.error or 'empty body'})"
        if self.http_status != 200:
            words = f"HTTP {self.http_status}: {words}"
        return words


def _status_words(code: int) -> str:
    from .._status import default_text

    return default_text(code)


def parse_reply(
    status: int | str,
    headers: t.Mapping[str, str] | t.Iterable[tuple[str, str]],
    body: bytes,
) -> MM7Reply:
    """Read a receiver's reply.

    :param status: the HTTP status as an int or a status line (``"200 OK"``).
    :param headers: a mapping or ``(name, value)`` pairs.
    """
    import defusedxml.ElementTree as DET

    http_status = int(str(status).split(None, 1)[0])
    items = headers.items() if isinstance(headers, t.Mapping) else headers
    header_dict = {str(k): str(v) for k, v in items}
    base = MM7Reply(http_status, header_dict, body)
    if not body.strip():
        return base
    try:
        root = DET.fromstring(body, forbid_dtd=True)
    except Exception as e:  # ParseError or a defusedxml refusal: not a reply we can read
        return _replace(base, error=f"{type(e).__name__}: {e}")
    if _local(root.tag) != "Envelope":
        return _replace(base, error=f"root element is {_local(root.tag)}, not Envelope")

    transaction_id = None
    header = _child(root, "Header")
    if header is not None:
        element = _child(header, "TransactionID")
        if element is not None:
            transaction_id = (element.text or "").strip()
    soap_body = _child(root, "Body")
    operation_el = next(iter(soap_body), None) if soap_body is not None else None
    if operation_el is None:
        return _replace(base, transaction_id=transaction_id, error="empty SOAP Body")

    operation = _local(operation_el.tag)
    fault_code = fault_string = None
    mm7_el = operation_el
    if operation == "Fault":
        fault_code = _text(_child(operation_el, "faultcode"))
        fault_string = _text(_child(operation_el, "faultstring"))
        detail = _child(operation_el, "detail")
        mm7_el = next(iter(detail), None) if detail is not None else None
    status_el = _child(mm7_el, "Status") if mm7_el is not None else None
    code_text = _text(_child(status_el, "StatusCode")) if status_el is not None else None
    try:
        status_code = int(code_text) if code_text is not None else None
    except ValueError:
        status_code = None
    return _replace(
        base,
        operation=operation,
        status_code=status_code,
        status_text=_text(_child(status_el, "StatusText")) if status_el is not None else None,
        transaction_id=transaction_id,
        mm7_version=_text(_child(mm7_el, "MM7Version")) if mm7_el is not None else None,
        namespace=_namespace(mm7_el.tag) if mm7_el is not None else None,
        fault_code=fault_code,
        fault_string=fault_string,
    )


def _replace(reply: MM7Reply, **changes: t.Any) -> MM7Reply:
    import dataclasses

    return dataclasses.replace(reply, **changes)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _namespace(tag: str) -> str | None:
    return tag[1:].partition("}")[0] if tag.startswith("{") else None


def _child(parent: t.Any, name: str) -> t.Any:
    for child in parent:
        if isinstance(child.tag, str) and _local(child.tag) == name:
            return child
    return None


def _text(element: t.Any) -> str | None:
    return None if element is None else (element.text or "").strip()


def post(
    target: t.Any,
    request: MM7Request,
    path: str = "/mm7",
    auth: tuple[str, str] | str | None = None,
) -> MM7Reply:
    """POST ``request`` to ``target`` in-process and read the reply.

    :param target: a Flask app (its ``test_client()`` is used), a Flask or Werkzeug test
        client, or any WSGI callable.
    :param auth: ``(user, password)`` for HTTP Basic, or a raw ``Authorization`` value.
    """
    from werkzeug.test import Client

    if isinstance(target, Client):
        client = target
    elif hasattr(target, "test_client") and hasattr(target, "wsgi_app"):
        client = target.test_client()
    elif callable(target):
        client = Client(t.cast("WSGIApplication", target))
    else:
        raise TypeError(f"cannot post to {type(target).__name__}: need a WSGI app or client")
    response = client.open(request.environ(path, auth=auth))
    try:
        body = response.get_data()
        return parse_reply(response.status_code, dict(response.headers.items()), body)
    finally:
        response.close()
