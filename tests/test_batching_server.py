"""Batching through a real server: results equal unbatched results, TF Serving's limits and errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

import models
from harness import Running, start_server

pytestmark = pytest.mark.asyncio(loop_scope="session")


class BatchLog:
    """Records the batches the scheduler runs (observation only; the request path is real)."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def on_batch(self, key, input_rows, padded_rows, waits) -> None:  # type: ignore[no-untyped-def]
        self.batches.append((input_rows, padded_rows))


@pytest.fixture(scope="module")
def mlp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mlp")
    models.build_mlp(root / "mlp" / "1", in_dim=16)
    return root


async def _serve(model_root: Path, mlp_root: Path, tmp_path: Path, params: str | None, **kw) -> Running:  # type: ignore[no-untyped-def]
    from aioserving import ServerConfig

    cfg = tmp_path / "models.config"
    cfg.write_text("model_config_list {\n"
                   f'  config {{ name: "half_plus_two" base_path: "{model_root / "half_plus_two"}" }}\n'
                   f'  config {{ name: "mlp" base_path: "{mlp_root / "mlp"}" }}\n'
                   f'  config {{ name: "tf2" base_path: "{model_root / "tf2"}" }}\n'
                   "}\n")
    extra = {}
    if params is not None:
        pf = tmp_path / "batching.pbtxt"
        pf.write_text(params)
        extra["batching_parameters_file"] = str(pf)
    return await start_server(ServerConfig(model_config_file=str(cfg), enable_batching=True, **extra), **kw)


async def _serve_logged(model_root: Path, mlp_root: Path, tmp_path: Path, params: str) -> tuple[Running, BatchLog]:
    """A batching server whose scheduler reports every batch it runs to a BatchLog."""
    srv = await _serve(model_root, mlp_root, tmp_path, params)
    log = BatchLog()
    srv.server.scheduler.observer = log
    return srv, log


def _mlp_expected(x: np.ndarray) -> np.ndarray:
    w1, b1, w2, b2 = models.mlp_weights(16)
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


async def test_64_concurrent_clients_get_their_own_rows(model_root: Path, mlp_root: Path, tmp_path: Path) -> None:
    params = "max_batch_size { value: 32 } batch_timeout_micros { value: 20000 } " \
             "max_enqueued_batches { value: 100 } num_batch_threads { value: 2 }"
    srv, log = await _serve_logged(model_root, mlp_root, tmp_path, params)
    try:
        rng = np.random.default_rng(0)
        xs = rng.normal(size=(64, 2, 16)).astype(np.float32)

        async def rest(i: int) -> None:
            status, body, raw = await srv.post("/v1/models/mlp:predict", {"instances": xs[i].tolist()})
            assert status == 200, raw
            np.testing.assert_allclose(np.array(body["predictions"]), _mlp_expected(xs[i]), rtol=1e-4, atol=1e-4)

        async def grpc_call(i: int) -> None:
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "mlp"
            req.inputs["x"].CopyFrom(tf.make_tensor_proto(xs[i]))
            resp = await srv.predict_stub.Predict(req)
            np.testing.assert_allclose(tf.make_ndarray(resp.outputs["y"]), _mlp_expected(xs[i]), rtol=1e-4, atol=1e-4)

        await asyncio.gather(*(rest(i) if i % 2 else grpc_call(i) for i in range(64)))
        rows = [b[0] for b in log.batches]
        assert sum(rows) == 128
        assert max(rows) > 2, f"no batching happened: {log.batches}"
        assert all(r <= 32 for r in rows)
    finally:
        await srv.close()


