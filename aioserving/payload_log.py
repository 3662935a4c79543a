"""Per-model payload logging: sampled Predict requests and responses as ``PredictionLog`` TFRecords.

Configured by each model's ``logging_config`` (``log_collector_config { type
filename_prefix }``, ``sampling_config { sampling_rate }``).  On the request path
a model without logging costs one dict lookup in the core; a logged model costs a
``random()`` and an append to a bounded queue.  One writer thread builds the
protos (``tensors.fill_proto``) and writes rotating TFRecord files named
``<filename_prefix>-<pid>-<NNNNN>.tfrecord``.  When the queue is full the record
is dropped and counted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import threading
import time
from typing import Any, Callable, Mapping

import numpy as np

from .manager import Lease
from .signature import SignatureInfo

__all__ = ["PayloadLogger", "DEFAULT_MAX_QUEUE", "DEFAULT_MAX_FILE_BYTES"]

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 4096
DEFAULT_MAX_FILE_BYTES = 64 << 20
_COLLECTOR_TYPES = ("", "tfrecord", "tfrecord_file", "file")

Hook = Callable[[Lease, SignatureInfo, Mapping[str, np.ndarray], Mapping[str, np.ndarray]], None]
OnDrop = Callable[[str], None]


class _Rotating:
    """TFRecord files for one prefix, rotated past ``max_bytes``."""

    def __init__(self, prefix: str, max_bytes: int) -> None:
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.seq = 0
        self.size = 0
        self.writer: Any = None

    def write(self, data: bytes) -> None:
        import tensorflow as tf

        if self.writer is None or self.size >= self.max_bytes:
            self.close()
            d = os.path.dirname(self.prefix)
            if d:
                os.makedirs(d, exist_ok=True)
            self.writer = tf.io.TFRecordWriter(f"{self.prefix}-{os.getpid()}-{self.seq:05d}.tfrecord")
            self.seq += 1
            self.size = 0
        self.writer.write(data)
        self.size += len(data) + 16  # TFRecord framing

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class PayloadLogger:
    """Owns the per-model hooks (installed into ``ServingCore.payload_hooks``) and the writer thread."""

    def __init__(self, hooks: dict[str, Hook], *, max_queue: int = DEFAULT_MAX_QUEUE,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, on_drop: OnDrop | None = None) -> None:
        self.hooks = hooks
        self.max_queue = max_queue
        self.max_file_bytes = max_file_bytes
        self.on_drop = on_drop
        self.dropped = 0
        self.written = 0
        self._items: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._files: dict[str, _Rotating] = {}
        self._configured: dict[str, tuple[str, float]] = {}

    # ------------------------------------------------------------------ configuration (loop)
    def configure(self, model: str, model_config_proto: Any) -> None:
        """Install, replace or remove ``model``'s hook from its ``ModelConfig.logging_config``."""
        setting = None
        if model_config_proto is not None and model_config_proto.HasField("logging_config"):
            lc = model_config_proto.logging_config
            ctype = lc.log_collector_config.type
            prefix = lc.log_collector_config.filename_prefix
            rate = lc.sampling_config.sampling_rate
            if ctype.lower() not in _COLLECTOR_TYPES:
                log.error("Model %s: unsupported log_collector_config.type %r (supported: TFRecord files); "
                          "payload logging off", model, ctype)
            elif not prefix:
                log.error("Model %s: log_collector_config.filename_prefix is empty; payload logging off", model)
            elif rate > 0:
                setting = (prefix, min(rate, 1.0))
        if setting == self._configured.get(model):
            return
        if setting is None:
            self._configured.pop(model, None)
            self.hooks.pop(model, None)
            return
        self._configured[model] = setting
        self.hooks[model] = self._make_hook(*setting)
        self._ensure_thread()

    def _make_hook(self, prefix: str, rate: float) -> Hook:
        items, cond, limit = self._items, self._cond, self.max_queue

        def hook(lease: Lease, sig: SignatureInfo, inputs: Mapping[str, np.ndarray],
                 outputs: Mapping[str, np.ndarray]) -> None:
            if rate < 1.0 and random.random() >= rate:
                return
            if len(items) >= limit:
                self.dropped += 1
                if self.on_drop is not None:
                    self.on_drop(lease.name)
                return
            item = (prefix, rate, lease.name, lease.version, sig, dict(inputs), dict(outputs), time.time())
            with cond:
                items.append(item)
                cond.notify()

        return hook

    # ------------------------------------------------------------------ writer thread
    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aioserving-payload-log", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                batch = list(self._items)
                self._items.clear()
                closed = self._closed
            for item in batch:
                if callable(item):  # a flush marker
                    for f in self._files.values():
                        f.flush()
                    item()
                    continue
                try:
                    self._write(*item)
                except Exception:  # noqa: BLE001 - keep logging other records
                    log.exception("payload log write failed")
            for f in self._files.values():
                f.flush()
            if closed:
                for f in self._files.values():
                    f.close()
                return

    def _write(self, prefix: str, rate: float, model: str, version: int, sig: SignatureInfo,
               inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], when: float) -> None:
        from tensorflow_serving.apis import prediction_log_pb2

        from .tensors import fill_proto

        pl = prediction_log_pb2.PredictionLog()
        md = pl.log_metadata
        md.model_spec.name = model
        md.model_spec.version.value = version
        md.model_spec.signature_name = sig.key
        md.sampling_config.sampling_rate = rate
        req = pl.predict_log.request
        req.model_spec.CopyFrom(md.model_spec)
        for alias, arr in inputs.items():
            fill_proto(req.inputs[alias], arr, sig.inputs[alias].dtype, use_tensor_content=True)
        resp = pl.predict_log.response
        resp.model_spec.CopyFrom(md.model_spec)
        for alias, arr in outputs.items():
            fill_proto(resp.outputs[alias], arr, sig.outputs[alias].dtype, use_tensor_content=True)
        f = self._files.get(prefix)
        if f is None:
            f = self._files[prefix] = _Rotating(prefix, self.max_file_bytes)
        f.write(pl.SerializeToString())
        self.written += 1

    async def flush(self) -> None:
        """Wait until every record queued so far is written and flushed to its file."""
        if self._thread is None:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def marker() -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        with self._cond:
            self._items.append(marker)
            self._cond.notify()
        await done

    async def close(self) -> None:
        """Write what is queued, close the files and stop the thread (joined off the loop)."""
        self.hooks.clear()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with self._cond:
            self._closed = True
            self._cond.notify()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
