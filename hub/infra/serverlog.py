"""Server logging: plain lines on stderr, with a last redaction pass over every record."""

from __future__ import annotations

import logging
import sys

from ..redact import redact_text


class RedactingFilter(logging.Filter):
    """Masks credential-shaped strings and known secrets in every formatted message."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self.secrets = secrets or []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup(level: str = "INFO", secrets: list[str] | None = None) -> RedactingFilter:
    handler = logging.StreamHandler(sys.stderr)
    # The pid tells workers apart when several write to one stream.
    handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)-7s %(name)s: %(message)s"))
    redactor = RedactingFilter(secrets)
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return redactor
