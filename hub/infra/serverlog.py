"""Server logging: plain lines on stderr, each record redacted and made safe as a whole.

Two guarantees hold for every record, whoever logs it (the hub, aiohttp, a plugin):

- **One record starts one line.** Control characters in a record's message (CR, LF, the
  other C0 and C1 controls, DEL, U+2028/U+2029) are written as escapes such as ``\\n``, so
  a value a client chose (a path, a header) can neither end the line nor start a forged
  one. A traceback or stack keeps its own line breaks, but each of its lines is indented
  under the record, so no line of it can pass for a record of its own.
- **No credential survives formatting.** Redaction runs on the formatted text, exception
  text and stack included, not only on the message.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TextIO

from ..redact import known_secrets, mask_known

FORMAT = "%(asctime)s [%(process)d] %(levelname)-7s %(name)s: %(message)s"
# What a record's follow-on lines (traceback, stack) start with: whitespace, as multi-line
# log collectors expect, and a bar that shows the line belongs to the record above.
CONTINUATION = "    | "

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` on one line: every control character written as a visible escape."""
    return _CONTROL.sub(_escape_one, text)


def indent_block(text: str) -> str:
    """A multi-line block (a traceback) kept readable, but unable to start a line of its own."""
    safe = _CONTROL_BUT_NEWLINE.sub(_escape_one, text.rstrip("\n"))
    return "\n".join(CONTINUATION + line for line in safe.split("\n"))


class RedactingFormatter(logging.Formatter):
    """Formats a record, then redacts and escapes all of it. ``secrets`` holds the exact
    values to mask besides the credential shapes redaction knows (set once the hub's are
    known)."""

    def __init__(self, fmt: str = FORMAT, secrets: list[str] | None = None) -> None:
        super().__init__(fmt)
        self.secrets = secrets or []
        # Every request logs a line: the secrets' longest-first order and the second's
        # date text are kept between records, each for exactly as long as it is right
        # (the secrets as given now, the same whole second).
        self._given: tuple[str, ...] = ()
        self._known: list[str] = []
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second[0]:
            self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return self.default_msec_format % (self._second[1], record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        parts = [escape_controls(self._redact(self.formatMessage(record)))]
        # Rendered here rather than from record.exc_text, which another handler may have
        # filled in unredacted; and never cached back onto the record.
        if record.exc_info:
            parts.append(indent_block(self._redact(self.formatException(record.exc_info))))
        elif record.exc_text:
            parts.append(indent_block(self._redact(record.exc_text)))
        if record.stack_info:
            parts.append(indent_block(self._redact(self.formatStack(record.stack_info))))
        return "\n".join(parts)

    def _redact(self, text: str) -> str:
        given = tuple(self.secrets)
        if given != self._given:
            self._given, self._known = given, known_secrets(given)
        return mask_known(text, self._known)


def make_handler(stream: TextIO, secrets: list[str] | None = None) -> tuple[logging.Handler, RedactingFormatter]:
    handler = logging.StreamHandler(stream)
    formatter = RedactingFormatter(secrets=secrets)
    handler.setFormatter(formatter)
    return handler, formatter


def setup(level: str = "INFO", secrets: list[str] | None = None) -> RedactingFormatter:
    """Route every logger to stderr through :class:`RedactingFormatter`; returns it, so the
    caller can hand it the hub's secrets once they are known."""
    # The pid (in FORMAT) tells workers apart when several write to one stream.
    handler, formatter = make_handler(sys.stderr, secrets)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # No record this formatter writes names its source line, thread or multiprocessing
    # process; looking them up was a third of the cost of each access line.
    logging._srcfile = None  # type: ignore[attr-defined]  # the logging HOWTO's "Optimization"
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return formatter
