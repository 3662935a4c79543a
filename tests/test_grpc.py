"""gRPC through the official tensorflow_serving.apis stubs (TCP and Unix socket)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from harness import Running

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _predict_request(name: str, x: list[float], **spec: object) -> predict_pb2.PredictRequest:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    for k, v in spec.items():
        if k == "version":
            req.model_spec.version.value = v  # type: ignore[assignment]
        else:
            setattr(req.model_spec, k, v)
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(x, np.float32)))
    return req


async def test_predict_tcp(srv: Running) -> None:
    resp = await srv.predict_stub.Predict(_predict_request("half_plus_two", [1.0, 2.0, 5.0]))
    assert tf.make_ndarray(resp.outputs["y"]).tolist() == [2.5, 3.0, 4.5]
    assert resp.model_spec.name == "half_plus_two"
    assert resp.model_spec.version.value == 2
    assert resp.model_spec.signature_name == "serving_default"


async def test_request_id_trailer_without_access_log(srv: Running) -> None:
    """No access log: a client's x-request-id is echoed; none is invented for nobody to read."""
    call = srv.predict_stub.Predict(_predict_request("half_plus_two", [1.0]),
                                    metadata=(("x-request-id", "client-7"),))
    await call
    assert dict(await call.trailing_metadata()) == {"x-request-id": "client-7"}
    call = srv.predict_stub.Predict(_predict_request("half_plus_two", [1.0]))
    await call
    assert "x-request-id" not in dict(await call.trailing_metadata())
    call = srv.predict_stub.Predict(_predict_request("nope", [1.0]), metadata=(("x-request-id", "client-8"),))
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await call
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert dict(ei.value.trailing_metadata()) == {"x-request-id": "client-8"}


async def test_predict_version_and_label(srv: Running) -> None:
    resp = await srv.predict_stub.Predict(_predict_request("half_plus_two", [2.0], version=1))
    assert resp.model_spec.version.value == 1
    resp = await srv.predict_stub.Predict(_predict_request("half_plus_two", [2.0], version_label="canary"))
    assert resp.model_spec.version.value == 2
    assert tf.make_ndarray(resp.outputs["y"]).tolist() == [3.0]


async def test_output_filter(srv: Running) -> None:
    req = _predict_request("tf2", [1.0, 3.0])
    resp = await srv.predict_stub.Predict(req)
    assert set(resp.outputs) == {"y", "z"}
    req.output_filter.append("z")
    resp = await srv.predict_stub.Predict(req)
    assert set(resp.outputs) == {"z"}
    assert tf.make_ndarray(resp.outputs["z"]).tolist() == [2.0, 4.0]


async def test_tensor_content_and_typed_fields(srv: Running) -> None:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "half_plus_two"
    req.inputs["x"].dtype = tf.float32.as_datatype_enum
    req.inputs["x"].tensor_shape.dim.add().size = 2
    req.inputs["x"].float_val.extend([2.0, 4.0])
    resp = await srv.predict_stub.Predict(req)
    assert tf.make_ndarray(resp.outputs["y"]).tolist() == [3.0, 4.0]
    req.inputs["x"].ClearField("float_val")
    req.inputs["x"].tensor_content = np.array([2.0, 4.0], np.float32).tobytes()
    resp = await srv.predict_stub.Predict(req)
    assert tf.make_ndarray(resp.outputs["y"]).tolist() == [3.0, 4.0]


@pytest.mark.parametrize("dt", ["float16", "float32", "float64", "int8", "int16", "int32", "int64",
                                "uint8", "uint16", "uint32", "uint64", "bool", "string"])
async def test_every_dtype_grpc(srv: Running, dt: str) -> None:
    arr = np.array([b"a", b"\x00\xff"], dtype=object) if dt == "string" else np.array([1, 0], dtype=dt)
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "dtypes"
    req.model_spec.signature_name = dt
    req.inputs[f"in_{dt}"].CopyFrom(tf.make_tensor_proto(arr))
    resp = await srv.predict_stub.Predict(req)
    out = tf.make_ndarray(resp.outputs[f"out_{dt}"])
    assert out.tolist() == arr.tolist()


async def test_metadata_full_signature_map(srv: Running) -> None:
    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "tf2"
    req.metadata_field.append("signature_def")
    resp = await srv.predict_stub.GetModelMetadata(req)
    sdm = get_model_metadata_pb2.SignatureDefMap()
    assert resp.metadata["signature_def"].Unpack(sdm)
    assert set(sdm.signature_def) == {"__saved_model_init_op", "serving_default", "multi", "classify", "regress"}
    assert resp.model_spec.version.value == 1


async def test_model_status(srv: Running) -> None:
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "half_plus_two"
    resp = await srv.model_stub.GetModelStatus(req)
    got = [(s.version, s.state, s.status.error_code) for s in resp.model_version_status]
    assert got == [(2, 30, 0), (1, 30, 0)]


GRPC_ERRORS = [
    (dict(name=""), grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
    (dict(name="nope"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    (dict(name="half_plus_two", version=7), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(half_plus_two, 7)"),
    (dict(name="half_plus_two", version_label="zzz"), grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: zzz"),
    (dict(name="half_plus_two", signature_name="nosig"), grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nosig" not found.'),
]


@pytest.mark.parametrize("spec,code,message", GRPC_ERRORS)
async def test_grpc_errors(srv: Running, spec: dict, code: grpc.StatusCode, message: str) -> None:
    name = spec.pop("name")
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await srv.predict_stub.Predict(_predict_request(name, [1.0], **spec))
    assert ei.value.code() == code
    assert ei.value.details() == message


async def test_grpc_wrong_inputs_and_filter(srv: Running) -> None:
    req = _predict_request("tf2", [1.0])
    req.inputs["extra"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await srv.predict_stub.Predict(req)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ei.value.details() == ("input size does not match signature: 2!=1 len({extra,x}) != len({x}). "
                                  "Sent extra: {extra}. Missing but required: {}.")
    req = _predict_request("tf2", [1.0])
    req.output_filter.append("nope")
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await srv.predict_stub.Predict(req)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ei.value.details().startswith("output tensor alias not found in signature: nope")
    req = _predict_request("tf2", [1.0])
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float64)))
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await srv.predict_stub.Predict(req)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ei.value.details().startswith("Expects arg[0] to be float but double is provided")


async def test_metadata_errors(srv: Running) -> None:
    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "tf2"
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await srv.predict_stub.GetModelMetadata(req)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    req.metadata_field.append("bogus")
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await srv.predict_stub.GetModelMetadata(req)
    assert ei.value.details() == "Metadata field bogus is not supported"


async def test_unix_socket(model_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aioserving import ServerConfig
    from harness import start_server

    sock = tmp_path / "grpc.sock"
    running = await start_server(ServerConfig(model_name="half_plus_two",
                                              model_base_path=str(model_root / "half_plus_two")),
                                 port=0, grpc_socket_path=str(sock))
    try:
        assert running.grpc_port is None
        async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
            resp = await stub.Predict(_predict_request("half_plus_two", [4.0]))
            assert tf.make_ndarray(resp.outputs["y"]).tolist() == [4.0]
            assert resp.model_spec.version.value == 2
    finally:
        await running.close()
