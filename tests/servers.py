"""Real Redis and PostgreSQL servers for the tests: started on a free 127.0.0.1 port in a
temporary directory, always stopped. Skip (with the apt line) when the binaries are missing.

PostgreSQL refuses to run as root: as root it runs as ``nobody`` (its data directory then
belongs to nobody), otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import typing as t

import pytest
from gunicorn_server import free_port, stop, wait_listening

APT_HINT = "apt-get install redis-server postgresql (.ci/system-deps installs them)"


def redis_binary() -> str | None:
    return shutil.which(
        "redis-server", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"])
    )


def postgres_bin_dir() -> pathlib.Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return pathlib.Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return pathlib.Path(initdb).parent if initdb else None


@contextlib.contextmanager
def redis_server() -> t.Iterator[str]:
    """redis-server on 127.0.0.1 (no persistence) until the block ends; yields its URL."""
    binary = redis_binary()
    if binary is None:
        pytest.skip(f"needs redis-server: {APT_HINT}")
    with tempfile.TemporaryDirectory(prefix="mm7-redis-") as directory:
        port = free_port()
        log = pathlib.Path(directory) / "redis.log"
        command = [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", directory,
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
            "--logfile", "",
        ]  # fmt: skip
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_listening(process, port, log)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(process, wait=15)


@contextlib.contextmanager
def postgres_server() -> t.Iterator[str]:
    """PostgreSQL from a fresh data directory on 127.0.0.1 until the block ends; yields its
    SQLAlchemy URL (psycopg 3, user postgres, trust authentication: loopback only)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(f"needs PostgreSQL: {APT_HINT}")
    user = "nobody" if os.geteuid() == 0 else None
    directory = tempfile.mkdtemp(prefix="mm7-pg-")
    try:
        data = pathlib.Path(directory) / "data"
        log = pathlib.Path(directory) / "postgres.log"
        if user is not None:
            shutil.chown(directory, user)
        initdb = [
            str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--no-sync", "--locale=C",
        ]  # fmt: skip
        done = subprocess.run(initdb, user=user, capture_output=True, cwd=directory)
        if done.returncode != 0:
            pytest.fail(f"initdb failed:\n{done.stdout.decode()}{done.stderr.decode()}")
        port = free_port()
        command = [
            str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
            "-k", directory, "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=200",
        ]  # fmt: skip
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, user=user, cwd=directory
            )
        try:
            wait_listening(process, port, log)
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            stop(process, signal.SIGINT, wait=15)  # fast shutdown: SIGTERM waits for the clients
    finally:
        shutil.rmtree(directory, ignore_errors=True)
