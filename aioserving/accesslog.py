"""One structured access-log line per request, on the ``aioserving.access`` logger.

The library only emits records; where they go is the host's logging
configuration.  The CLI routes this logger through a ``QueueHandler`` so the
write happens on a listener thread, never on the event loop.
"""

from __future__ import annotations

import logging
import logging.handlers
import time
from typing import Any

import orjson

from .observe import RequestRecord

__all__ = ["AccessLog", "ACCESS_LOGGER", "access_fields"]

ACCESS_LOGGER = "aioserving.access"

_log = logging.getLogger(ACCESS_LOGGER)


def access_fields(rec: RequestRecord) -> dict[str, Any]:
    """The fields of one access-log line, in a stable order."""
    now = time.time()  # a wall-clock timestamp for the line, not a duration
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z",
        "transport": rec.transport,
        "peer": rec.peer,
        "model": rec.model,
        "version": rec.version,
        "signature": rec.signature,
        "api": rec.api,
        "code": rec.code.name,
        "http_status": rec.http_status or None,
        "latency_us": int(rec.latency_s * 1e6),
        "queue_us": int(rec.queue_s * 1e6),
        "runtime_us": int(rec.runtime_s * 1e6),
        "batch_size": rec.batch_size,
        "bytes_in": rec.bytes_in,
        "bytes_out": rec.bytes_out,
        "request_id": rec.request_id,
    }


def _text(fields: dict[str, Any]) -> str:
    parts = []
    for k, v in fields.items():
        if v is None or v == "":
            v = "-"
        elif isinstance(v, str) and (" " in v or '"' in v):
            v = orjson.dumps(v).decode()
        parts.append(f"{k}={v}")
    return " ".join(parts)


class AccessLog:
    """Observer writing ``--log_format`` ``text`` (``key=value ...``) or ``json`` lines."""

    detailed = True

    def __init__(self, fmt: str = "text", logger: logging.Logger | None = None) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"--log_format must be 'text' or 'json', got {fmt!r}")
        self.json = fmt == "json"
        self.logger = logger or _log

    def on_request(self, rec: RequestRecord) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        fields = access_fields(rec)
        line = orjson.dumps(fields).decode() if self.json else _text(fields)
        # The fields also ride on the record (``record.access``) for structured handlers.
        self.logger.info(line, extra={"access": fields})


def start_access_log_thread(handler: logging.Handler | None = None) -> logging.handlers.QueueListener:
    """Route ``aioserving.access`` through a queue to ``handler`` (stderr by default) on a listener thread.

    For hosts (and the CLI) that want the access log written off the event loop.
    Call ``.stop()`` on the result at exit.
    """
    import logging.handlers
    import queue

    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    if handler is None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
    _log.addHandler(logging.handlers.QueueHandler(q))
    _log.setLevel(logging.INFO)
    _log.propagate = False
    listener = logging.handlers.QueueListener(q, handler)
    listener.start()
    return listener
