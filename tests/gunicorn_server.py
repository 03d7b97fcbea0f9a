"""Start gunicorn on a free 127.0.0.1 port for a test, and always stop it."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import typing as t

import pytest

ROOT = pathlib.Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(
    process: subprocess.Popen[bytes],
    port: int,
    log: pathlib.Path,
    *,
    address: str = "127.0.0.1",
    seconds: float = 30,
) -> None:
    """Return once something listens on ``address:port``; fail the test with the end of
    ``log`` if ``process`` exits first or nothing listens within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"{process.args!r} exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"nothing listens on {address}:{port}:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait: float = 10) -> None:
    """Stop ``process`` if it still runs: ``sig``, then SIGKILL if it has not exited in
    ``wait`` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def gunicorn(
    app: str, workdir: pathlib.Path, env: dict[str, str], args: list[str]
) -> t.Iterator[tuple[int, subprocess.Popen[bytes], pathlib.Path]]:
    """Run ``gunicorn app`` (tests/ and the repository on its path) until the block ends.

    Yields (port, process, log file). Fails the test if it exits or does not listen in 20 s.
    """
    port = free_port()
    log = workdir / "gunicorn.log"
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]),
        **env,
    }
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--timeout", "10", "--graceful-timeout", "2", "--log-level", "warning",
        *args, app,
    ]  # fmt: skip
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=workdir, env=environment, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        wait_listening(process, port, log, seconds=20)
        yield port, process, log
    finally:
        stop(process)
