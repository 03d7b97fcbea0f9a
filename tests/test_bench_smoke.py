"""The benchmark suite must not rot: run its smoke mode in-process (HTTP part skipped).

Contenders whose library is not installed (multipart, python-multipart, ours before the
parser lands) are printed "n/a", so this passes with only the test extras installed.
"""

from __future__ import annotations

import os
import re
import sys
import typing as t
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

bench_run = pytest.importorskip("bench.run")


def test_bodies_are_deterministic_and_well_framed() -> None:
    from bench.bodies import RELAY_SHAPES, SIZES, make_body
    from bench.contenders import BY_NAME, parse_bytes

    for size in SIZES + RELAY_SHAPES:
        a = make_body(size, smoke=True)
        assert a.data == make_body(size, smoke=True).data
        for name in ("floor", "floor-old", "email", "email-http"):
            assert parse_bytes(BY_NAME[name], a.data, a.content_type) == a.expected, name
    kit = make_body("typical-kit", smoke=True)
    outer = kit.content_type.split('boundary="')[1].rstrip('"')
    assert f'boundary="{outer}.mixed"'.encode() in kit.data  # the kit's nested boundary
    assert make_body("typical-javamail").leaves == make_body("typical").leaves


def test_lean_floor_straddles_small_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lean floor skips the join only when no delimiter straddles two reads: with reads
    shorter than a delimiter every body still parses right."""
    import bench.contenders as contenders
    from bench.bodies import RELAY_SHAPES, SIZES, make_body

    for chunk in (7, 61, 1000):
        monkeypatch.setattr(contenders, "CHUNK", chunk)
        for size in SIZES + RELAY_SHAPES:
            body = make_body(size, smoke=True)
            parts = contenders.parse_bytes(contenders.BY_NAME["floor"], body.data,
                                           body.content_type)  # fmt: skip
            assert parts == body.expected, (chunk, size)


#: a measured duration, e.g. ``113.3 µs (2)``: the median and its repetition count
_TIME = re.compile(r"^([0-9][0-9,]*(?:\.[0-9]+)?) (ns|µs|ms|s) \(([0-9]+)\)$")
#: a ratio pair, e.g. ``6.98× · n/a``: to the floor, to multipart (n/a without it)
_RATIOS = re.compile(r"^([0-9]+\.[0-9]+)× · (?:([0-9]+\.[0-9]+)×|n/a)$")


def table(text: str, heading: str) -> dict[str, dict[str, str]]:
    """The Markdown table under ``## heading``: {first cell: {column: cell}}."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    found = {}
    for line in rows[2:]:  # after the header and its --- line
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        found[cells[0]] = dict(zip(header[1:], cells[1:]))
    return found


