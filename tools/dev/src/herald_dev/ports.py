"""TCP ports on 127.0.0.1 for the embedded servers."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
# Fixed defaults, one digit off the standard ports, so a developer's URLs stay the same across
# restarts and never collide with a system Postgres (5432) or Redis (6379).
POSTGRES_PORT = 54329
REDIS_PORT = 63799


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Postgres and Redis do: a port whose old connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(preferred: int, previous: int | None = None) -> int:
    """The port used last time, else the fixed default, else any free port."""
    for port in (previous, preferred):
        if port is not None and port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    assert isinstance(port, int)
    return port
