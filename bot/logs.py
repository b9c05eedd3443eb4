"""Logging: one line per event (JSON, or text for people on a terminal), never a secret.

Every record passes one filter, ``Redactor``, on the handler, whatever its logger and level. It
replaces each configured secret (platform tokens, AES keys, app secrets, the admin token, the
database password) and anything shaped like one (a Telegram token in a Bot API URL, an
``access_token=`` or ``secret=`` query parameter, a password in a database URL) in the message,
the ``extra`` fields and the traceback. Above DEBUG it also strips SQL parameters from database
errors (SQLAlchemy's ``[parameters: ...]``, the value asyncpg quotes when it refuses one), since
they hold openids and message text. Follower ids are hashed by the code that logs them
(``follower_hash``); third-party libraries, whose DEBUG lines carry chat ids and message text,
log at INFO at most.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from typing import IO, Any, Literal
from urllib.parse import quote

from sqlalchemy.engine import make_url

__all__ = ["REQUEST_ID", "CancelledReset", "JsonFormatter", "Redactor", "RequestIdFilter", "TextFormatter", "accept_request_id",
           "add_secrets", "configure_logging", "new_request_id", "secrets_of", "setup_logging"]

REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 3  # WeChat tokens may be this short; a shorter value would only mangle the logs

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}

# Shapes of secrets, redacted whether configured or not.
_SHAPES = (
    # A Telegram bot token, in a Bot API URL (/bot<token>/method) or alone (digits:35 characters).
    (re.compile(r"(/(?:file/)?bot)\d+:[^/\s?#\"']+"), rf"\1{REDACTED}"),
    (re.compile(r"\b\d{5,20}:[A-Za-z0-9_-]{30,}"), REDACTED),
    # WeChat's access token and app secret in API URLs.
    (re.compile(r"\b((?:access_token|secret|appsecret)=)[^&\s\"']+", re.IGNORECASE), rf"\1{REDACTED}"),
    # A password in a database (or any) URL: scheme://user:password@host.
    (re.compile(r"\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.IGNORECASE), rf"\1{REDACTED}@"),
)
# SQL parameters in database errors: SQLAlchemy's own line, and the value asyncpg quotes.
_SQL_PARAMETERS = (
    (re.compile(r"^\[parameters: .*$", re.MULTILINE), "[SQL parameters hidden]"),
    (re.compile(r"(invalid input for query argument \$\d+[^:\n]*:).*$", re.MULTILINE), r"\1 <hidden>"),
)
# Libraries whose DEBUG output holds follower ids or message text (PTB's API parameters,
# aiosqlite's statements): INFO at most, even at DEBUG.
_CHATTY = ("telegram", "httpcore", "aiosqlite", "hpack")


# The id of the request (or platform update) being handled: set where it comes in (bot.web's
# middleware, Telegram's poller), copied into the tasks it starts, written on every log line.
REQUEST_ID: ContextVar[str | None] = ContextVar("engagebot_request_id", default=None)
# An incoming X-Request-Id is kept when it is this (a proxy's id, a UUID); anything else is replaced.
_REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._:-]{8,64}")


# Request ids' own generator: seeding the module's shared one (a test, a library) must not repeat
# them, and what X-Request-Id shows must not tell anyone what that shared one draws next. Reseeded
# from the system in every child process, so workers never share a sequence.
_REQUEST_IDS = random.Random()
os.register_at_fork(after_in_child=_REQUEST_IDS.seed)


def new_request_id() -> str:
    # 128 random bits as 32 hex digits: unique is all a request id needs (not secret), and uuid4's
    # system call and object cost more per message than the rest of the log plumbing.
    return f"{_REQUEST_IDS.getrandbits(128):032x}"


def accept_request_id(incoming: str | None) -> str:
    """The caller's request id when it is sane (8 to 64 of ``A-Za-z0-9._:-``), else a new one."""
    if incoming is not None and _REQUEST_ID_SHAPE.fullmatch(incoming):
        return incoming
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Put the current request id (if any) on the record, as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "request_id" not in record.__dict__ and (request_id := REQUEST_ID.get()) is not None:
            record.request_id = request_id
        return True


