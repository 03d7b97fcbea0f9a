"""The benchmark suite must not rot: run its smoke mode in-process (HTTP part skipped).

Contenders whose library is not installed (multipart, python-multipart, ours before the
parser lands) are printed "n/a", so this passes with only the test extras installed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

bench_run = pytest.importorskip("bench.run")


def test_bodies_are_deterministic_and_well_framed() -> None:
    from bench.bodies import SIZES, make_body
    from bench.contenders import BY_NAME, parse_bytes

    for size in SIZES:
        a = make_body(size, smoke=True)
        assert a.data == make_body(size, smoke=True).data
        assert parse_bytes(BY_NAME["floor"], a.data, a.content_type) == a.expected
        assert parse_bytes(BY_NAME["email"], a.data, a.content_type) == a.expected


def test_smoke_run_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_run.main(["--smoke", "--no-http", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "## Targets" in text
    assert "| floor " in text
    assert "What each optimisation bought" in text
    for name in ("floor", "email"):  # always available: stdlib only
        assert f"error, {name}" not in text
    assert "wrong parts" not in text
    out = capsys.readouterr().out
    assert "Parser: ratios" in out
    assert not os.path.exists(tmp_path / "bench")
