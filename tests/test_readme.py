"""README.md tells the truth: its commands point at real files and every setting is documented."""

from __future__ import annotations

import pathlib
import re

from flask_mm7.config import Settings

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


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = set(re.findall(r"^\| `(MM7_[A-Z_]+)` \|", README, re.M))
    assert documented == set(Settings.config_defaults())
