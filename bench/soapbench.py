"""SOAP envelope handling: bare ``defusedxml`` parse vs parse + extraction, and ours.

Three contenders on the root part's bytes:

* ``defusedxml``: ``defusedxml.ElementTree.fromstring(soap)`` and nothing else (the
  reference the target is stated against);
* ``defusedxml+find``: the same plus a hand-written extraction of TransactionID,
  MM7Version, the operation element and its namespace (what any receiver must do);
* ``ours``: ``flask_mm7._soap``'s envelope reader (the first of ``read_envelope``,
  ``parse_envelope``, ``parse``, ``read`` that exists), skipped when absent.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Optional, Tuple

SOAP_ENV = "{http://schemas.xmlsoap.org/soap/envelope/}"
OURS_NAMES = ("read_envelope", "parse_envelope", "parse", "read")


def bare_defusedxml(soap: bytes) -> Any:
    from defusedxml.ElementTree import fromstring

    return fromstring(soap)


def defusedxml_extract(soap: bytes) -> Tuple[str, str, str, str]:
    """fromstring + TransactionID, operation name, its namespace, MM7Version."""
    from defusedxml.ElementTree import fromstring

    root = fromstring(soap)
    header = root.find(SOAP_ENV + "Header")
    tid = ""
    if header is not None:
        for el in header:
            if el.tag.endswith("}TransactionID") or el.tag == "TransactionID":
                tid = (el.text or "").strip()
                break
    body = root.find(SOAP_ENV + "Body")
    if body is None or len(body) == 0:
        raise ValueError("no SOAP Body operation")
    op = body[0]
    ns, _, name = op.tag[1:].partition("}")
    version = ""
    for el in op:
        if el.tag.endswith("}MM7Version"):
            version = (el.text or "").strip()
            break
    return tid, name, ns, version


def ours_reader() -> Optional[Tuple[str, Callable[[bytes], Any]]]:
    """(qualified name, function) of our envelope reader, or None when not there yet."""
    try:
        mod = importlib.import_module("flask_mm7._soap")
    except ImportError:
        return None
    for name in OURS_NAMES:
        fn = getattr(mod, name, None)
        if callable(fn):
            return f"flask_mm7._soap.{name}", fn
    return None


def contenders() -> Dict[str, Optional[Callable[[bytes], Any]]]:
    """name -> function (None when unavailable), in table order."""
    ours = ours_reader()
    return {
        "defusedxml": bare_defusedxml,
        "defusedxml+find": defusedxml_extract,
        "ours": ours[1] if ours else None,
    }
