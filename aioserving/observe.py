"""Per-request records the transports emit, for metrics and access logs."""

from __future__ import annotations

import itertools
import os
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from .errors import Code

__all__ = ["new_request_id", "RequestRecord", "Observer", "NullObserver", "ObserverGroup", "CURRENT_RECORD"]


_RID_PREFIX = os.urandom(8).hex()
_rid_counter = itertools.count(1)


def new_request_id() -> str:
    """A request id for requests that came without one: 32 hex digits, unique per
    process run (random prefix + counter), cheaper than os.urandom per request."""
    return f"{_RID_PREFIX}{next(_rid_counter):016x}"


@dataclass(slots=True)
class RequestRecord:
    transport: str  # "REST" | "GRPC"  (TF Serving's `entrypoint` label)
    api: str  # "Predict", "Classify", "Regress", "MultiInference", "GetModelMetadata", "GetModelStatus", ...
    model: str = ""
    version: int | None = None
    signature: str = ""
    code: Code = Code.OK
    latency_s: float = 0.0
    peer: str = ""
    request_id: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    examples: int = 0
    #: Time waiting for an inference thread (or the batch queue), and in the TF call itself.
    queue_s: float = 0.0
    runtime_s: float = 0.0
    #: Rows in this request's inputs (dim 0) as run; 0 when not a tensor request.
    batch_size: int = 0
    #: The HTTP status sent (REST only).
    http_status: int = 0


#: The record of the request the current task serves; the transports set it so the
#: core can fill in queue/runtime timings without a parameter on every call.
CURRENT_RECORD: ContextVar[RequestRecord | None] = ContextVar("aioserving_request_record", default=None)


class Observer(Protocol):
    #: Whether this observer reads a record's peer, byte counts and request id
    #: (transports skip collecting them when no observer does).
    detailed: bool

    def on_request(self, record: RequestRecord) -> None: ...


class NullObserver:
    detailed = False

    def on_request(self, record: RequestRecord) -> None:
        pass


class ObserverGroup:
    """Fan one record out to several observers (metrics, access log, ...)."""

    def __init__(self, observers: list[Observer] | None = None) -> None:
        self.observers: list[Observer] = []
        self.detailed = False
        for o in observers or ():
            self.add(o)

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)
        self.detailed = self.detailed or getattr(observer, "detailed", False)

    def on_request(self, record: RequestRecord) -> None:
        for o in self.observers:
            o.on_request(record)