async def test_oversize_task_and_padding(model_root: Path, mlp_root: Path, tmp_path: Path) -> None:
    params = "max_batch_size { value: 4 } batch_timeout_micros { value: 0 } " \
             "allowed_batch_sizes: 2 allowed_batch_sizes: 4 max_enqueued_batches { value: 10 }"
    srv, log = await _serve_logged(model_root, mlp_root, tmp_path, params)
    try:
        status, body, _ = await srv.post("/v1/models/half_plus_two:predict", {"instances": [1.0] * 5})
        assert (status, body) == (400, {"error": "Task size 5 is larger than maximum input batch size 4"})
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "half_plus_two"
        req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones(5, np.float32)))
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await srv.predict_stub.Predict(req)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ei.value.details() == "Task size 5 is larger than maximum input batch size 4"
        # 3 rows are padded to the allowed size 4; the pad row never reaches the client.
        status, body, _ = await srv.post("/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]})
        assert (status, body) == (200, {"predictions": [2.5, 3.0, 4.5]})
        assert log.batches[-1] == (3, 4)
    finally:
        await srv.close()


async def test_large_batch_splitting_matches_unbatched(model_root: Path, mlp_root: Path, tmp_path: Path) -> None:
    params = "max_batch_size { value: 64 } batch_timeout_micros { value: 0 } enable_large_batch_splitting { value: true } " \
             "max_execution_batch_size { value: 4 } max_enqueued_batches { value: 100 }"
    srv, log = await _serve_logged(model_root, mlp_root, tmp_path, params)
    try:
        x = np.arange(10 * 16, dtype=np.float32).reshape(10, 16) / 100
        status, body, _ = await srv.post("/v1/models/mlp:predict", {"instances": x.tolist()})
        assert status == 200
        np.testing.assert_allclose(np.array(body["predictions"]), _mlp_expected(x), rtol=1e-4, atol=1e-4)
        assert all(b[1] <= 4 for b in log.batches) and sum(b[0] for b in log.batches) == 10
    finally:
        await srv.close()


async def test_unbatchable_signature_and_mixed_shapes(model_root: Path, mlp_root: Path, tmp_path: Path) -> None:
    srv = await _serve(model_root, mlp_root, tmp_path, None)  # adaptive default
    try:
        # Different non-batch shapes go to different queues: neither poisons the other.
        a = srv.post("/v1/models/tf2:predict",
                     {"signature_name": "multi", "instances": [{"a": [1.0, 2.0], "b": 1}]})
        b = srv.post("/v1/models/mlp:predict", {"instances": [[0.0] * 16]})
        c = srv.post("/v1/models/mlp:predict", {"instances": [[0.0] * 15]})  # wrong shape: rejected before queueing
        (sa, ba, _), (sb, bb, _), (sc, bc, _) = await asyncio.gather(a, b, c)
        assert sa == 200 and ba["predictions"][0]["sum"] == 4.0
        assert sb == 200 and len(bb["predictions"][0]) == 10
        assert sc == 400 and "x: float [-1, 16]" in bc["error"]
        # With batching on, every input must have the same dim 0 (TF Serving's batching session).
        status, body, _ = await srv.post("/v1/models/tf2:predict", {"signature_name": "multi",
                                                                    "inputs": {"a": [[1.0, 2.0]], "b": [1, 2]}})
        assert (status, body) == (400, {"error": "Batching session Run() input tensors must have equal "
                                                 "0th-dimension size"})
    finally:
        await srv.close()


ROW_FLOATS = 16384  # one row = 64 KiB of float32: 16 rows fill the adaptive default's 1 MiB


@pytest.fixture(scope="module")
def wide_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Row sums of x [-1, 16384] after a 0.2 s sleep op, so requests queue while a batch runs."""
    root = tmp_path_factory.mktemp("wide")

    class Wide(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, ROW_FLOATS], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            with tf.control_dependencies([models._sleep_op(0.2)]):
                return {"y": tf.reduce_sum(x, axis=1)}

    m = Wide()
    tf.saved_model.save(m, str(root / "wide" / "1"), signatures={"serving_default": m.serve})
    return root


async def test_adaptive_default_closes_batches_at_1_mib(wide_root: Path) -> None:
    from aioserving import ServerConfig

    srv = await start_server(ServerConfig(model_name="wide", model_base_path=str(wide_root / "wide"),
                                          enable_batching=True))
    log = BatchLog()
    srv.server.scheduler.observer = log
    try:
        xs = np.random.default_rng(1).integers(-8, 8, size=(40, 1, ROW_FLOATS)).astype(np.float32)

        async def call(i: int) -> float:
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "wide"
            req.inputs["x"].CopyFrom(tf.make_tensor_proto(xs[i]))
            resp = await srv.predict_stub.Predict(req, timeout=60)
            return float(tf.make_ndarray(resp.outputs["y"])[0])

        sums = await asyncio.gather(*(call(i) for i in range(40)))
        assert sums == [float(x.sum()) for x in xs]  # small integers: exact in float32
        rows = [b[0] for b in log.batches]
        assert sum(rows) == 40
        # 40 requests of 64 KiB: without the byte cap the second batch would take all 39 waiting.
        assert max(rows) == 16, log.batches
    finally:
        await srv.close()
