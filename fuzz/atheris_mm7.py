"""Coverage-guided fuzzing of the MM7 receive path with atheris (libFuzzer), for long runs.

Same invariant as ``tests/test_fuzz.py``: whatever the bytes and the Content-Type, both the
WSGI middleware and the multipart decoder answer with an MM7 reply or a SOAP Fault (or an
``MM7Error`` for the decoder), never another exception, never a traceback or a leaked path,
and the decoder's events do not depend on how the bytes are chunked. And the time per byte:
the middleware and the decoder stay within a generous bound per byte of input (a quadratic
step or a Python step per byte, the two ways a parser freezes a worker, breaks it on inputs
of a few kilobytes already).

    pip install atheris
    python fuzz/atheris_mm7.py -max_total_time=3600 fuzz/corpus

Any assertion failure or unexpected exception stops the run and leaves a ``crash-*`` file;
replay it with ``python fuzz/atheris_mm7.py crash-<hash>``.
"""

from __future__ import annotations

import os
import sys
import time
import typing as t

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests"), os.path.join(HERE, "..")]

with atheris.instrument_imports(include=["flask_mm7"]):
    from flask_mm7._errors import MM7Error
    from flask_mm7._mime import MultipartDecoder

from helpers import SEED_CONTENT_TYPE, mm7_body, seed_body  # noqa: E402
from mm7_invariants import KNOWN_STATUSES, App, RawRequest, check_reply  # noqa: E402

_VALID_BODY, _VALID_TYPE = mm7_body()
CONTENT_TYPES = [
    _VALID_TYPE,
    SEED_CONTENT_TYPE,
    'multipart/related; boundary="outer-b"',
    "multipart/related",
    "text/xml; charset=utf-8",
    "text/xml; charset=utf-16",
    "application/soap+xml",
    None,
]
APP = App("middleware", lambda msg: [a.read() for a in msg.attachments] and None,
          spool_threshold=256, max_parts=32)  # fmt: skip


def _events(boundary: bytes, chunks: list[bytes]) -> tuple[list[t.Any], str | None]:
    try:
        decoder = MultipartDecoder(boundary, max_parts=16, max_depth=3, max_header_size=512)
        events: list[t.Any] = []
        for chunk in chunks:
            events += decoder.feed(chunk)
        events += decoder.close()
    except MM7Error as error:
        return [], type(error).__name__
    merged: list[t.Any] = []
    for event in events:
        if isinstance(event, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + event  # data events are bytes
        else:
            merged.append(event)
    return merged, None


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    provider = atheris.FuzzedDataProvider(data)
    choice = provider.ConsumeIntInRange(0, len(CONTENT_TYPES))
    if choice == len(CONTENT_TYPES):
        content_type: str | None = provider.ConsumeUnicodeNoSurrogates(80)
        content_type = content_type.encode("utf-8").decode("latin-1")
    else:
        content_type = CONTENT_TYPES[choice]
    max_read = provider.ConsumeIntInRange(1, 4096)
    split = provider.ConsumeIntInRange(1, 64)
    mode = provider.ConsumeIntInRange(0, 2)
    body = provider.ConsumeBytes(provider.remaining_bytes())
    if mode == 1:  # seed the valid body with the fuzzer's bytes spliced in
        cut = len(body) % (len(_VALID_BODY) + 1)
        body = _VALID_BODY[:cut] + body + _VALID_BODY[cut:]
    elif mode == 2:
        body = seed_body()[: len(body) % 3000] + body
    started = time.perf_counter()
    outcome = APP.run(RawRequest(body=body, content_type=content_type, max_read=max_read))
    _check_time(started, body, "the middleware")
    check_reply(outcome, allowed=KNOWN_STATUSES)

    started = time.perf_counter()
    whole = _events(b"outer-b", [body])
    _check_time(started, body, "the decoder")
    pieces = [body[i : i + split] for i in range(0, len(body), split)] or [b""]
    assert _events(b"outer-b", pieces) == whole, "chunking changed the decoder's events"


def _check_time(started: float, body: bytes, what: str) -> None:
    """At most 50 ms plus 2 µs a byte, instrumented: 100x what any body costs uninstrumented."""
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05 + 2e-6 * len(body), f"{what} took {elapsed:.3f} s on {len(body)} bytes"


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
