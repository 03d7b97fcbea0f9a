"""Large attachments are spooled to ``spool_dir`` while the handler runs, and nothing is left
behind afterwards (files or open handles), whatever the outcome of the request."""

from __future__ import annotations

import base64
import io
import os
import pathlib
import typing as t

import pytest
from conftest import Harness
from flask import Flask
from helpers import envelope, handles_in, mm7_body, multipart, parse_reply
from sec_helpers import CountingInput, post_stream

from flask_mm7 import MM7, Attachment, MM7Middleware
from flask_mm7._attachments import AttachmentReleased

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="open handles are counted through /proc"
)

KINDS = ["middleware", "extension"]
THRESHOLD = 4096
BIG = bytes(range(256)) * 200  # 51,200 bytes: spooled
SMALL = b"small text"


def open_handle_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def is_file_backed(part: Attachment) -> bool:
    return not isinstance(part.stream, io.BytesIO)


def body_with(*datas: bytes) -> tuple[bytes, str]:
    parts = [
        (["Content-Type: application/octet-stream", f"Content-ID: <p{i}>"], data)
        for i, data in enumerate(datas)
    ]
    return mm7_body(parts)


@pytest.fixture
def spool(tmp_path: pathlib.Path) -> pathlib.Path:
    directory = tmp_path / "spool"
    directory.mkdir()
    return directory


#: what one request may hold in memory: less than the test bodies, so they are streamed
MEMORY = 2 * THRESHOLD


def harness_for(kind: str, spool: pathlib.Path, memory: int = MEMORY) -> Harness:
    return Harness(
        kind, spool_threshold=THRESHOLD, spool_dir=str(spool), max_memory_body_size=memory
    )


def assert_clean(spool: pathlib.Path, before: int) -> None:
    assert handles_in(spool) == []
    assert os.listdir(spool) == []
    assert open_handle_count() == before


@pytest.mark.parametrize("kind", KINDS)
def test_large_part_is_file_backed_in_spool_dir_during_the_handler(
    kind: str, spool: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    harness = harness_for(kind, spool)
    seen: dict[str, t.Any] = {}

    def handler(msg: t.Any) -> None:
        big, small, base64_big = msg.attachments
        seen["handles"] = handles_in(spool)
        seen["backed"] = [is_file_backed(p) for p in msg.attachments]
        seen["read"] = big.read()
        seen["partial"] = (big.stream.seek(0), big.read(10))[1]
        seen["stream"] = (big.stream.seek(0), big.stream.read())[1]
        seen["getvalue"] = big.getvalue()
        seen["size"] = big.size
        big.save(tmp_path / "saved.bin")
        out = io.BytesIO()
        big.save(out)
        seen["saved_to_file_object"] = out.getvalue()
        seen["base64"] = base64_big.read()
        seen["small"] = small.read()
        seen["parts"] = msg.attachments

    harness.behaviour = handler
    parts = [
        (["Content-Type: application/octet-stream", "Content-ID: <big>"], BIG),
        (["Content-Type: text/plain", "Content-ID: <small>"], SMALL),
        (
            [
                "Content-Type: image/png",
                "Content-ID: <b64>",
                "Content-Transfer-Encoding: base64",
            ],
            base64.encodebytes(BIG),
        ),
    ]
    body, content_type = mm7_body(parts)
    before = open_handle_count()
    response = harness.post(body, content_type)
    assert response.status_code == 200
    assert len(seen["handles"]) == 1  # one file in spool_dir holds both big parts
    assert seen["backed"] == [True, False, True]
    assert seen["read"] == seen["stream"] == seen["getvalue"] == BIG
    assert seen["partial"] == BIG[:10]
    assert seen["size"] == len(BIG)
    assert (tmp_path / "saved.bin").read_bytes() == BIG
    assert seen["saved_to_file_object"] == BIG
    assert seen["base64"] == BIG  # decoded while spooling
    assert seen["small"] == SMALL
    assert_clean(spool, before)
    # a reference kept past the handler says the content was released, not stale data:
    # spooled or in memory alike
    for part in seen["parts"]:
        with pytest.raises(AttachmentReleased):
            part.read()


@pytest.mark.parametrize("kind", KINDS)
def test_part_at_the_threshold_stays_in_memory(kind: str, spool: pathlib.Path) -> None:
    harness = harness_for(kind, spool)
    backed: list[bool] = []
    harness.behaviour = lambda msg: backed.extend(is_file_backed(p) for p in msg.attachments)
    body, content_type = body_with(b"a" * THRESHOLD, b"b" * (THRESHOLD + 1))
    assert harness.post(body, content_type).status_code == 200
    assert backed == [False, True]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "failure", [RuntimeError("boom"), KeyError("x")], ids=["runtime-error", "key-error"]
)
def test_nothing_left_when_the_handler_raises(
    kind: str, spool: pathlib.Path, failure: Exception
) -> None:
    harness = harness_for(kind, spool)
    during: list[int] = []

    def handler(msg: t.Any) -> None:
        during.append(len(handles_in(spool)))
        raise failure

    harness.behaviour = handler
    body, content_type = body_with(BIG, BIG, SMALL)
    before = open_handle_count()
    response = harness.post(body, content_type)
    assert response.status_code == 500
    assert during == [1]
    assert_clean(spool, before)


