"""flask_mm7._xmltree.fromstring: the same tree and the same refusals as defusedxml's."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import defusedxml.ElementTree as DefusedET
import pytest
from defusedxml import DTDForbidden, EntitiesForbidden
from helpers import SEED_CONTENT_TYPE, seed_body

from flask_mm7 import _xmltree as xmltree
from flask_mm7._parts import read_mime

DOCUMENTS = {
    "seed envelope": None,  # filled in from helpers below
    "namespaced attributes": (
        b'<e:Envelope xmlns:e="urn:e" xmlns:m="urn:m"><e:Header>'
        b'<m:TransactionID e:mustUnderstand="1" plain="x">42</m:TransactionID>'
        b"</e:Header></e:Envelope>"
    ),
    "default namespace and unqualified children": (
        b'<Envelope xmlns="urn:e"><Body><Op xmlns=""><A>1</A><B b="2"/></Op></Body></Envelope>'
    ),
    "comments, PIs, CDATA, mixed content, character references": (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- c --><a><?pi x?>t<![CDATA[<b>]]>'
        b"<c>&#233;&amp;&lt;</c>tail<!-- in --><d/>end</a>\n"
    ),
    "attribute order and duplicate local names": (
        b'<a xmlns:p="urn:p" xmlns:q="urn:q" z="1" p:z="2" q:z="3" a="4"/>'
    ),
    "UTF-16 with BOM": '<?xml version="1.0" encoding="UTF-16"?><a b="\u00e9">\u20ac</a>'.encode(
        "utf-16"
    ),
    "Latin-1 declared": '<?xml version="1.0" encoding="ISO-8859-1"?><a>\u00e9</a>'.encode(
        "latin-1"
    ),
}


def _documents() -> dict[str, bytes]:
    body = read_mime(io.BytesIO(seed_body(b"\r\n")), SEED_CONTENT_TYPE)
    return {**DOCUMENTS, "seed envelope": body.root.getvalue()}


def _dump(element: ET.Element) -> list[tuple[object, ...]]:
    return [(e.tag, list(e.attrib.items()), e.text, e.tail) for e in element.iter()]


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_same_tree_as_defusedxml(name: str) -> None:
    data = _documents()[name]
    expected = DefusedET.fromstring(data, forbid_dtd=True)
    got = xmltree.fromstring(data)
    assert type(got) is ET.Element
    assert _dump(got) == _dump(expected)
    assert ET.tostring(got) == ET.tostring(expected)


REFUSED = {
    "internal DTD": (b"<!DOCTYPE a [<!ELEMENT a ANY>]><a/>", DTDForbidden),
    "external DTD": (b'<!DOCTYPE a SYSTEM "http://example.com/x.dtd"><a/>', DTDForbidden),
    "billion laughs": (
        b'<!DOCTYPE a [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;">]><a>&l2;</a>',
        DTDForbidden,
    ),
    "undefined entity": (b"<a>&x;</a>", ET.ParseError),
    "mismatched tag": (b"<a><b></a>", ET.ParseError),
    "two roots": (b"<a/><b/>", ET.ParseError),
    "empty": (b"", ET.ParseError),
    "truncated": (b"<a><b>", ET.ParseError),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_same_refusals_as_defusedxml(name: str) -> None:
    data, error = REFUSED[name]
    with pytest.raises(error):
        DefusedET.fromstring(data, forbid_dtd=True)
    with pytest.raises(error):
        xmltree.fromstring(data)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', EntitiesForbidden),
        (b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>', EntitiesForbidden),
    ],
)
def test_entities_and_external_references_refused_when_dtds_are_allowed(
    data: bytes, error: type[Exception]
) -> None:
    """With ``forbid_dtd=False`` defusedxml's other guards still hold."""
    for parse in (DefusedET.fromstring, xmltree.fromstring):
        with pytest.raises(error):
            parse(data, forbid_dtd=False)


def test_external_dtd_subset_is_never_fetched() -> None:
    """With DTDs allowed, an external subset is not loaded (expat's default), as in defusedxml."""
    data = b'<!DOCTYPE a SYSTEM "http://192.0.2.1/x.dtd"><a>t</a>'
    expected = DefusedET.fromstring(data, forbid_dtd=False)
    assert _dump(xmltree.fromstring(data, forbid_dtd=False)) == _dump(expected)


def test_name_cache_is_shared_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names are remembered across parses, and senders inventing names cannot grow the cache
    past its bound (the trees stay right when it is emptied mid-parse)."""
    monkeypatch.setattr(xmltree, "_MAX_NAMES", 50)
    monkeypatch.setattr(xmltree, "_NAMES", xmltree._Names())
    xmltree.fromstring(b'<a xmlns="urn:x"><b/></a>')
    assert xmltree._NAMES == {"urn:x}a": "{urn:x}a", "urn:x}b": "{urn:x}b"}
    for round_ in range(3):
        names = "".join(f'<n{round_}_{i} xmlns="urn:{i}" a{i}="v"/>' for i in range(40))
        data = f"<root>{names}</root>".encode()
        assert _dump(xmltree.fromstring(data)) == _dump(DefusedET.fromstring(data))
        assert len(xmltree._NAMES) <= 50
