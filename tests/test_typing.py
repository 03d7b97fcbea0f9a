"""The public API is typed: a type checker catches a handler registered for the wrong message.

Runs mypy (``mypy.api``) on small user programs against this checkout's ``flask_mm7``.
"""

from __future__ import annotations

import os
import pathlib
import textwrap

import pytest

api = pytest.importorskip("mypy.api")
ROOT = pathlib.Path(__file__).parent.parent

PROGRAM = """
from flask import Flask
from flask_mm7 import MM7, MM7Error, MM7Middleware, DeliverRequest, DeliveryReport, ReadReply
from flask_mm7 import HandlerResult

mm7 = MM7(Flask(__name__))
middleware = MM7Middleware()

{body}
"""

GOOD = """
@mm7.on_deliver
def deliver(msg: DeliverRequest) -> None: ...

@mm7.on_delivery_report
def report(msg: DeliveryReport) -> int:
    return 1000

@middleware.on_read_reply
def read(msg: ReadReply) -> HandlerResult:
    return MM7Error(2004)

@middleware.on_deliver
def refuse(msg: DeliverRequest) -> tuple[int, str]:
    return (2004, "no")
"""

WRONG_MESSAGE = """
@mm7.on_deliver
def deliver(msg: DeliveryReport) -> None: ...
"""

WRONG_RESULT = """
@middleware.on_delivery_report
def report(msg: DeliveryReport) -> str:
    return "ok"
"""


def _check(tmp_path: pathlib.Path, body: str) -> tuple[str, int]:
    program = tmp_path / "program.py"
    program.write_text(PROGRAM.format(body=textwrap.dedent(body)))
    os.environ["MYPYPATH"] = str(ROOT)
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--follow-imports=silent",
            str(program),
        ]
    )
    return stdout + stderr, status


def test_a_correct_program_type_checks(tmp_path: pathlib.Path) -> None:
    output, status = _check(tmp_path, GOOD)
    assert status == 0, output


@pytest.mark.parametrize("body", [WRONG_MESSAGE, WRONG_RESULT], ids=["message", "result"])
def test_a_handler_of_the_wrong_type_is_caught(tmp_path: pathlib.Path, body: str) -> None:
    output, status = _check(tmp_path, body)
    assert status == 1 and "of \"on_" in output and "[type-var]" in output, output
