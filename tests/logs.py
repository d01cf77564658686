"""Capturing what ``configure_logging`` writes in production form (JSON), for tests."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from herald_common.logging import configure_logging
from herald_common.settings import Settings


@contextmanager
def json_logs(service: str, log_level: str = "INFO") -> Iterator[io.StringIO]:
    """Log as a production ``service`` would, into a buffer; undone afterwards so other tests
    keep structlog's defaults."""
    buffer = io.StringIO()
    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    handlers, level, httpx_level, stderr = list(root.handlers), root.level, httpx.level, sys.stderr
    sys.stderr = buffer
    try:
        configure_logging(
            Settings(environment="test", log_format="json", log_level=log_level), service
        )
        # A logger cached while the buffer is stderr would keep writing to it afterwards.
        structlog.configure(cache_logger_on_first_use=False)
        yield buffer
    finally:
        sys.stderr = stderr
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = handlers
        root.setLevel(level)
        httpx.setLevel(httpx_level)


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
