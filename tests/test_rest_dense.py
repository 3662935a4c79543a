"""REST bodies that are one dense numeric array take a byte-level decoding path
(``_json_decode.decode_dense``); through a real server its results equal gRPC's for
the same tensor, and every body it declines gets TF Serving's usual answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from aioserving import jsonfmt
from harness import Running

pytestmark = pytest.mark.asyncio(loop_scope="session")

X = (np.arange(300, dtype=np.float32).reshape(100, 3) - 150) / 7  # 100 instances: 101 lists


async def _grpc(srv: Running, x: np.ndarray) -> np.ndarray:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "keras"
    req.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    resp = await srv.predict_stub.Predict(req)
    return tf.make_ndarray(resp.outputs["output_0"])


@pytest.mark.parametrize("key", ["instances", "inputs"])
async def test_dense_body_equals_grpc(srv: Running, key: str) -> None:
    body = json.dumps({key: X.tolist()}).encode()
    assert jsonfmt.parse_predict(body).dense is not None  # the body really takes the dense path
    status, doc, _ = await srv.post("/v1/models/keras:predict", data=body)
    assert status == 200
    got = np.array(doc["predictions" if key == "instances" else "outputs"], np.float32)
    np.testing.assert_array_equal(got, await _grpc(srv, X))


async def test_dense_body_errors_are_tf_serving_s(srv: Running) -> None:
    rows = X.tolist()
    rows[0].append(rows[1].pop())  # ragged, same value count
    status, doc, _ = await srv.post("/v1/models/keras:predict", {"instances": rows})
    assert status == 400
    assert doc == {"error": "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
                            "Expecting tensor size: 4 but got: 2 Signature inputs: x: float [-1, 3]"}
    status, doc, _ = await srv.post("/v1/models/keras:predict", {"instances": X[:, :2].tolist()})
    assert status == 400
    assert doc["error"].startswith("Input 'x' has shape [100,2] which is incompatible with the signature's [-1,3].")
    body = json.dumps({"instances": X.tolist()}).encode().replace(b"]", b"", 1)
    status, doc, _ = await srv.post("/v1/models/keras:predict", data=body)
    assert status == 400 and doc["error"].startswith("JSON Parse error: ")
    status, doc, _ = await srv.post("/v1/models/keras:predict", {"instances": X[:3].tolist()})
    assert status == 200 and len(doc["predictions"]) == 3  # and the server keeps serving


async def test_large_dense_body_equals_grpc(srv: Running) -> None:
    """Bodies over 256 KiB are parsed and decoded in the executor: same answer as gRPC."""
    x = np.tile(X, (100, 1))  # 10,000 instances, ~380 KB of JSON
    body = json.dumps({"instances": x.tolist()}).encode()
    assert len(body) > 256 * 1024 and jsonfmt.parse_predict(body).dense is not None
    status, doc, _ = await srv.post("/v1/models/keras:predict", data=body)
    assert status == 200
    np.testing.assert_array_equal(np.array(doc["predictions"], np.float32), await _grpc(srv, x))


async def test_large_body_errors_are_tf_serving_s(srv: Running) -> None:
    """Decoding in the executor keeps the messages, the signature suffix included."""
    rows = np.tile(X, (100, 1)).tolist()
    rows[0].append(rows[1].pop())  # ragged, same value count
    body = json.dumps({"instances": rows}).encode()
    assert len(body) > 256 * 1024 and jsonfmt.parse_predict(body).dense is not None
    status, doc, _ = await srv.post("/v1/models/keras:predict", data=body)
    assert status == 400
    assert doc == {"error": "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
                            "Expecting tensor size: 4 but got: 2 Signature inputs: x: float [-1, 3]"}
    body = json.dumps({"instances": np.tile(X, (100, 1)).tolist()}).encode().replace(b"]", b"", 1)
    status, doc, _ = await srv.post("/v1/models/keras:predict", data=body)
    assert status == 400 and doc["error"].startswith("JSON Parse error: ")
