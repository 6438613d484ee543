"""Mail when no SMTP server is configured and DEBUG is off.

Django's console backend would print whole messages, password-reset and
invitation links included, into the server's log. This backend keeps each
message as a file under `var/mail/` (readable by the server's user only) and
logs one line naming the recipients and subject, never the body.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

logger = logging.getLogger("aispendtrack.mail")

DISABLED_WARNING = (
    "Mail is disabled: EMAIL_HOST is not set, so invitations and password resets "
    "are not sent. Messages are kept under %s (bodies are never logged); set "
    "EMAIL_HOST to send them."
)


def mail_dir() -> Path:
    return Path(settings.VAR_DIR) / "mail"


def mail_disabled() -> bool:
    return settings.EMAIL_BACKEND.endswith("config.mail.UnsentMailBackend")


class UnsentMailBackend(BaseEmailBackend):
    """Stores messages under var/mail/ (mode 0600) instead of sending them."""

    def send_messages(self, email_messages) -> int:
        folder = mail_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        kept = 0
        for message in email_messages:
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S.%f")
            path = folder / f"{stamp}-{os.getpid()}-{kept}.eml"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(message.message().as_bytes())
            logger.warning(
                "mail not sent (no EMAIL_HOST): %r to %s kept in %s",
                message.subject,
                ", ".join(message.recipients()),
                path,
            )
            kept += 1
        return kept


def warn_if_mail_disabled() -> None:
    if mail_disabled():
        logger.warning(DISABLED_WARNING, mail_dir())