@pytest.mark.parametrize("kind", KINDS)
def test_one_file_per_request_whatever_its_part_count(kind: str, spool: pathlib.Path) -> None:
    # each part just over the threshold: spooled, all into the request's one file
    datas = [bytes([i]) * (THRESHOLD + 1) for i in range(100)]
    harness = harness_for(kind, spool)
    seen: dict[str, t.Any] = {}

    def handler(msg: t.Any) -> None:
        seen["handles"] = len(handles_in(spool))
        seen["backed"] = {is_file_backed(p) for p in msg.attachments}
        # regions of one file read back independently, in any order
        seen["data"] = [p.read() for p in reversed(msg.attachments)][::-1]
        seen["again"] = msg.attachments[50].getvalue()

    harness.behaviour = handler
    body, content_type = body_with(*datas)
    before = open_handle_count()
    assert harness.post(body, content_type).status_code == 200
    assert seen["handles"] == 1
    assert seen["backed"] == {True}
    assert seen["data"] == datas
    assert seen["again"] == datas[50]
    assert_clean(spool, before)


@pytest.mark.parametrize("kind", KINDS)
def test_memory_per_request_is_bounded_whatever_the_part_sizes(
    kind: str, spool: pathlib.Path
) -> None:
    # parts at the threshold (never spooled on their own): the request's budget spools the rest
    memory = 5 * THRESHOLD
    datas = [bytes([i]) * THRESHOLD for i in range(40)]
    harness = harness_for(kind, spool, memory=memory)
    seen: dict[str, t.Any] = {}

    def handler(msg: t.Any) -> None:
        parts = [msg.soap_part, *msg.attachments] if hasattr(msg, "soap_part") else msg.attachments
        seen["in_memory"] = sum(p.size for p in parts if not is_file_backed(p))
        seen["spooled"] = sum(is_file_backed(p) for p in msg.attachments)
        seen["data"] = [p.read() for p in msg.attachments]

    harness.behaviour = handler
    body, content_type = body_with(*datas)
    assert harness.post(body, content_type).status_code == 200
    assert seen["in_memory"] <= memory
    assert seen["spooled"] >= 40 - 5
    assert seen["data"] == datas


def spooled_then_broken() -> list[t.Any]:
    """Bodies that turn out malformed after a spooled part: (id, body, content type, status)."""
    big = (["Content-Type: application/octet-stream", "Content-ID: <big>"], BIG)
    cases = []
    # the header block of the next part exceeds max_part_header_size
    body, content_type = mm7_body(
        [big, (["Content-Type: text/plain", "X-Pad: " + "a" * 20_000], b"x")]
    )
    cases.append(pytest.param(body, content_type, 400, id="header-too-large-after"))
    # more parts than max_parts after it
    body, content_type = mm7_body([big] + [(["Content-Type: text/plain"], b"")] * 300)
    cases.append(pytest.param(body, content_type, 400, id="too-many-parts-after"))
    # the SOAP root (parsed after the MIME body) is not XML
    body, content_type = mm7_body([big], soap=b"<not-xml")
    cases.append(pytest.param(body, content_type, 400, id="broken-soap"))
    # no SOAP part at all: only the big part
    body = multipart([big], "only")
    cases.append(pytest.param(body, 'multipart/related; boundary="only"', 400, id="no-root-part"))
    # the SOAP part is valid but names an operation we do not handle
    body, content_type = mm7_body([big], soap=envelope("<mm7:X/>", operation="CancelReq"))
    cases.append(pytest.param(body, content_type, 400, id="unknown-operation"))
    return cases


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("body", "content_type", "status"), spooled_then_broken())
def test_nothing_left_when_the_body_is_malformed_after_a_spooled_part(
    kind: str, spool: pathlib.Path, body: bytes, content_type: str, status: int
) -> None:
    harness = harness_for(kind, spool)
    before = open_handle_count()
    response = harness.post(body, content_type)
    assert response.status_code == status
    assert parse_reply(response.data)["StatusCode"] in ("2007", "4003")
    assert harness.calls == []
    assert_clean(spool, before)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["disconnect", "short-body", "chunked-over-limit"])
def test_nothing_left_when_the_body_stops_after_a_spooled_part(
    kind: str, spool: pathlib.Path, how: str
) -> None:
    body, content_type = body_with(BIG, BIG)
    cut = len(body) - 100  # both big parts already spooled
    options: dict[str, t.Any] = {}
    if how == "chunked-over-limit":
        options["max_content_length"] = cut
    harness = Harness(
        kind, spool_threshold=THRESHOLD, spool_dir=str(spool), max_memory_body_size=1, **options
    )
    before = open_handle_count()
    if how == "disconnect":
        stream = CountingInput(body, fail_after=cut)
        response = post_stream(harness, stream, content_type, content_length=len(body))
        expected = 400
    elif how == "short-body":
        stream = CountingInput(body[:cut])
        response = post_stream(harness, stream, content_type, content_length=len(body))
        expected = 400
    else:
        stream = CountingInput(body)
        response = post_stream(harness, stream, content_type, content_length=None)
        expected = 413
    assert response.status_code == expected
    assert stream.bytes_read >= len(BIG) * 2  # the parts were spooled before it broke
    assert harness.calls == []
    assert_clean(spool, before)


