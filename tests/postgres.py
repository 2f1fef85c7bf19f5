"""A throwaway PostgreSQL server (Debian's packages) on a loopback port, for contract tests."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support import free_port, wait_for


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise AssertionError("PostgreSQL is not installed: ./ops/test installs Debian's postgresql package.")
    return found[-1]


class PostgresServer:
    def __init__(self):
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        self.directory = Path(tempfile.mkdtemp(prefix="crossline-pg-"))
        self.port = free_port()
        # initdb refuses to run as root: use the postgres system account the package creates.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        if self._as:
            shutil.chown(self.directory, "postgres", "postgres")
        data = self.directory / "data"
        self._run(_bin("initdb"), "-D", str(data), "--auth=trust", "--username=crossline", "--encoding=UTF8")
        self._run(
            _bin("pg_ctl"), "-D", str(data), "-l", str(self.directory / "server.log"), "-w", "start",
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off",
        )
        url = f"postgresql+psycopg://crossline@127.0.0.1:{self.port}/postgres"
        wait_for(lambda: subprocess.run(
            [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True).returncode == 0,
            what="PostgreSQL to accept connections")
        return url

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
