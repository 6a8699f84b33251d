"""structlog set-up: JSON lines for machines, readable output for people.

JSON when stderr is not a terminal or ``ADVISERING_LOG_FORMAT=json``; the
console renderer otherwise. Log *events* with context, never sentences and
never citizen data.

Should a CPR number slip into a log call anyway (an exception message quoting
a payload, a library's line), :func:`redact_cprs` takes it out of every
structlog event and :class:`CprRedactingFilter` out of every standard-library
record (Faust, aiokafka) before they are written: no log line carries one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from advisering.privacy import REDACTED, find_cprs, number_is_cpr, redact, redact_value
from advisering.settings import Settings


def _redacted(value: Any) -> Any:
    """``value`` without CPR numbers: strings redacted, containers walked, others by repr."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return REDACTED if number_is_cpr(value) else value
    if isinstance(value, dict | list | tuple):
        return redact_value(value)
    shown = repr(value)
    return redact(shown) if find_cprs(shown) else value


def redact_cprs(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: every key and value of the event with CPR numbers redacted.

    Strings without a CPR number (nearly all) cost one cheap check each.
    """
    for key in list(event_dict):
        value = event_dict[key]
        clean = _redacted(value)
        name = redact(key) if isinstance(key, str) else key
        if name != key:
            del event_dict[key]
        if name != key or clean is not value:
            event_dict[name] = clean
    return event_dict


class CprRedactingFilter(logging.Filter):
    """A handler filter that redacts CPR numbers in standard-library log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's message, traceback and stack in place; never drop it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: shown as they are
            message = f"{record.msg!r} {record.args!r}"
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the standard library logging it sits beside."""
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    level = getattr(logging, settings.log_level)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_cprs,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Resolve sys.stderr at each use, not once: it may be replaced (test capture).
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, CprRedactingFilter) for f in handler.filters):
            handler.addFilter(CprRedactingFilter())


def _stderr_logger(*_args: object) -> structlog.WriteLogger:
    # One write per line (PrintLogger writes the line, then its newline): processes
    # sharing one stderr, as several serve processes do, never glue two lines.
    return structlog.WriteLogger(file=sys.stderr)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger bound to a module name."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(module=name)
    return logger
