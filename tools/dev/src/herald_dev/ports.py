"""TCP ports on 127.0.0.1 for the embedded servers, and the settings that pin them."""

from __future__ import annotations

import os
import socket

HOST = "127.0.0.1"
# Fixed defaults, one digit off the standard ports, so a developer's URLs stay the same across
# restarts and never collide with a system Postgres (5432) or Redis (6379).
POSTGRES_PORT = 54329
REDIS_PORT = 63799
# Set, these pin the embedded servers' ports: that port or an error, never another one.
POSTGRES_PORT_ENV = "HERALD_EMBEDDED_POSTGRES_PORT"
REDIS_PORT_ENV = "HERALD_EMBEDDED_REDIS_PORT"
# The OS's words for EADDRINUSE, as Postgres (with lc_messages=C) and Redis log a failed bind.
ADDRESS_IN_USE = "Address already in use"


class PortTakenError(RuntimeError):
    """A server could not bind its port: something else took it after it was found free."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is already in use")
        self.port = port


class PortSettingError(ValueError):
    pass


def pin_port(variable: str) -> int | None:
    """The port set in ``variable``, None when it is unset or empty."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise PortSettingError(f"{variable}={value!r} is not a TCP port (1 to 65535)")
    return int(value)


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Postgres and Redis do: a port whose old connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port the system says is free now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    assert isinstance(port, int)
    return port


def choose_port(preferred: int, previous: int | None = None) -> int:
    """The port used last time, else the fixed default, else any free port."""
    for port in (previous, preferred):
        if port is not None and port_is_free(port):
            return port
    return free_port()
