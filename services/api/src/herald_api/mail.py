"""Sending the emails accounts need: verify an address, reset a password, an invitation, a
lockout notice. The sender is chosen by settings (``HERALD_MAIL_BACKEND``):

- ``log``: no mail leaves; the message is logged. In dev the log line carries the link, so
  a developer can click it; elsewhere the link (it holds a token) is left out.
- ``smtp``: sent with aiosmtplib (async, so no thread is needed).

Tests use :class:`Outbox`, which keeps messages in memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from herald_common.logging import get_logger
from herald_common.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str
    # The one link the message is about, when it has one; it usually carries a token.
    link: str | None = None


class MailSender(Protocol):
    async def send(self, mail: Mail) -> None: ...


class LogMailSender:
    def __init__(self, settings: Settings) -> None:
        self._show_links = settings.environment == "dev"

    async def send(self, mail: Mail) -> None:
        if self._show_links and mail.link is not None:
            log.info(
                "mail not sent (log backend)", to=mail.to, subject=mail.subject, link=mail.link
            )
        else:
            log.info("mail not sent (log backend)", to=mail.to, subject=mail.subject)


class SmtpMailSender:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, mail: Mail) -> None:
        s = self._settings
        message = EmailMessage()
        message["From"] = s.mail_from
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout_seconds,
        )
        log.info("mail sent", to=mail.to, subject=mail.subject)


class Outbox:
    """A sender that keeps what it sends, for tests."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []

    async def send(self, mail: Mail) -> None:
        self.sent.append(mail)

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.sent if m.to == address]


def build_mail_sender(settings: Settings) -> MailSender:
    if settings.mail_backend == "smtp":
        return SmtpMailSender(settings)
    return LogMailSender(settings)


class Courier:
    """Sends mail on tasks of its own, so a request never waits for (or fails with) the mail
    server, every answer takes as long whether or not a mail went out, and a mail decided on
    by a request that then answers with an error (a lockout notice) still goes."""

    def __init__(self, sender: MailSender) -> None:
        self.sender = sender
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, mail: Mail) -> None:
        task = asyncio.create_task(self._deliver(mail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, mail: Mail) -> None:
        try:
            await self.sender.send(mail)
        except Exception as exc:  # recorded, not raised: the person can ask for the mail again
            log.warning("mail failed", to=mail.to, subject=mail.subject, error=type(exc).__name__)

    async def drain(self) -> None:
        """Wait for mail in flight (at shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
