"""A private, throwaway PostgreSQL cluster, and small file systems to fill, for the fault tests.

The shared server on 5432 serves every developer's tests, so restarting it is out of the
question; instead `private_postgres` runs `initdb` and `pg_ctl` as the `postgres` OS user on a
free port, in a temporary folder under /tmp, and removes it all afterwards. Without initdb (or
without the rights to run it as `postgres`) the test skips, unless FVLAB_REQUIRE_POSTGRES=1.

`small_disk` mounts a tmpfs of a few MiB (a real file system, so a full disk is the kernel's own
ENOSPC, not a mock) and lazily unmounts it afterwards, even while a server still holds files on
it. Mounting needs root and a kernel that lets this process mount; where it cannot, the test
skips with mount's own reason.
"""

from __future__ import annotations

import errno
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
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


class SmallDisk:
    """A mounted tmpfs: filled to the last byte by a filler file, and freed by removing it."""

    def __init__(self, path: Path) -> None:
        self.path, self.filler = path, path / "filler"

    def fill(self) -> None:
        """Write the filler until the file system refuses even one more byte (ENOSPC)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 4096, 1):  # big writes first, then whatever still fits
                try:
                    while True:
                        os.write(fd, b"\xff" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        assert os.statvfs(self.path).f_bavail == 0

    def free(self) -> None:
        self.filler.unlink()


def _mount_problem() -> str | None:
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount and umount are not installed"
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    return None


@pytest.fixture
def small_disk() -> Iterator[Callable[[Path, str], SmallDisk]]:
    """`mount(path, size)`: a tmpfs of `size` (e.g. "8m") at `path`; skips if mount is refused."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> SmallDisk:
        problem = _mount_problem()
        if problem is not None:
            pytest.skip(f"no small file system to fill: {problem}")
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                                 "fvlab-small-disk", str(path)],
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            reason = " ".join(result.stderr.split())
            pytest.skip(f"no small file system to fill: mount said {reason!r}")
        mounted.append(path)
        return SmallDisk(path)

    yield mount
    for path in reversed(mounted):  # lazily: a server may still hold files open there
        subprocess.run(["umount", "--lazy", str(path)], check=True, capture_output=True,
                       timeout=30)
