"""A private, throwaway PostgreSQL cluster for the fault tests that restart the server.

The shared server on 5432 serves every developer's tests, so restarting it is out of the
question; instead `private_postgres` runs `initdb` and `pg_ctl` as the `postgres` OS user on a
free port, in a temporary folder under /tmp, and removes it all afterwards. Without initdb (or
without the rights to run it as `postgres`) the test skips, unless FVLAB_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE_POSTGRES = os.environ.get("FVLAB_REQUIRE_POSTGRES") == "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateCluster:
    """One PostgreSQL server of our own: start, stop and its URL."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir, self.root = bin_dir, root
        self.data, self.port = root / "data", _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True,
                       capture_output=True, timeout=120)

    def init(self) -> None:
        self._as_postgres(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust",
                          "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options,
                          "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode,
                          "-w", "stop")


def _problem() -> str | None:
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "PostgreSQL's initdb is not installed (/usr/lib/postgresql/*/bin/initdb)"
    if shutil.which("runuser") is None or os.geteuid() != 0:
        return "running initdb as the postgres user needs root and runuser"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no postgres OS user"
    return None


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    problem = _problem()
    if problem is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"FVLAB_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    bin_dir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="fvlab-pg-", dir="/tmp"))
    postgres = pwd.getpwnam("postgres")
    os.chown(root, postgres.pw_uid, postgres.pw_gid)
    cluster = PrivateCluster(bin_dir, root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # never started, or already down
        shutil.rmtree(root, ignore_errors=True)