class CancelledReset(logging.Filter):
    """SQLAlchemy's pool logs an ERROR with a traceback when a connection's reset on return (its
    rollback) is interrupted. When the interruption is a task's cancellation (a stop cancelling a duty
    while its session closes), nothing is wrong: the pool closes the connection instead, and what its
    transaction held uncommitted is rolled back by the database. That record becomes one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("sqlalchemy.pool") and record.exc_info \
                and isinstance(record.exc_info[1], asyncio.CancelledError):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.msg, record.args = "a pooled connection's reset was cancelled with its task; the connection " \
                                      "was closed instead", None
            record.exc_info = record.exc_text = None
        return True


class Redactor(logging.Filter):
    """Take secrets (and, above DEBUG, SQL parameters) out of every record that passes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Redact these values too (and their URL-encoded forms), longest first."""
        values = set(self._secrets)
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                values.update({secret, quote(secret, safe="")})
        self._secrets = sorted(values, key=len, reverse=True)

    def redact(self, text: str, *, level: int = logging.INFO) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        if level > logging.DEBUG:
            for pattern, replacement in _SQL_PARAMETERS:
                text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        level = record.levelno
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg, record.args = self.redact(message, level=level), None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and value is not None:
                record.__dict__[key] = self._redact_value(value, level)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text, level=level)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info, level=level)
        return True

    def _redact_value(self, value: Any, level: int) -> Any:
        if isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self.redact(value, level=level)
        if isinstance(value, (list, tuple)):
            return [self._redact_value(v, level) for v in value]
        if isinstance(value, dict):
            return {k: self._redact_value(v, level) for k, v in value.items()}
        return self.redact(str(value), level=level)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, the ``extra`` fields, a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        event = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                 "logger": record.name, "event": record.getMessage()}
        event.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            event["traceback"] = record.exc_text
        return json.dumps(event, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A line for people: ``12:04:05 INFO  engagebot.dispatch  handled  channel=wechat ms=3.1``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in _extras(record).items())
        line = (f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}  "
                f"{record.getMessage()}{'  ' + fields if fields else ''}")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return json.dumps(text, ensure_ascii=False) if (not text or any(c in text for c in ' ="\n')) else text


LogFormat = Literal["auto", "json", "text"]


def setup_logging(level: str = "INFO", *, fmt: LogFormat = "auto", secrets: Iterable[str] = (),
                  stream: IO[str] | None = None) -> Redactor:
    """Send every log record to ``stream`` (stderr) through a ``Redactor``; return it.

    ``fmt="auto"``: text when the stream is a terminal, JSON lines otherwise (for a log collector).
    """
    stream = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "text" if _isatty(stream) else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    redactor = Redactor(secrets)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(CancelledReset())
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request access lines would double every event; our own "handled" line carries what matters.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # httpx logs each request's URL at INFO (redacted above): shown only when asked for DEBUG.
    logging.getLogger("httpx").setLevel(logging.INFO if level == "DEBUG" else logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.INFO if level == "DEBUG" else logging.NOTSET)
    return redactor


def add_secrets(*secrets: str | None) -> None:
    """Redact these values too from now on, in every handler set up here.

    For secrets that are not settings: a channel registers its own credentials when it is built
    (a simulated account's included), so they are redacted however they were made.
    """
    for handler in logging.getLogger().handlers:
        for log_filter in handler.filters:
            if isinstance(log_filter, Redactor):
                log_filter.add(*secrets)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def secrets_of(settings: Any) -> list[str]:
    """Every secret in the settings: platform tokens and keys, the admin token, the database password."""
    values: list[str | None] = []
    accounts = [settings.wechat, *settings.wechat_accounts.values()]
    for account in accounts:
        values += [_secret(account.token), _secret(account.app_secret), _secret(account.aes_key)]
    telegram = _secret(settings.telegram.token)
    values += [telegram, telegram.split(":", 1)[-1] if telegram else None, _secret(settings.telegram.webhook_secret)]
    values.append(_secret(settings.admin_token))
    try:
        values.append(make_url(settings.database_url).password)
    except Exception:
        pass
    return [v for v in values if v]


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def configure_logging(settings: Any, *, stream: IO[str] | None = None) -> Redactor:
    """Set up logging as ``settings`` say (level, format), redacting every secret they hold."""
    return setup_logging(settings.log_level, fmt=settings.log_format, secrets=secrets_of(settings), stream=stream)
