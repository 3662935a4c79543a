"""Graceful shutdown: SIGTERM on the CLI, and ``Server.drain()`` for embedders."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import aiohttp
import grpc
import pytest
from tensorflow_serving.apis import predict_pb2

import models
from harness import start_server
from aioserving import ServerConfig

IN_FLIGHT = 32
SLOW_S = 3.0


@pytest.fixture(scope="module")
def slow_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("drain") / "slow"
    models.build_slow(base / "1", SLOW_S)
    return base


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.slow
async def test_sigterm_drains_in_flight_requests(slow_base: Path) -> None:
    from test_cli import Proc

    p = Proc("--port=-1", "--rest_api_port=-1", "--model_name=slow", f"--model_base_path={slow_base}",
             f"--num_inference_threads={IN_FLIGHT}", f"--tensorflow_inter_op_parallelism={IN_FLIGHT + 4}",
             "--drain_timeout_seconds=30")
    loop = asyncio.get_running_loop()
    sent = 0
    all_sent = asyncio.Event()

    async def on_sent(*_: object) -> None:
        nonlocal sent
        sent += 1
        if sent == IN_FLIGHT:
            all_sent.set()

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_sent)
    try:
        await loop.run_in_executor(None, p.wait_ready)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as s:
            async def one(i: int) -> tuple[int, object, float]:
                async with s.post(p.url("/v1/models/slow:predict"), data=f'{{"instances": [{i}.0]}}',
                                  timeout=aiohttp.ClientTimeout(total=60)) as r:
                    return r.status, await r.json(), loop.time()

            calls = [asyncio.create_task(one(i), name=f"drain-call-{i}") for i in range(IN_FLIGHT)]
            await asyncio.wait_for(all_sent.wait(), 30)
            await asyncio.sleep(0.5)  # let the last bodies reach their handlers (each takes SLOW_S)
            signalled = loop.time()
            p.p.send_signal(signal.SIGTERM)
            # New connections are refused while the 32 are still running.
            deadline = loop.time() + SLOW_S
            while not await loop.run_in_executor(None, _refused, p.rest_port):
                assert loop.time() < deadline, "REST listener still accepting during drain"
                await asyncio.sleep(0.05)
            refused_at = loop.time()
            assert not any(c.done() for c in calls), "requests finished before the listener closed"
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{p.grpc_port}")
            try:
                with pytest.raises(grpc.aio.AioRpcError) as ei:
                    req = predict_pb2.PredictRequest()
                    req.model_spec.name = "slow"
                    await channel.unary_unary("/tensorflow.serving.PredictionService/Predict")(
                        req.SerializeToString(), timeout=5)
                assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                await channel.close()
            results = await asyncio.gather(*calls)
        assert [(st, body) for st, body, _ in results] == [(200, {"predictions": [float(i)]}) for i in range(IN_FLIGHT)]
        last = max(t for _, _, t in results)
        print(f"\ndrain: listener closed {refused_at - signalled:.2f}s after SIGTERM; "
              f"all {IN_FLIGHT} requests done {last - signalled:.2f}s after SIGTERM")
    finally:
        rc = await loop.run_in_executor(None, p.stop)  # already exiting: just reaps it
    assert rc == 0, "".join(p.lines)
    assert "Shutdown complete" in "".join(p.lines)


async def test_embedded_drain(slow_base: Path) -> None:
    srv = await start_server(ServerConfig(model_name="slow", model_base_path=str(slow_base)),
                             num_inference_threads=8, enable_grpc_healthcheck_service=True)
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(srv.channel)
    try:
        assert (await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)).status == \
            health_pb2.HealthCheckResponse.SERVING
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "slow"
        req.inputs["x"].dtype = 1
        req.inputs["x"].tensor_shape.dim.add().size = 1
        req.inputs["x"].float_val.append(7.0)
        rest = [asyncio.create_task(srv.post("/v1/models/slow:predict", {"instances": [1.0]}), name=f"r{i}")
                for i in range(4)]

        async def call() -> predict_pb2.PredictResponse:
            return await srv.predict_stub.Predict(req, timeout=60)

        grpc_calls = [asyncio.create_task(call(), name=f"g{i}") for i in range(4)]

        async def all_in_flight() -> None:
            while srv.server.manager.inflight() < 8:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(all_in_flight(), 30)
        drain = asyncio.create_task(srv.server.drain(30), name="drain")
        await asyncio.sleep(0)
        status, body, _ = await srv.get("/v1/health/ready")
        assert (status, body["status"]) == (503, "draining")
        assert not drain.done()
        assert await drain is True
        assert srv.server.manager.inflight() == 0
        # Every reply was sent before drain returned; the clients (on this same loop) may still be
        # reading theirs, so give them a moment rather than asserting they already have.
        await asyncio.wait_for(asyncio.gather(*rest, *grpc_calls), 10)
        assert [t.result()[:2] for t in rest] == [(200, {"predictions": [1.0]})] * 4
        assert [t.result().outputs["y"].float_val[0] for t in grpc_calls] == [7.0] * 4
        assert srv.server.manager.inflight() == 0
    finally:
        await srv.close()
