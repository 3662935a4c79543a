"""The stack's floor: aiohttp / grpc.aio with a prebuilt reply; no server built on this stack can beat it.

``python bench/floor_server.py --host=127.0.0.1 --port=G --rest_api_port=R --model_config_file=F
  --body NAME=BODY.json [--body ...]``

One process, uvloop, an aiohttp app (REST) and a grpc.aio server (gRPC), both on 127.0.0.1. At
start-up each model in F is loaded with TF once and run once on its bench request body (the
``{"instances": ...}`` file tfwork writes into the run dir); the answers are kept as the REST reply
bytes and the gRPC ``PredictResponse``. After that TF is never called: ``POST
/v1/models/NAME:predict`` reads the body and sends the prebuilt bytes, ``PredictionService/Predict``
returns the prebuilt message. The replies are the correct ones for the bench's requests, so the
bench's answer checks pass; any other request gets the same reply, which is the point.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from typing import Any, Awaitable, Callable

import grpc
import numpy as np
import uvloop
from aiohttp import web
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

_MAX_MSG = 2**31 - 1


def _json_value(arr: np.ndarray) -> Any:
    """Python value with float32 written as its shortest repr (2.5, not 2.5000000001...)."""
    if arr.dtype == np.float32:
        flat = [float(str(v)) for v in arr.reshape(-1)]
        return np.asarray(flat, dtype=object).reshape(arr.shape).tolist()
    return arr.tolist()


def _precompute(config_file: str, bodies: dict[str, str]
                ) -> tuple[dict[str, bytes], dict[str, int], dict[str, predict_pb2.PredictResponse]]:
    """Run each model once on its body: (REST reply bytes, version, gRPC reply) per model name."""
    import tensorflow as tf  # only here; never called again once the replies exist
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    cfg = text_format.Parse(open(config_file).read(), model_server_config_pb2.ModelServerConfig())
    rest: dict[str, bytes] = {}
    versions: dict[str, int] = {}
    grpc_replies: dict[str, predict_pb2.PredictResponse] = {}
    for mc in cfg.model_config_list.config:
        version = max((int(d) for d in os.listdir(mc.base_path) if d.isdigit()))
        loaded = tf.saved_model.load(os.path.join(mc.base_path, str(version)))
        sig = loaded.signatures["serving_default"]
        (input_name, spec), = sig.structured_input_signature[1].items()  # the bench: one input
        with open(bodies[mc.name], "rb") as f:
            instances = json.loads(f.read())["instances"]
        out = {k: v.numpy() for k, v in sig(**{input_name: tf.constant(
            np.asarray(instances, dtype=spec.dtype.as_numpy_dtype))}).items()}
        # TF Serving's row format: one output -> a list of values, several -> a list of objects.
        if len(out) == 1:
            preds = _json_value(next(iter(out.values())))
        else:
            cols = {k: _json_value(v) for k, v in sorted(out.items())}
            preds = [{k: cols[k][i] for k in cols} for i in range(len(instances))]
        rest[mc.name] = json.dumps({"predictions": preds}).encode()
        reply = predict_pb2.PredictResponse()
        reply.model_spec.name = mc.name
        reply.model_spec.version.value = version
        reply.model_spec.signature_name = "serving_default"
        for k, v in out.items():
            reply.outputs[k].CopyFrom(tf.make_tensor_proto(v))
        grpc_replies[mc.name], versions[mc.name] = reply, version
    return rest, versions, grpc_replies


class _Predict(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, replies: dict[str, predict_pb2.PredictResponse]) -> None:
        self.replies = replies

    async def Predict(self, request: predict_pb2.PredictRequest,  # noqa: N802 - gRPC name
                      context: grpc.aio.ServicerContext) -> predict_pb2.PredictResponse:
        reply = self.replies.get(request.model_spec.name)
        if reply is None:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"Servable not found for request: Latest({request.model_spec.name})")
        return reply


def _app(rest: dict[str, bytes], versions: dict[str, int]) -> web.Application:
    app = web.Application(client_max_size=2**30)

    def predict(reply: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            await request.read()  # the body is read (it must be), never parsed
            return web.Response(body=reply, content_type="application/json")
        return handler

    def status(version: int) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = json.dumps({"model_version_status": [{
            "version": str(version), "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]}).encode()

        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")
        return handler

    for name, reply in rest.items():
        app.router.add_post(f"/v1/models/{name}:predict", predict(reply))
        app.router.add_get(f"/v1/models/{name}", status(versions[name]))  # bench.probe readiness
    return app


async def _serve(args: argparse.Namespace) -> None:
    bodies = dict(b.split("=", 1) for b in args.body)
    rest, versions, grpc_replies = _precompute(args.model_config_file, bodies)
    runner = web.AppRunner(_app(rest, versions), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.rest_api_port).start()
    server = grpc.aio.server(options=[("grpc.max_send_message_length", _MAX_MSG),
                                      ("grpc.max_receive_message_length", _MAX_MSG)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_Predict(grpc_replies), server)
    server.add_insecure_port(f"{args.host}:{args.port}")
    await server.start()
    print(f"floor: REST {args.host}:{args.rest_api_port}, gRPC {args.host}:{args.port}, "
          f"models {sorted(rest)}", flush=True)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, stop.set)
    await stop.wait()
    await asyncio.gather(server.stop(1.0), runner.cleanup())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True, help="gRPC port")
    ap.add_argument("--rest_api_port", type=int, required=True)
    ap.add_argument("--model_config_file", required=True)
    ap.add_argument("--body", action="append", default=[], metavar="NAME=PATH",
                    help="the bench's JSON request body for model NAME (one per model)")
    uvloop.run(_serve(ap.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
