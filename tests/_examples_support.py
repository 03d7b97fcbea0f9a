"""Helpers for the example tests: load an example by path, the seed as captured, a tiny PNG.

Requests are built and replies read with :mod:`flask_mm7.testing`; this module adds only what
the examples' tests need beyond it.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import zlib
from pathlib import Path
from types import ModuleType

from flask_mm7.testing import MM7Request

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "seed-example.http"
SEED_TRANSACTION_ID = "369171411769819136"
_SEED_HEADERS = ("content-type", "soapaction", "user-agent", "x-openmarket-carrier-id")


def load_example(relpath: str) -> ModuleType:
    """Import ``examples/<relpath>`` by file path, once per test session."""
    name = "example_" + relpath.removesuffix(".py").replace("/", "_")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def seed_from_file() -> MM7Request:
    """The aggregator doc's printed example from ``tests/data/seed-example.http``, byte for byte.

    The body starts at the first ``------=_Part`` line (NBSPs, glued delimiter and all); the
    HTTP head above it gives the headers.
    """
    raw = SEED.read_bytes()
    start = raw.index(b"------=_Part")
    headers: dict[str, str] = {}
    for line in raw[:start].decode("utf-8").splitlines()[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in _SEED_HEADERS:
            headers[name.strip()] = value.strip(" \t\xa0")
    return MM7Request(headers, raw[start:], SEED_TRANSACTION_ID)


def tiny_png(width: int = 48, height: int = 32) -> bytes:
    """A valid RGB PNG with a colour gradient, made with zlib and struct (no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + b"".join(bytes((255 * x // width, 255 * y // height, 200)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
