"""bench/floor_server.py (the stack's floor) serves the correct prebuilt answer on REST and gRPC."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import models

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(90)
async def test_floor_server_prebuilt_replies(tmp_path: Path) -> None:
    models.build_half_plus_two(tmp_path / "half_plus_two" / "1")
    cfg = tmp_path / "models.config"
    cfg.write_text('model_config_list { config { name: "half_plus_two" '
                   f'base_path: "{tmp_path / "half_plus_two"}" model_platform: "tensorflow" }} }}\n')
    body = b'{"instances": [1.0, 2.0, 5.0]}'
    (tmp_path / "body.json").write_bytes(body)
    rest, grpc_port = _free_port(), _free_port()
    log = open(tmp_path / "floor.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "floor_server.py"), "--host=127.0.0.1",
         f"--port={grpc_port}", f"--rest_api_port={rest}", f"--model_config_file={cfg}",
         f"--body=half_plus_two={tmp_path / 'body.json'}"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    url = f"http://127.0.0.1:{rest}/v1/models/half_plus_two"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while True:  # ready once the status answers (what bench.probe waits for)
                assert proc.poll() is None, (tmp_path / "floor.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "floor server not ready in 60 s"
                try:
                    async with session.get(url) as r:
                        if r.status == 200:
                            status = await r.json()
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.2)
            assert status["model_version_status"][0]["state"] == "AVAILABLE"
            async with session.post(url + ":predict", data=body,
                                    headers={"Content-Type": "application/json"}) as r:
                assert r.status == 200
                assert json.loads(await r.read()) == {"predictions": [2.5, 3.0, 4.5]}

        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "half_plus_two"
            req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0, 5.0], np.float32)))
            resp = await prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                req, timeout=10)
            assert tf.make_ndarray(resp.outputs["y"]).tolist() == [2.5, 3.0, 4.5]
            assert resp.model_spec.name == "half_plus_two"
            assert resp.model_spec.version.value == 1
    finally:
        proc.terminate()  # SIGTERM: a clean stop, exit 0
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
    assert rc == 0, (tmp_path / "floor.log").read_text()[-2000:]
