"""README.md tells the truth: its commands point at real files and every setting is documented."""

from __future__ import annotations

import pathlib
import re
import shlex
import socket
import subprocess
import sys
import time

from flask_mm7._config import Settings, markdown_table

ROOT = pathlib.Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _command(marker: str) -> str:
    lines = README.split(f"<!-- {marker} -->", 1)[1].splitlines()
    return lines[2]  # the marker line's rest, the opening fence, then the command


def test_run_command_starts_the_inbox_example() -> None:
    command = _command("run-command")
    script = re.search(r"\S+\.py", command)
    assert script is not None and (ROOT / script.group()).is_file()
    assert "examples/inbox/app.py" in command


def test_ci_runs_the_readme_test_command() -> None:
    command = _command("test-command")
    assert "pytest" in command and "pip install" in command
    ci = (ROOT / ".ci" / "run").read_text()
    assert "test-command" in ci  # .ci/run extracts and runs this very line


def test_the_configuration_table_is_the_generated_one() -> None:
    """README's table is :func:`flask_mm7._config.markdown_table`, row for row (paste the
    generated table over README's when a setting changes)."""
    table = markdown_table()
    assert table in README, table
    documented = set(re.findall(r"^\| `(MM7_[A-Z_]+)` \|", README, re.M))
    assert documented == set(Settings.config_defaults())


def test_no_other_page_repeats_the_configuration_table() -> None:
    """The settings table lives in README alone: docs/ link to it instead of keeping rows."""
    for path in [ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]:
        rows = re.findall(r"^\| `(MM7_[A-Z_]+)` \|", path.read_text(), re.M)
        assert rows == [], path.name


def _receiver_snippet() -> str:
    section = README[README.index("## A receiver in") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


def _console(marker: str) -> list[tuple[str, list[str]]]:
    """The commands of the console block after ``<!-- marker -->``, each with its output."""
    block = README.split(f"<!-- {marker} -->", 1)[1].split("```console\n", 1)[1]
    block = block[: block.index("```\n")]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_receiver_snippet_runs_as_written(tmp_path: pathlib.Path) -> None:
    """Save the snippet as README says, start it with README's command, send it README's
    messages: each answer must be the one README prints, and the files must be saved."""
    (tmp_path / "receiver.py").write_text(_receiver_snippet())
    steps = _console("receiver-commands")
    run, *sends = steps
    assert run[0] == ".venv/bin/flask --app receiver.py run" and sends
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = pathlib.Path(sys.executable).parent

    def argv(command: str) -> list[str]:
        command = command.replace(".venv/bin/", f"{bin_dir}/").replace(":5000/", f":{port}/")
        return shlex.split(command)

    server = subprocess.Popen(
        [*argv(run[0]), "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "flask run did not start"
                assert server.poll() is None, "flask run exited"
                time.sleep(0.1)
        for command, expected in sends:
            result = subprocess.run(
                argv(command), cwd=tmp_path, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            assert result.stdout.splitlines() == expected, command
    finally:
        server.terminate()
        server.wait(timeout=30)
    saved = sorted(p.name for p in (tmp_path / "inbox").iterdir())
    assert len(saved) == 3  # the seed's image and text, the in-process text
    assert sum(name.startswith("369171411769819136-") for name in saved) == 2
    assert any(name.startswith("42-") for name in saved)
    seed_image = tmp_path / "inbox" / "369171411769819136-image_0.jpg"
    assert seed_image.read_bytes() == b"<Binary contents>"


def test_gunicorn_is_said_to_be_installed_separately() -> None:
    """Wherever README or docs/ run gunicorn, the same section says to install it."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for section in re.split(r"\n(?=#+ )", text):
            fenced = "".join(re.findall(r"^```.*?^```", section, re.M | re.S))
            if re.search(r"^(\$ )?(\.venv/bin/)?gunicorn ", fenced, re.M) or re.search(
                r"`(\.venv/bin/)?gunicorn [^`]*`", section
            ):
                assert "pip install gunicorn" in section, (path.name, section[:80])


def test_nginx_body_size_matches_the_default_limit() -> None:
    limit = Settings().max_content_length
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for value in re.findall(r"client_max_body_size\s+(\d+)([kKmM]?);", path.read_text()):
            size = int(value[0]) * {"": 1, "k": 1024, "m": 1024 * 1024}[value[1].lower()]
            assert size == limit, path.name


def test_readme_links_the_going_live_page() -> None:
    assert "(docs/going-live.md)" in README
    assert (ROOT / "docs" / "going-live.md").is_file()


def test_troubleshooting_table_says_what_a_browser_visit_gets() -> None:
    """GET on the MM7 path: 401 with Basic auth on (credentials are checked first), 403 from
    outside the allowlist, 405 otherwise; as the table says."""
    from flask import Flask

    from flask_mm7 import MM7

    rows = dict(re.findall(r"^\| (\d{3}) \| [^|]+ \| (.+) \|$", README, re.M))
    assert "any GET (a browser visit)" in rows["401"]
    assert "whatever the method" in rows["403"]
    for config, status in (
        ({"MM7_BASIC_AUTH": "u:p"}, 401),
        ({"MM7_ALLOWED_IPS": "203.0.113.0/24"}, 403),
        ({"MM7_ALLOW_ANONYMOUS": True}, 405),
    ):
        app = Flask(__name__)
        app.config.update(config)
        MM7(app)
        assert app.test_client().get("/mm7").status_code == status, config
