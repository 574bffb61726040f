"""Structured JSON logs: one object per line, with the current trace, secrets redacted.

Each line carries ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
``service``, ``trace_id`` and ``span_id`` (hex; "" outside a span) and then any ``extra=``
fields. `RedactionFilter` runs on the handler, so it sees records from every logger.
Under uvicorn, start it with ``log_config=None, access_log=False``: our root handler and
`RequestLogMiddleware` then own the output.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

REDACTED = "[REDACTED]"
API_KEY_PATTERN = re.compile(r"tnl_[A-Za-z0-9_-]{8,}")
# Matched as substrings of the lower-cased key with "-" read as "_": "X-Api-Key",
# "client_secret", "access_token", "Set-Cookie" are all secret.
SECRET_KEY_PARTS = ("authorization", "api_key", "password", "token", "secret", "cookie")

# color_message: the ANSI twin of the message that uvicorn passes as an extra.
_STANDARD_ATTRS = frozenset(RESERVED_ATTRS) | {"message", "asctime", "color_message"}
_STANDARD_ATTRS |= {"trace_id", "span_id", "taskName"}
_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def redact_text(text: str) -> str:
    return API_KEY_PATTERN.sub(REDACTED, text)


def is_secret_key(key: str) -> bool:
    normalised = key.lower().replace("-", "_")
    return any(part in normalised for part in SECRET_KEY_PARTS)


def redact_value(value: object) -> object:
    """Redact API keys in strings and secret-named keys in nested mappings and sequences."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if isinstance(key, str) and is_secret_key(key) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


class RedactionFilter(logging.Filter):
    """Removes API keys from the message and secrets from ``extra`` fields; never drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, Mapping):  # logger.info({...}): a structured message
            record.msg = redact_value(record.msg)
        elif (message := self._message(record)) is not None:
            record.msg, record.args = redact_text(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                record.__dict__[key] = REDACTED if is_secret_key(key) else redact_value(value)
        return True

    @staticmethod
    def _message(record: logging.LogRecord) -> str | None:
        try:
            return record.getMessage()
        except (TypeError, ValueError):  # a broken format string: leave it to the formatter
            return None


class TraceContextFilter(logging.Filter):
    """Stamps ``trace_id``/``span_id`` of the span current when the record was made."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        valid = span_context.is_valid
        record.trace_id = trace.format_trace_id(span_context.trace_id) if valid else ""
        record.span_id = trace.format_span_id(span_context.span_id) if valid else ""
        return True


class TeamnlJsonFormatter(JsonFormatter):
    """Our fixed field set first, then the record's extras (which cannot override it)."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        timestamp = datetime.fromtimestamp(record.created, tz=UTC)
        log_data.update(
            timestamp=timestamp.isoformat(timespec="milliseconds"),
            level=record.levelname,
            logger=record.name,
            message=record.message,
            service=self.service_name,
            trace_id=getattr(record, "trace_id", ""),
            span_id=getattr(record, "span_id", ""),
        )
        for key, value in message_dict.items():
            log_data.setdefault(key, value)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                log_data.setdefault(key, value)

    def formatException(self, ei: _ExcInfo | tuple[None, None, None]) -> str:
        return redact_text(logging.Formatter.formatException(self, ei))


class _TeamnlHandler(logging.StreamHandler[IO[str]]):
    """Marks the handler `configure_logging` installed, so a second call replaces it."""


def configure_logging(
    service_name: str, level: int | str = logging.INFO, *, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record, as JSON lines, to `stream` (default stdout) via the root logger.

    Safe to call again: the handler installed by an earlier call is replaced.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _TeamnlHandler)]:
        root.removeHandler(handler)
        handler.close()
    handler = _TeamnlHandler(stream if stream is not None else sys.stdout)
    handler.addFilter(TraceContextFilter())
    handler.addFilter(RedactionFilter())
    handler.setFormatter(TeamnlJsonFormatter(service_name))
    root.addHandler(handler)
    root.setLevel(level)
    return handler
