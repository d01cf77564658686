"""Logs: JSON lines carrying the ids bound in contextvars, for our lines and the standard
library's alike, with credentials redacted by key and by value."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import hypothesis
import pytest
import structlog
from hypothesis import strategies as st

from herald_common.logging import _SECRET_VALUES, REDACTED, _mask, redact_text
from tests.logs import json_logs, log_lines

FAKE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
FAKE_API_KEY = "hk_3fJx9QwZ0pLk7RtY2mNb8VcX"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    with json_logs("api") as buffer:
        yield buffer


def test_json_lines_carry_bound_ids(captured: io.StringIO) -> None:
    log = structlog.get_logger("herald.test")
    with structlog.contextvars.bound_contextvars(request_id="req-1"):
        log.info("handled", route="/v1/posts")
    log.info("outside")

    inside, outside = log_lines(captured)
    assert inside["event"] == "handled"
    assert (inside["request_id"], inside["service"], inside["level"]) == ("req-1", "api", "info")
    assert "timestamp" in inside
    assert "request_id" not in outside


def test_standard_library_lines_are_json_with_the_same_ids(captured: io.StringIO) -> None:
    with structlog.contextvars.bound_contextvars(job_id="pub:1:1:1"):
        logging.getLogger("arq.worker").info("job %s started", "pub:1:1:1")

    [line] = log_lines(captured)
    assert line["event"] == "job pub:1:1:1 started"
    assert (line["job_id"], line["logger"], line["service"]) == ("pub:1:1:1", "arq.worker", "api")


def test_secrets_are_redacted_by_key_and_by_value(captured: io.StringIO) -> None:
    log = structlog.get_logger("herald.test")
    log.warning(
        "upstream said no",
        access_token="plain-secret",
        detail="sent Authorization: Bearer abc.DEF-123_x~ and got 401",
        key_hint=FAKE_API_KEY,
        body=f'{{"jwt": "{FAKE_JWT}"}}',
    )
    logging.getLogger("httpx").error("request with Bearer s3cr3t-t0ken failed")

    ours, theirs = log_lines(captured)
    text = json.dumps([ours, theirs])
    for secret in ("plain-secret", "abc.DEF-123_x~", FAKE_API_KEY, FAKE_JWT, "s3cr3t-t0ken"):
        assert secret not in text
    assert ours["access_token"] == REDACTED
    assert ours["detail"] == f"sent Authorization: Bearer {REDACTED} and got 401"
    assert theirs["event"] == f"request with Bearer {REDACTED} failed"


def test_outbound_request_lines_are_written_at_debug_only() -> None:
    """httpx's line per request would be one per post in a spike (bench/README.md)."""
    request = (
        'HTTP Request: POST https://api.telegram.org/bot12:AAsecret/sendMessage "HTTP/1.1 200 OK"'
    )
    httpx_log = logging.getLogger("httpx")
    with json_logs("publisher") as info:
        httpx_log.info(request)
        httpx_log.warning("upstream kept the connection open")
    with json_logs("publisher", log_level="DEBUG") as debug:
        httpx_log.info(request)
    assert [line["event"] for line in log_lines(info)] == ["upstream kept the connection open"]
    [line] = log_lines(debug)
    assert line["event"].startswith("HTTP Request: POST https://api.telegram.org/bot[redacted]/")
    assert "AAsecret" not in debug.getvalue()


def test_traceback_text_is_redacted(captured: io.StringIO) -> None:
    log = structlog.get_logger("herald.test")
    try:
        raise RuntimeError(f"refused token {FAKE_API_KEY}")
    except RuntimeError:
        log.exception("publish failed")

    [line] = log_lines(captured)
    assert "RuntimeError" in line["exception"]
    assert FAKE_API_KEY not in line["exception"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bearer abc123", f"Bearer {REDACTED}"),
        ("authorization: bearer abc123==", f"authorization: bearer {REDACTED}"),
        (f"key={FAKE_API_KEY}", f"key={REDACTED}"),
        (f"token {FAKE_JWT} end", f"token {REDACTED} end"),
        # Ordinary text, ids and short hk_-like words are left alone.
        ("published pub:0190:1:1 to sandbox", "published pub:0190:1:1 to sandbox"),
        ("hk_dev is a prefix", "hk_dev is a prefix"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


# Fragments of every credential shape, and near misses, glued together at random.
_FRAGMENTS = st.sampled_from(
    [
        "Bearer ", "bEaReR\t", "bearer", "hk_", "hr_", "hi_", "h_", "eyJ", "eyj", "/bot", "/bot12:",
        "/webhooks/", "/webhooks/99/", "abcDEF123", "-_.~+/", "==", ":", " ", "x", "é",
    ]
)  # fmt: skip


@hypothesis.given(st.lists(_FRAGMENTS | st.text(max_size=8), max_size=12).map("".join))
def test_the_quick_first_look_never_lets_a_secret_through(text: str) -> None:
    """redact_text skips the full pattern when a cheaper one finds nothing: on any text it
    must still redact exactly what the full pattern does."""
    assert redact_text(text) == _SECRET_VALUES.sub(_mask, text)