@pytest.mark.parametrize("kind", KINDS)
def test_many_requests_leave_nothing_behind(kind: str, spool: pathlib.Path) -> None:
    harness = harness_for(kind, spool)
    outcomes = iter([None, RuntimeError("x")] * 10)

    def handler(msg: t.Any) -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    harness.behaviour = handler
    body, content_type = body_with(BIG, SMALL, BIG)
    before = open_handle_count()
    for _ in range(20):
        harness.post(body, content_type)
    assert len(harness.calls) == 20
    assert_clean(spool, before)


def test_spool_settings_from_flask_config(spool: pathlib.Path) -> None:
    app = Flask("cfg")
    app.config.update(
        MM7_SPOOL_DIR=str(spool),
        MM7_SPOOL_THRESHOLD=str(THRESHOLD),
        MM7_MAX_MEMORY_BODY_SIZE="1",
        MM7_ALLOW_ANONYMOUS=True,
    )
    mm7 = MM7(app)
    during: list[int] = []
    mm7.on_deliver(lambda msg: during.append(len(handles_in(spool))))
    body, content_type = body_with(BIG)
    before = open_handle_count()
    assert app.test_client().post("/mm7", data=body, content_type=content_type).status_code == 200
    assert during == [1]
    assert_clean(spool, before)


def test_empty_spool_dir_from_config_means_the_system_default() -> None:
    from flask_mm7._config import Settings

    assert Settings.from_mapping({"MM7_SPOOL_DIR": ""}).spool_dir is None


@pytest.mark.parametrize("kind", ["middleware", "extension"])
def test_small_bodies_stay_in_memory_whatever_the_part_size(spool: pathlib.Path, kind: str) -> None:
    # a body whose Content-Length is within max_memory_body_size is parsed in memory
    harness = Harness(kind, spool_threshold=THRESHOLD, spool_dir=str(spool))
    during: list[int] = []
    harness.behaviour = lambda msg: during.append(len(handles_in(spool)))
    body, content_type = body_with(BIG)
    assert harness.post(body, content_type).status_code == 200
    assert during == [0]


@pytest.mark.parametrize(("offset", "spooled"), [(-1, True), (0, False), (1, False)])
def test_max_memory_body_size_edges(spool: pathlib.Path, offset: int, spooled: bool) -> None:
    body, content_type = body_with(BIG)
    harness = Harness(
        "middleware",
        spool_threshold=THRESHOLD,
        spool_dir=str(spool),
        max_memory_body_size=len(body) + offset,
    )
    during: list[int] = []
    harness.behaviour = lambda msg: during.append(len(handles_in(spool)))
    assert harness.post(body, content_type).status_code == 200
    assert during == [1 if spooled else 0]


# -- the spool directory is checked at start-up ---------------------------------------------------


def _starts(kind: str, spool_dir: str) -> None:
    """Set up a receiver of ``kind`` with ``spool_dir``, as a user would."""
    if kind == "middleware":
        MM7Middleware(spool_dir=spool_dir, allow_anonymous=True)
    elif kind == "extension-config":
        app = Flask("spool")
        app.config.update(MM7_SPOOL_DIR=spool_dir, MM7_ALLOW_ANONYMOUS="true")
        MM7(app)
    else:
        MM7(spool_dir=spool_dir)


def _a_file(path: pathlib.Path) -> str:
    path.write_bytes(b"x")
    return str(path)


@pytest.mark.parametrize("kind", ["middleware", "extension-config", "extension-option"])
@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp: str(tmp / "missing"), "does not exist"),
        (lambda tmp: str(tmp / "missing" / "deeper"), "does not exist"),
        (lambda tmp: _a_file(tmp / "file"), "is not a directory"),
    ],
    ids=["missing", "missing-parent", "a-file"],
)
def test_a_bad_spool_dir_fails_at_start_up_naming_the_setting(
    tmp_path: pathlib.Path, kind: str, make: t.Callable[[pathlib.Path], str], problem: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(ValueError) as raised:
        _starts(kind, path)
    message = str(raised.value)
    assert message.startswith("MM7_SPOOL_DIR: " if kind == "extension-config" else "spool_dir: ")
    assert repr(path) in message and problem in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any directory")
def test_an_unwritable_spool_dir_fails_at_start_up(tmp_path: pathlib.Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ValueError, match="^spool_dir: .*not writable"):
        MM7Middleware(spool_dir=str(locked))


@pytest.mark.parametrize("kind", ["middleware", "extension-config", "extension-option"])
def test_an_existing_spool_dir_starts(spool: pathlib.Path, kind: str) -> None:
    _starts(kind, str(spool))
