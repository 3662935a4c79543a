"""The model builders produce exactly the signatures and values their docstrings promise."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import models  # noqa: E402  (tests/ is on sys.path: no __init__.py)

from aioserving import demo  # noqa: E402


def _example(**features: Any) -> bytes:
    feature = {}
    for key, value in features.items():
        values = np.atleast_1d(np.asarray(value, np.float32)).ravel().tolist()
        feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _examples(*examples: bytes) -> np.ndarray:
    # dtype=object: numpy's fixed-width "S" dtype would drop trailing NUL bytes.
    return np.array(examples, dtype=object)


def _signatures(path: Path) -> Any:
    return tf.saved_model.load(str(path), tags=["serve"]).signatures


def _signature_defs(path: Path) -> Any:
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    return sm.meta_graphs[0].signature_def


def _run(fn: Any, **inputs: Any) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def _shape(info: Any) -> list[int]:
    return [d.size for d in info.tensor_shape.dim]


def test_half_plus_two(tmp_path: Path) -> None:
    path = demo.build_half_plus_two(tmp_path / "1")
    defs = _signature_defs(path)
    assert set(defs) == {
        "serving_default",
        "classify_x_to_y",
        "regress_x_to_y",
        "regress_x_to_y2",
        "regress_x2_to_y3",
    }
    assert defs["serving_default"].method_name == "tensorflow/serving/predict"
    assert _shape(defs["serving_default"].inputs["x"]) == [-1]
    assert defs["classify_x_to_y"].method_name == "tensorflow/serving/classify"
    assert set(defs["classify_x_to_y"].outputs) == {"scores"}
    assert _shape(defs["classify_x_to_y"].outputs["scores"]) == [-1, 1]
    assert defs["regress_x_to_y"].method_name == "tensorflow/serving/regress"
    assert defs["regress_x2_to_y3"].method_name == "tensorflow/serving/regress"
    assert defs["regress_x2_to_y3"].inputs["inputs"].dtype == tf.float32.as_datatype_enum

    sigs = _signatures(path)
    out = _run(sigs["serving_default"], x=np.array([1.0, 2.0, 5.0], np.float32))
    assert out["y"].tolist() == [2.5, 3.0, 4.5]
    examples = _examples(_example(x=2.0), _example(x=4.0))
    assert _run(sigs["classify_x_to_y"], inputs=examples)["scores"].tolist() == [[3.0], [4.0]]
    assert _run(sigs["regress_x_to_y"], inputs=examples)["outputs"].tolist() == [[3.0], [4.0]]
    assert _run(sigs["regress_x_to_y2"], inputs=examples)["outputs"].tolist() == [[4.0], [5.0]]
    x2 = np.array([[2.0]], np.float32)
    assert _run(sigs["regress_x2_to_y3"], inputs=x2)["outputs"].tolist() == [[4.0]]


def test_half_plus_three(tmp_path: Path) -> None:
    sigs = _signatures(models.build_half_plus_two(tmp_path / "1", a=0.5, b=3.0))
    out = _run(sigs["serving_default"], x=np.array([1.0, 2.0, 5.0], np.float32))
    assert out["y"].tolist() == [3.5, 4.0, 5.5]


def test_mnist(tmp_path: Path) -> None:
    weights = demo.train_mnist()
    assert weights.test_accuracy > 0.9
    path = demo.build_mnist(tmp_path / "1", weights=weights)
    defs = _signature_defs(path)
    assert defs["serving_default"].method_name == "tensorflow/serving/classify"
    assert set(defs["serving_default"].outputs) == {"classes", "scores"}
    assert defs["predict_images"].method_name == "tensorflow/serving/predict"
    assert _shape(defs["predict_images"].inputs["images"]) == [-1, 784]
    assert _shape(defs["predict_images"].outputs["scores"]) == [-1, 10]

    _, _, x_test, y_test = demo.load_digits_mnist()
    sigs = _signatures(path)
    scores = _run(sigs["predict_images"], images=x_test)["scores"]
    assert scores.shape == (len(y_test), 10)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    assert (scores.argmax(axis=1) == y_test).mean() == pytest.approx(weights.test_accuracy)

    out = _run(sigs["serving_default"], inputs=_examples(*(_example(x=row) for row in x_test[:5])))
    assert out["classes"].shape == (5, 10)
    assert [int(c) for c in out["classes"][:, 0]] == scores[:5].argmax(axis=1).tolist()
    assert sorted(out["classes"][0].tolist()) == [str(i).encode() for i in range(10)]
    np.testing.assert_allclose(out["scores"][:, 0], scores[:5].max(axis=1), rtol=1e-6)
    assert (np.diff(out["scores"], axis=1) <= 0).all()


def test_build_demo_is_idempotent(tmp_path: Path) -> None:
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config_path = demo.build_demo(tmp_path / "demo")
    config = text_format.Parse(config_path.read_text(), model_server_config_pb2.ModelServerConfig())
    bases = {c.name: Path(c.base_path) for c in config.model_config_list.config}
    assert set(bases) == {"half_plus_two", "mnist"}
    for base in bases.values():
        assert base.is_absolute()
        assert sorted(p.name for p in base.iterdir()) == ["1", "2"]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "half_plus_two",
        "mnist",
        "models.config",
    ]
    stamp = (bases["mnist"] / "1" / "saved_model.pb").stat().st_mtime_ns
    assert demo.build_demo(tmp_path / "demo") == config_path
    assert (bases["mnist"] / "1" / "saved_model.pb").stat().st_mtime_ns == stamp


def test_tf2_two_signatures(tmp_path: Path) -> None:
    path = models.build_tf2_two_signatures(tmp_path / "1")
    defs = _signature_defs(path)
    assert {defs[k].method_name for k in ("serving_default", "multi", "classify", "regress")} == {
        "tensorflow/serving/predict"
    }
    assert set(defs["multi"].inputs) == {"a", "b"}
    assert set(defs["classify"].inputs) == {"examples"}
    sigs = _signatures(path)
    out = _run(sigs["serving_default"], x=np.array([1.0, 2.5], np.float32))
    assert out["y"].tolist() == [2.0, 5.0] and out["z"].tolist() == [2.0, 3.5]
    out = _run(
        sigs["multi"],
        a=np.array([[1.0, 2.0], [3.0, 4.0]], np.float32),
        b=np.array([10, -1], np.int64),
    )
    assert out["sum"].tolist() == [13.0, 6.0]
    assert out["label_bytes"].tolist() == [b"10", b"-1"]
    examples = _examples(_example(x=2.0), _example(x=0.0))
    out = _run(sigs["classify"], examples=examples)
    assert out["scores"].tolist() == [[3.0], [2.0]]
    assert out["classes"].tolist() == [[b"c"], [b"c"]]
    assert _run(sigs["regress"], examples=examples)["outputs"].tolist() == [3.0, 2.0]


def test_keras(tmp_path: Path) -> None:
    sigs = _signatures(models.build_keras(tmp_path / "1"))
    assert set(sigs) == {"serve", "serving_default"}
    for key in sigs:
        out = _run(sigs[key], x=np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32))
        assert out["output_0"].tolist() == [[4.5, 4.0], [0.5, -1.0]]


def test_all_dtypes(tmp_path: Path) -> None:
    path = models.build_all_dtypes(tmp_path / "1")
    defs = _signature_defs(path)
    sigs = _signatures(path)
    values = {
        "string": np.array([b"a", b"\xff\x00"], object),
        "bool": np.array([True, False]),
    }
    inputs = {}
    for name in models.DTYPES:
        value = values.get(name)
        if value is None:
            info = np.iinfo(name) if np.dtype(name).kind in "iu" else np.finfo(name)
            value = np.array([info.max, info.min], name)
        inputs[f"in_{name}"] = value
        assert set(defs[name].inputs) == {f"in_{name}"}
        assert defs[name].inputs[f"in_{name}"].dtype == tf.as_dtype(
            tf.string if name == "string" else name
        ).as_datatype_enum
        out = _run(sigs[name], **{f"in_{name}": value})
        expected = {f"out_{name}"} | ({"out_string_bytes"} if name == "string" else set())
        assert set(out) == expected
        for array in out.values():
            assert array.tolist() == value.tolist()
    out = _run(sigs["serving_default"], **inputs)
    assert len(out) == len(models.DTYPES) + 1
    assert out["out_uint64"].tolist() == [2**64 - 1, 0]
    assert out["out_string_bytes"].tolist() == [b"a", b"\xff\x00"]


def test_slow(tmp_path: Path) -> None:
    import time

    sigs = _signatures(models.build_slow(tmp_path / "1", 0.3))
    x = np.array([1.0, 2.0], np.float32)
    t0 = time.monotonic()
    assert _run(sigs["fast"], x=x)["y"].tolist() == [1.0, 2.0]
    assert time.monotonic() - t0 < 0.25
    t0 = time.monotonic()
    assert _run(sigs["serving_default"], x=x)["y"].tolist() == [1.0, 2.0]
    assert 0.3 <= time.monotonic() - t0 < 1.5


def test_slow_releases_gil(tmp_path: Path) -> None:
    import threading
    import time

    fn = _signatures(models.build_slow(tmp_path / "1", 0.4))["serving_default"]
    x = tf.constant([1.0])
    fn(x=x)  # first call traces/initialises
    done = threading.Event()
    thread = threading.Thread(target=lambda: (fn(x=x), done.set()))
    ticks = 0
    t0 = time.monotonic()
    thread.start()
    while not done.is_set():
        time.sleep(0.01)
        ticks += 1
    thread.join()
    assert time.monotonic() - t0 >= 0.4
    assert ticks >= 20  # the Python thread kept running while TF slept


def test_mlp(tmp_path: Path) -> None:
    sigs = _signatures(models.build_mlp(tmp_path / "1", in_dim=16))
    x = np.random.default_rng(1).random((3, 16), dtype=np.float32)
    w1, b1, w2, b2 = models.mlp_weights(16)
    expected = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    np.testing.assert_allclose(_run(sigs["serving_default"], x=x)["y"], expected, rtol=1e-5, atol=1e-5)


def test_cnn(tmp_path: Path) -> None:
    sigs = _signatures(models.build_cnn(tmp_path / "1"))
    x = np.random.default_rng(1).random((2, 64, 64, 3), dtype=np.float32)
    y = _run(sigs["serving_default"], x=x)["y"]
    assert y.shape == (2, 10)
    expected = models.cnn_forward(tf.constant(x), *models.cnn_weights()).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_cnn_large(tmp_path: Path) -> None:
    sigs = _signatures(models.build_cnn_large(tmp_path / "1"))
    x = np.random.default_rng(2).random((2, 64, 64, 3), dtype=np.float32)
    y = _run(sigs["serving_default"], x=x)["y"]
    w = models.cnn_large_weights()
    h = tf.constant(x)
    for i, stride in enumerate((1, 1, 2, 2)):
        h = tf.nn.relu(tf.nn.conv2d(h, w[2 * i], strides=stride, padding="SAME") + w[2 * i + 1])
    expected = (tf.matmul(tf.reduce_mean(h, axis=[1, 2]), w[-2]) + w[-1]).numpy()
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_multi_io_tf1(tmp_path: Path) -> None:
    path = models.build_multi_io_tf1(tmp_path / "1")
    assert _signature_defs(path)["serving_default"].method_name == "tensorflow/serving/predict"
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    b = np.array([[10.0, 20.0], [0.5, -1.0]], np.float32)
    out = _run(_signatures(path)["serving_default"], a=a, b=b)
    assert out["sum"].tolist() == [[11.0, 22.0], [3.5, 3.0]]
    assert out["prod"].tolist() == [[10.0, 40.0], [1.5, -4.0]]


def test_tflite(tmp_path: Path) -> None:
    path = models.build_tflite(tmp_path / "1")
    with warnings.catch_warnings():
        # tf.lite.Interpreter warns (UserWarning) that it moves to ai_edge_litert.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path / "model.tflite"))
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["x"], "outputs": ["y"]}
    }
    assert interpreter.get_input_details()[0]["shape_signature"].tolist() == [-1]
    runner = interpreter.get_signature_runner("serving_default")
    assert runner(x=np.array([1.0, 2.0, 5.0], np.float32))["y"].tolist() == [2.5, 3.0, 4.5]


def test_large(tmp_path: Path) -> None:
    path = models.build_large(tmp_path / "1", mb=8)
    size = sum(p.stat().st_size for p in (path / "variables").iterdir())
    assert 8 * 2**20 <= size < 9 * 2**20
    out = _run(_signatures(path)["serving_default"], x=np.array([[1.0, 2.0, 3.0, 4.0]], np.float32))
    assert out["y"].tolist() == [5.0]


def test_write_warmup(tmp_path: Path) -> None:
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, regression_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0, 2.0], tf.float32))
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.signature_name = "regress_x_to_y"
    path = models.write_warmup(tmp_path / "1", [request, regress])
    assert path == tmp_path / "1" / "assets.extra" / "tf_serving_warmup_requests"
    records = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(str(path))
    ]
    assert [r.WhichOneof("log_type") for r in records] == ["predict_log", "regress_log"]
    assert records[0].predict_log.request == request
    assert records[1].regress_log.request == regress