def test_smoke_run_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.contenders import CONTENDERS

    assert bench_run.main(["--smoke", "--no-http", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "wrong parts" not in text
    assert not os.path.exists(tmp_path / "bench")
    assert "Parser: ratios" in capsys.readouterr().out
    times = table(text, "Parser: median time per body")
    ratios = table(text, "Parser: ratios (time / floor · time / multipart)")
    sizes = list(times["body size"].values())
    assert len(sizes) == 7 and all(re.fullmatch(r"[1-9][0-9,]* B", size) for size in sizes)
    installed = {c.name for c in CONTENDERS if c.available()}
    assert {"floor", "email", "werkzeug", "ours"} <= installed  # stdlib and the test extras
    for contender in CONTENDERS:
        cells, ratio_cells = times[contender.name], ratios[contender.name]
        assert list(cells) == list(times["body size"]) == list(ratio_cells)
        if contender.name not in installed:
            assert set(cells.values()) == set(ratio_cells.values()) == {"n/a"}
            continue
        for size, cell in cells.items():
            if contender.name == "multipart" and size == "typical-kit":
                # the kit's outer delimiter is a prefix of its nested one: multipart refuses
                assert cell == ratio_cells[size] == "error"
                continue
            measured = _TIME.match(cell)
            assert measured, (contender.name, size, cell)
            assert float(measured.group(1).replace(",", "")) > 0 and int(measured.group(3)) > 0
            ratio = _RATIOS.match(ratio_cells[size])
            assert ratio, (contender.name, size, ratio_cells[size])
            assert float(ratio.group(1)) > 0
            has_multipart = "multipart" in installed and size != "typical-kit"
            assert (ratio.group(2) is not None) == has_multipart
        if contender.name == "floor":
            assert {c.split(" · ")[0] for c in ratio_cells.values()} == {"1.00×"}
    soap_rows = table(text, "SOAP envelope (root part of every body)")
    assert soap_rows and all(
        re.fullmatch(r"[0-9.]+ (ns|µs|ms)", row["median"]) for row in soap_rows.values()
    )
    targets = table(text, "Targets")
    # the targets whose contenders are always there carry a number and a verdict
    for what in (
        "parse typical: ours / floor",
        "parse typical-javamail: ours / floor",
        "parse typical-kit: ours / floor",
        "SOAP parse+extract: ours / defusedxml.fromstring",
    ):
        assert re.fullmatch(r"[0-9]+\.[0-9]+×", targets[what]["measured"]), targets[what]
        assert targets[what][""] in ("ok", "MISS")


def test_in_process_section_gives_numbers() -> None:
    """``python -m bench.inprocess``: every app answers every body (a non-200 raises) and
    each cell and ratio is a positive number."""
    from bench import inprocess

    results = inprocess.measure(["typical", "typical-kit"], rounds=2, batch=2, smoke=True)
    for times in results.values():
        assert set(times) == set(inprocess.APPS)
        assert all(len(v) == 2 and all(x > 0 for x in v) for v in times.values())
    table = inprocess.render(results)
    rows = [line for line in table.splitlines() if line.startswith("| typical")]
    assert len(rows) == 2 * len(inprocess.APPS)
    for row in rows:
        assert re.search(r"\| \d+\.\d \|", row), row
    (what, measured, target, verdict), _ = inprocess.targets(results)
    assert float(measured.rstrip("×")) > 0 and verdict in ("ok", "MISS")


def test_cliff_bodies_have_their_exact_size() -> None:
    from bench.bodies import CLIFF_MIB, make_cliff_body

    for mib in CLIFF_MIB:
        body = make_cliff_body(mib, smoke=True)
        assert body.size == int(mib * 1024 * 1024 / 100)
        assert body.data == make_cliff_body(mib, smoke=True).data
    assert make_cliff_body(9).size == 9 * 1024 * 1024


def test_multipart_spool_spools_what_passes_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """multipart-spool gives every part back whole, and a part over the threshold went to a
    file of its own in the spool directory while it was read."""
    pytest.importorskip("multipart")
    import io

    import bench.contenders as contenders
    from bench.bodies import make_cliff_body

    body = make_cliff_body(9, smoke=True)  # a ~90 KB MP4 part, a 4 KiB JPEG, two small parts
    opened: list[object] = []
    real = contenders.tempfile.TemporaryFile

    def counting(*args: t.Any, **kwargs: t.Any) -> t.Any:
        opened.append(kwargs.get("dir"))
        return real(*args, **kwargs)

    run = contenders.multipart_spool_runner(8192, 2048, spool_dir=str(tmp_path))
    sink = contenders.CollectSink()
    monkeypatch.setattr(contenders.tempfile, "TemporaryFile", counting)
    run(io.BytesIO(body.data), body.content_type, sink)
    assert sink.parts == body.expected
    assert opened == [str(tmp_path)]  # the MP4 only
    counted = contenders.CountSink()
    run(io.BytesIO(body.data), body.content_type, counted)
    assert (counted.count, counted.nbytes) == (4, sum(map(len, body.expected)))


def test_smoke_run_reports_the_cliff(tmp_path: Path) -> None:
    from bench.bodies import CLIFF_MIB
    from bench.contenders import BY_NAME

    assert bench_run.main(["--smoke", "--only", "cliff", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    section = text.split(f"## {bench_run.CLIFF_HEADING}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[0] for row in rows] == [f"{mib:g} MiB" for mib in CLIFF_MIB]
    # ours at its defaults, scaled: the bodies up to 8 MiB are read in memory, larger spooled
    assert [row[2] for row in rows] == ["memory"] * 3 + ["spool"] * 4
    has_multipart = BY_NAME["multipart"].available()
    for row in rows:
        cells = dict(zip(header, row))
        assert re.fullmatch(r"[0-9.]+ (µs|ms|s)", cells["ours"]), row
        assert int(row[4]) > 0  # ours' µs/MB
        if has_multipart:
            assert re.fullmatch(r"[0-9.]+ (µs|ms|s)", cells["multipart-spool"]), row
            assert int(row[6]) > 0 and re.fullmatch(r"[0-9]+\.[0-9]+×", cells["ours / m-spool"])
        else:
            assert cells["multipart-spool"] == cells["ours / m-spool"] == "n/a"
    targets = table(text, "Targets")
    verdict = targets["large bodies 4-24 MiB: ours / multipart-spool, worst"]
    assert verdict[""] in (("ok", "MISS") if has_multipart else ("n/a",))


def test_gunisplit_splits_a_workers_cpu() -> None:
    """``python -m bench.gunisplit``: under real gunicorn the counters come back from the
    workers and nest (read within the app call, the call within the request, the request
    within the worker's CPU); every request served was counted once."""
    pytest.importorskip("gunicorn")
    from bench import gunisplit

    before = dict(os.environ)
    totals = gunisplit.measure("fixed", 0.3, 1, None)
    assert dict(os.environ) == before  # its settings for the workers are not left behind
    assert totals["requests"] > 0 and totals["requests"] == totals["served"]
    assert totals["reads"] >= totals["requests"]
    assert 0 < totals["read"] <= totals["app"] <= totals["request"] <= totals["worker_cpu"]
    table = gunisplit.report({"fixed": totals})
    assert re.search(r"\| server total .* \| \d+ µs \|", table), table


def test_guard_compares_two_checkouts_side_by_side() -> None:
    """``python -m bench.guard``: both workers answer every POST (a non-200 stops them) and
    every round gives a positive time for each side; this checkout against itself."""
    from bench import guard

    times = guard.compare(str(REPO), "tiny", rounds=2, batch=2)
    assert len(times) == 2
    assert all(len(pair) == 2 and min(pair) > 0 for pair in times)


def test_interleaved_timing_gives_every_function_its_count() -> None:
    from bench.timing import measure_interleaved

    calls = {"a": 0, "b": 0}

    def a() -> None:
        calls["a"] += 1

    def b() -> None:
        calls["b"] += 1

    timings = measure_interleaved({"a": a, "b": b}, budget_s=0, min_reps=7, max_reps=7, rounds=3)
    assert {name: t.reps for name, t in timings.items()} == {"a": 7, "b": 7}
    assert calls == {"a": 8, "b": 8}  # one sizing call each, then the repetitions
    assert all(t.median_ns > 0 and t.min_ns <= t.median_ns for t in timings.values())
