"""Access log: one structured line per request, REST and gRPC, carrying the client's request id."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from aioserving import ServerConfig
from aioserving.accesslog import ACCESS_LOGGER, AccessLog
from aioserving.errors import Code
from aioserving.observe import RequestRecord
from harness import start_server, write_config

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIELDS = {"time", "transport", "peer", "model", "version", "signature", "api", "code", "http_status",
          "latency_us", "queue_us", "runtime_us", "batch_size", "bytes_in", "bytes_out", "request_id"}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_rest_and_grpc_lines_json(model_root: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "models.config", {"half_plus_two": model_root / "half_plus_two"})
    handler = _Collect()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    s = await start_server(ServerConfig(model_config_file=str(cfg), access_log=True, log_format="json"))
    try:
        body = b'{"instances": [1.0, 2.0, 5.0]}'
        async with s.session.post(s.url + "/v1/models/half_plus_two:predict", data=body,
                                  headers={"x-request-id": "rest-req-1"}) as r:
            assert r.status == 200
            assert r.headers["x-request-id"] == "rest-req-1"
            out = await r.read()
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "half_plus_two"
        req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0], np.float32)))
        call = s.predict_stub.Predict(req, metadata=(("x-request-id", "grpc-req-2"),))
        resp = await call
        assert ("x-request-id", "grpc-req-2") in tuple(await call.trailing_metadata())
        bad = predict_pb2.PredictRequest()
        bad.model_spec.name = "nope"
        call = s.predict_stub.Predict(bad)
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await call
        generated = dict(ei.value.trailing_metadata())["x-request-id"]
        assert len(generated) == 32 and int(generated, 16) >= 0
        async with s.session.get(s.url + "/v1/models/half_plus_two") as r:
            assert len(r.headers["x-request-id"]) == 32
    finally:
        await s.close()
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    lines = [json.loads(ln) for ln in handler.lines]
    assert len(lines) == 4
    assert all(set(ln) == FIELDS for ln in lines)
    # By content, not position: a failed gRPC call's line is written after the client already
    # has its status, so it may land after the next request's line.
    by = {(ln["transport"], ln["api"], ln["code"]): ln for ln in lines}
    rest = by["REST", "Predict", "OK"]
    grpc_ok = by["GRPC", "Predict", "OK"]
    grpc_bad = by["GRPC", "Predict", "NOT_FOUND"]
    status = by["REST", "GetModelStatus", "OK"]
    assert {k: rest[k] for k in ("transport", "model", "version", "signature", "api", "code", "http_status",
                                 "batch_size", "bytes_in", "bytes_out", "request_id")} == {
        "transport": "REST", "model": "half_plus_two", "version": 2, "signature": "serving_default",
        "api": "Predict", "code": "OK", "http_status": 200, "batch_size": 3, "bytes_in": len(body),
        "bytes_out": len(out), "request_id": "rest-req-1"}
    assert rest["peer"] == "127.0.0.1"
    assert rest["latency_us"] >= rest["runtime_us"] > 0 and rest["queue_us"] >= 0
    assert {k: grpc_ok[k] for k in ("transport", "model", "version", "signature", "api", "code", "http_status",
                                    "batch_size", "bytes_in", "bytes_out", "request_id")} == {
        "transport": "GRPC", "model": "half_plus_two", "version": 2, "signature": "serving_default",
        "api": "Predict", "code": "OK", "http_status": None, "batch_size": 2, "bytes_in": req.ByteSize(),
        "bytes_out": resp.ByteSize(), "request_id": "grpc-req-2"}
    assert grpc_ok["peer"].startswith("ipv4:127.0.0.1:")
    assert (grpc_bad["code"], grpc_bad["model"], grpc_bad["request_id"]) == ("NOT_FOUND", "nope", generated)
    assert (status["api"], status["code"], status["http_status"]) == ("GetModelStatus", "OK", 200)
    assert rest["time"].endswith("Z") and len(rest["time"]) == len("2026-01-01T00:00:00.000000Z")


async def test_text_format_line() -> None:
    handler = _Collect()
    logger = logging.getLogger("test.access.text")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    rec = RequestRecord(transport="REST", api="Predict", model="m", version=3, signature="serving_default",
                        code=Code.INVALID_ARGUMENT, latency_s=0.0015, peer="10.0.0.1", request_id="id 1",
                        bytes_in=10, bytes_out=20, http_status=400)
    AccessLog("text", logger).on_request(rec)
    (line,) = handler.lines
    assert line.split(" ", 1)[1] == (
        'transport=REST peer=10.0.0.1 model=m version=3 signature=serving_default api=Predict '
        'code=INVALID_ARGUMENT http_status=400 latency_us=1500 queue_us=0 runtime_us=0 batch_size=0 '
        'bytes_in=10 bytes_out=20 request_id="id 1"')
    assert line.startswith("time=")
