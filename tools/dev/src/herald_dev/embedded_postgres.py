"""Postgres from the ``pgserver`` wheel's bundled binaries, on 127.0.0.1 over TCP (dev-only).

pgserver's own ``get_server()`` listens only on a unix socket whose path it picks; Herald's
URLs (asyncpg, docker-style) are simpler over TCP, so this drives initdb/pg_ctl directly and
turns unix sockets off altogether, which also sidesteps the ~100-byte socket-path limit.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import subprocess
from pathlib import Path
from typing import Any

from herald_dev.datadir import text_since
from herald_dev.ports import ADDRESS_IN_USE, HOST, PortTakenError

SUPERUSER = "postgres"
# Postgres refuses to run as root (CI containers, some dev boxes); the server then runs as
# this unprivileged user, the same one pgserver itself creates.
SERVER_USER = "pgserver"
START_TIMEOUT_SECONDS = 60
# Dev and test data only: trading crash-safety on power loss for speed, since the suite builds
# databases from migrations over and over. A crash of the server process itself loses nothing.
SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    # Log lines in English whatever the developer's locale: start() reads them to tell a port
    # taken by another process from any other failure.
    "lc_messages": "C",
}


# --no-sync: initdb skips its fsyncs (a second saved on every first start).
INITDB_OPTIONS = ("--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions")


class EmbeddedPostgres:
    def __init__(self, directory: Path) -> None:
        self.directory = directory  # <data dir>/postgres, owned by the server user
        self.pgdata = directory / "data"
        self.log = directory / "postgres.log"

    def running_port(self) -> int | None:
        """The port of a server already running on this PGDATA, read from postmaster.pid."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, port, status = int(lines[0]), int(lines[3]), lines[7].strip()
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return port if status == "ready" else None

    def start(self, port: int) -> None:
        """Starts the server on ``port``; PortTakenError when another process holds it."""
        self._prepare()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run("initdb", *_pgdata(self.pgdata), "-U", SUPERUSER, *INITDB_OPTIONS)
        options = f"-p {port} " + " ".join(f"-c {k}='{v}'" for k, v in SERVER_SETTINGS.items())
        logged_before = self.log.stat().st_size if self.log.exists() else 0
        try:
            self._run(
                "pg_ctl", *_pgdata(self.pgdata), "-l", str(self.log), "-w",
                "-t", str(START_TIMEOUT_SECONDS), "-o", options, "start",
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            if ADDRESS_IN_USE in text_since(self.log, logged_before):
                raise PortTakenError(port) from exc
            raise RuntimeError(f"embedded Postgres did not start:\n{self._log_tail()}") from exc

    def stop(self) -> None:
        if self.running_port() is None:
            return
        self._run("pg_ctl", *_pgdata(self.pgdata), "-m", "fast", "-w", "stop")

    def _run(self, program: str, *args: str) -> None:
        extra: dict[str, Any] = {}
        if os.geteuid() == 0:
            extra = {"user": SERVER_USER, "group": _server_group(), "extra_groups": []}
        result = subprocess.run(
            [str(bin_dir() / program), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            **extra,
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )

    def _prepare(self) -> None:
        self.directory.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() != 0:
            return
        _ensure_server_user()
        entry = pwd.getpwnam(SERVER_USER)
        # initdb and pg_ctl (running as the server user) create everything below this.
        os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        for path in (self.directory, bin_dir()):
            _let_others_traverse(path)

    def _log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _pgdata(path: Path) -> tuple[str, str]:
    return ("-D", str(path))


def bin_dir() -> Path:
    # find_spec locates the wheel without importing it (pgserver's import has side effects).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver package is not installed: run `uv sync`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _server_group() -> int:
    return pwd.getpwnam(SERVER_USER).pw_gid


def _ensure_server_user() -> None:
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
            capture_output=True,
        )


def _let_others_traverse(path: Path) -> None:
    """Adds o+x (search, not read) to each parent directory that lacks it, so the unprivileged
    server user can reach its data and binaries under, say, /root/src/herald."""
    for directory in path.parents:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
