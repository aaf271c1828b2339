"""Log records that a client cannot forge: control characters in logged values are escaped.

Log lines quote what clients send (hub ids from request paths, frame types, MQTT topics, error
messages that echo input). A value carrying a newline could start a fake log line, and one
carrying terminal escapes could rewrite what an operator sees. :func:`install` wraps the
process's log record factory once, so every record, whatever logger made it (ours, uvicorn's,
amqtt's), has the control characters of its arguments escaped (``\\n``, ``\\x1b``, ``\\u202e``...)
before any handler formats it. Numbers pass unchanged; other arguments are escaped in their
``str()`` form. The message template itself is the program's own text and is left alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["escape_control", "install"]

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_installed = False


def escape_control(text: str) -> str:
    """``text`` with every control, line-separator and bidirectional-override character escaped."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def _safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    escaped = escape_control(text)
    if escaped == text and not isinstance(value, str):
        return value  # unchanged: keep the object (for %r and friends)
    return escaped


def _safe_args(args: Any) -> Any:
    if isinstance(args, Mapping):
        return {key: _safe(value) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(_safe(value) for value in args)
    return args


def install() -> None:
    """Escape control characters in the arguments of every log record made from now on (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def escaping_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if record.args:
            record.args = _safe_args(record.args)
        return record

    logging.setLogRecordFactory(escaping_record)
