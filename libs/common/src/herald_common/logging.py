"""Structured logging: JSON in production, readable in dev, secrets redacted everywhere."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any, TextIO

import structlog

from herald_common.settings import Settings

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api_key|key)$", re.IGNORECASE)
REDACTED = "[redacted]"
# The level from which httpx's lines (one per outbound request at INFO) are written.
OUTBOUND_REQUEST_LINES = logging.WARNING
# Credentials recognisable by their value, whatever the key or message that carries them: a
# bearer credential ("Bearer ..." in a header echoed by an error), Herald's own tokens (API
# keys hk_..., refresh tokens hr_..., invitations hi_...), and a JWT (three base64url parts,
# the first a JSON header, so it starts "eyJ"); and secrets that platforms put in URL paths,
# which httpx logs with every request: a Telegram bot token (/bot{id}:{secret}/...) and a
# Discord webhook token (/webhooks/{id}/{token}).
_SECRET_VALUES = re.compile(
    r"(?P<scheme>\b[Bb][Ee][Aa][Rr][Ee][Rr]\s+)[A-Za-z0-9\-._~+/]+=*"
    r"|\bh[kri]_[A-Za-z0-9_\-]{16,}"
    r"|\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"
    r"|(?<=/bot)\d+:[A-Za-z0-9_\-]+"
    r"|(?<=/webhooks/)\d+/[A-Za-z0-9_.\-]+"
)


# A first look for the literal part every alternative of _SECRET_VALUES starts with: most
# values (ids, names, statuses) have none, and this search costs a quarter of the full one,
# which is what made redaction half the cost of a log line.
_MAYBE_SECRET = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr]|h[kri]_|eyJ|/bot|/webhooks/")


def _mask(match: re.Match[str]) -> str:
    return (match.group("scheme") or "") + REDACTED


def redact_text(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``[redacted]``."""
    if _MAYBE_SECRET.search(text) is None:
        return text
    return _SECRET_VALUES.sub(_mask, text)


@lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    """Whether a field named ``key`` holds a secret (the names a process logs are few)."""
    return key != "event" and _SECRET_KEYS.search(key) is not None


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _secret_key(key):
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


def configure_logging(settings: Settings, service: str) -> None:
    """structlog for Herald's own lines and the standard library's (uvicorn, arq, SQLAlchemy)
    alike: one stream, JSON outside dev, with the ids bound in contextvars (``service``,
    the API's ``request_id``, the publisher's ``job_id``) on every line."""
    renderer: Any
    if settings.effective_log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    level = logging.getLevelName(settings.log_level.upper())
    # Redaction runs after exceptions are rendered, so a traceback's text is scrubbed too.
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    _route_stdlib_logging(renderer, level)
    # httpx writes a line per outbound request at INFO: one per post in a spike, beside the
    # publisher's own line for the attempt, and as dear as the rest of that attempt's logging
    # (bench/README.md). At INFO they are left out; HERALD_LOG_LEVEL=DEBUG shows them.
    logging.getLogger("httpx").setLevel(
        level if level <= logging.DEBUG else max(level, OUTBOUND_REQUEST_LINES)
    )


class _HeraldHandler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installed, so configuring twice replaces it."""


def _route_stdlib_logging(renderer: Any, level: int) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
    )
    handler = _HeraldHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _HeraldHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
