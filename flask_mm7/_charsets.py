"""A sender's charset label -> the name of a codec safe to decode the sender's bytes with.

A MIME ``charset`` or an XML ``encoding`` is the sender's choice, and Python's codec registry
answers to more than text encodings: bytes-to-bytes codecs (``base64``, ``hex``, ``zlib``,
``rot13``) raise on ``bytes.decode``, ``undefined`` always raises, ``idna`` and ``punycode``
raise under ``errors="replace"``, ``unicode_escape`` warns, and UTF-7 spells markup in plain
ASCII (``+ADw-`` is ``<``) under a dozen aliases. Only the standard library's real text
encodings are used; anything else is read as UTF-8, so ``decode`` never raises.
Knows nothing of MIME, XML or WSGI.
"""

from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import functools
import pkgutil

UTF8 = "utf-8"
#: codecs (by ``CodecInfo.name``) read as UTF-8 although they are text encodings: UTF-7 hides
#: markup; ``undefined``, ``idna`` and ``punycode`` raise, the Python-literal codecs warn; real
#: relays send UTF-8 labelled ``us-ascii``
_READ_AS_UTF8 = frozenset(
    ("utf-7", "undefined", "idna", "punycode", "unicode-escape", "raw-unicode-escape", "ascii")
)
#: no codec name is longer (``unicode_1_1_utf_7`` is the longest alias at 17)
_MAX_LABEL = 40


@functools.lru_cache(maxsize=1)
def _stdlib_names() -> frozenset[str]:
    """The codec modules of the standard library's ``encodings`` package."""
    modules = {info.name for info in pkgutil.iter_modules(encodings.__path__)}
    return frozenset(modules | set(encodings.aliases.aliases.values()))


def codec_for(label: str | None) -> str:
    """The codec to decode text labelled ``label`` with: UTF-8 for None, unknown, non-text or
    unsafe labels (see the module's docstring)."""
    if not label or len(label) > _MAX_LABEL:
        return UTF8
    return _codec_for(label)


@functools.lru_cache(maxsize=256)  # labels of at most _MAX_LABEL characters: bounded memory
def _codec_for(label: str) -> str:
    label = label.strip().lower()
    if not label.isascii() or not label.isprintable():
        return UTF8  # NUL and other controls make codecs.lookup raise ValueError
    # Resolved against the stdlib's own tables before ``codecs.lookup`` sees it: the registry
    # remembers every name it misses, so arbitrary labels would grow it without bound.
    name = encodings.normalize_encoding(label)
    aliases = encodings.aliases.aliases
    module = aliases.get(name) or aliases.get(name.replace(".", "_")) or name
    if module not in _stdlib_names():
        return UTF8
    try:
        info = codecs.lookup(module)
    except LookupError:  # mbcs, oem: Windows only
        return UTF8
    # ``_is_text_encoding`` is the stdlib's own mark: False for base64, hex, zlib, rot13...
    if not getattr(info, "_is_text_encoding", False) or info.name in _READ_AS_UTF8:
        return UTF8
    return UTF8 if info.name == UTF8 else module


def decode(data: bytes, label: str | None) -> str:
    """``data`` as text in the codec for ``label``; undecodable bytes become U+FFFD."""
    return data.decode(codec_for(label), "replace")
