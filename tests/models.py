"""SavedModel builders for the test suite (and benchmarks).

Each ``build_xxx(path, ...)`` writes one model version at ``path`` and returns ``path``; the
session fixtures call them once into a temp dir. Signatures (``[-1]`` = any batch size)::

    build_half_plus_two(path, a=0.5, b=2.0)   TF1 builder; see aioserving.demo for all signatures
        serving_default   x float [-1] -> y float [-1] = a*x + b
        classify_x_to_y   inputs string [-1] (tf.Example "x") -> scores float [-1,1] = a*x + b
        regress_x_to_y    inputs string [-1] -> outputs float [-1,1] = a*x + b
        regress_x_to_y2   inputs string [-1] -> outputs float [-1,1] = a*x + b + 1
        regress_x2_to_y3  inputs float [-1,1] -> outputs float [-1,1] = a*x2 + b + 1
    build_tf2_two_signatures(path)            TF2, every method_name tensorflow/serving/predict
        serving_default   x float [-1] -> y = 2x, z = x + 1
        multi             a float [-1,2], b int64 [-1] -> sum float [-1] = a.sum(1) + b,
                          label_bytes string [-1] = str(b)
        classify          examples string [-1] (tf.Example "x" float [1]) ->
                          scores float [-1,1] = 0.5x + 2, classes string [-1,1] = b"c"
        regress           examples string [-1] -> outputs float [-1] = 0.5x + 2
    build_keras(path)                         Keras 3 ``model.export`` (ExportArchive)
        serving_default and serve (identical)  x float [-1,3] -> output_0 float [-1,2]
        output_0 = x @ [[1,0],[0,1],[1,1]] + [0.5,-1] = [x0 + x2 + 0.5, x1 + x2 - 1]
    build_all_dtypes(path)                    TF2; DTYPES below
        <dtype> (one per dtype)  in_<dtype> [-1] -> out_<dtype> [-1] (identity)
        string also has out_string_bytes (identity) for b64 output
        serving_default          every in_<dtype> -> every out_<dtype> + out_string_bytes
    build_slow(path, seconds)                 TF2
        serving_default   x float [-1] -> y float [-1] = x, after sleeping ``seconds``
        fast              x float [-1] -> y float [-1] = x, at once
    build_mlp(path, in_dim=784)               TF2  serving_default x float [-1,in_dim] -> y [-1,10]
    build_cnn(path)                           TF2  serving_default x float [-1,64,64,3] -> y [-1,10]
        (weights from mlp_weights()/cnn_weights(): fixed-seed normal, exactly reproducible)
    build_multi_io_tf1(path)                  TF1 builder
        serving_default   a float [-1,2], b float [-1,2] -> sum = a + b, prod = a * b
    build_tflite(path)                        ``path/model.tflite`` (no SavedModel)
        serving_default   x float, shape [1] with shape_signature [-1] (resizable) -> y = 0.5x + 2
    build_large(path, mb)                     TF2, a float32 variable of ``mb`` MiB (all 0.5)
        serving_default   x float [-1,4] -> y float [-1] = 0.5 * x.sum(1)
    write_warmup(version_dir, requests)       assets.extra/tf_serving_warmup_requests
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aioserving.demo import build_half_plus_two

__all__ = [
    "DTYPES",
    "build_all_dtypes",
    "build_cnn",
    "build_cnn_large",
    "build_half_plus_two",
    "build_keras",
    "build_large",
    "build_mlp",
    "build_multi_io_tf1",
    "build_slow",
    "build_tf2_two_signatures",
    "build_tflite",
    "cnn_weights",
    "mlp_weights",
    "write_warmup",
]

#: Every dtype TF Serving carries over the wire (TensorProto/JSON), by numpy/TF name.
DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "string",
)

KERAS_KERNEL = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
KERAS_BIAS = [0.5, -1.0]

PathLike = str | os.PathLike[str]


def _save(module: Any, path: PathLike, signatures: dict[str, Any]) -> Path:
    import tensorflow as tf

    tf.saved_model.save(module, str(path), signatures=signatures)
    return Path(path)


def build_tf2_two_signatures(path: PathLike) -> Path:
    import tensorflow as tf

    def _parse_x(examples: Any) -> Any:
        return tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

    class TwoSignatures(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": 2.0 * x, "z": x + 1.0}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="a"),
                tf.TensorSpec([None], tf.int64, name="b"),
            ]
        )
        def multi(self, a: Any, b: Any) -> dict[str, Any]:
            return {
                "sum": tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32),
                "label_bytes": tf.strings.as_string(b),
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def classify(self, examples: Any) -> dict[str, Any]:
            scores = 0.5 * _parse_x(examples) + 2.0
            return {"scores": scores, "classes": tf.fill(tf.shape(scores), "c")}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def regress(self, examples: Any) -> dict[str, Any]:
            return {"outputs": tf.reshape(0.5 * _parse_x(examples) + 2.0, [-1])}

    m = TwoSignatures()
    return _save(
        m,
        path,
        {"serving_default": m.serve, "multi": m.multi, "classify": m.classify, "regress": m.regress},
    )


def build_keras(path: PathLike) -> Path:
    """Keras 3 Dense(2) on x [-1,3], exported with ``model.export`` (signatures ``serve`` and
    ``serving_default``, input ``x``, output ``output_0``)."""
    import keras
    import numpy as np

    inputs = keras.Input(shape=(3,), name="x", dtype="float32")
    dense = keras.layers.Dense(2, name="dense")
    model = keras.Model(inputs, dense(inputs), name="keras_dense")
    dense.set_weights([np.array(KERAS_KERNEL, np.float32), np.array(KERAS_BIAS, np.float32)])
    model.export(str(path), format="tf_saved_model", verbose=False)
    return Path(path)


def _tf_dtype(name: str) -> Any:
    import tensorflow as tf

    return tf.string if name == "string" else tf.as_dtype(name)


def build_all_dtypes(path: PathLike) -> Path:
    import tensorflow as tf

    def outputs(name: str, x: Any) -> dict[str, Any]:
        out = {f"out_{name}": tf.identity(x)}
        if name == "string":
            out["out_string_bytes"] = tf.identity(x)
        return out

    def one(name: str) -> Any:
        @tf.function(input_signature=[tf.TensorSpec([None], _tf_dtype(name), name=f"in_{name}")])
        def identity(x: Any) -> dict[str, Any]:
            return outputs(name, x)

        return identity

    @tf.function(input_signature=[tf.TensorSpec([None], _tf_dtype(n), name=f"in_{n}") for n in DTYPES])
    def every(*xs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, x in zip(DTYPES, xs):
            out.update(outputs(name, x))
        return out

    m = tf.Module()
    signatures = {name: one(name) for name in DTYPES}
    signatures["serving_default"] = every
    return _save(m, path, signatures)


def _sleep_op(seconds: float) -> Any:
    """A graph op that sleeps ``seconds`` without holding the GIL or burning a core."""
    import tensorflow as tf

    try:
        from tensorflow.python.data.experimental.ops import testing
    except ImportError:  # pragma: no cover - private module moved: busy-wait instead
        start = tf.timestamp()
        return tf.while_loop(
            lambda t: t - start < seconds, lambda t: [tf.timestamp()], [start], back_prop=False
        )
    # take(1) so iteration stops after the one (slept-for) element instead of sleeping again
    # while looking for the end of the dataset.
    ds = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    return ds.apply(testing.sleep(int(seconds * 1e6))).take(1).get_single_element()


def build_slow(path: PathLike, seconds: float) -> Path:
    import tensorflow as tf

    spec = tf.TensorSpec([None], tf.float32, name="x")

    @tf.function(input_signature=[spec])
    def slow(x: Any) -> dict[str, Any]:
        with tf.control_dependencies([_sleep_op(seconds)]):
            return {"y": tf.identity(x)}

    @tf.function(input_signature=[spec])
    def fast(x: Any) -> dict[str, Any]:
        return {"y": tf.identity(x)}

    return _save(tf.Module(), path, {"serving_default": slow, "fast": fast})


def mlp_weights(in_dim: int = 784, hidden: int = 64, out_dim: int = 10, seed: int = 0) -> list[Any]:
    """``[w1, b1, w2, b2]`` of :func:`build_mlp`: ``y = relu(x @ w1 + b1) @ w2 + b2``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((in_dim, hidden)) / np.sqrt(in_dim)).astype(np.float32),
        (0.1 * rng.standard_normal(hidden)).astype(np.float32),
        (rng.standard_normal((hidden, out_dim)) / np.sqrt(hidden)).astype(np.float32),
        (0.1 * rng.standard_normal(out_dim)).astype(np.float32),
    ]


def build_mlp(path: PathLike, in_dim: int = 784, *, hidden: int = 64, seed: int = 0) -> Path:
    import tensorflow as tf

    m = tf.Module()
    m.w1, m.b1, m.w2, m.b2 = (tf.Variable(w) for w in mlp_weights(in_dim, hidden, 10, seed))

    @tf.function(input_signature=[tf.TensorSpec([None, in_dim], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        h = tf.nn.relu(tf.matmul(x, m.w1) + m.b1)
        return {"y": tf.matmul(h, m.w2) + m.b2}

    return _save(m, path, {"serving_default": serve})


def cnn_weights(seed: int = 0) -> list[Any]:
    """``[k1, c1, k2, c2, w, b]`` of :func:`build_cnn` (see :func:`cnn_forward`)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, ...], fan_in: int) -> Any:
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    return [
        normal((3, 3, 3, 16), 27),
        np.zeros(16, np.float32) + 0.01,
        normal((3, 3, 16, 32), 144),
        np.zeros(32, np.float32) + 0.01,
        normal((32, 10), 32),
        np.zeros(10, np.float32),
    ]


def cnn_forward(x: Any, k1: Any, c1: Any, k2: Any, c2: Any, w: Any, b: Any) -> Any:
    """conv3x3/2 (16) + relu, conv3x3/2 (32) + relu, global mean pool, dense 10 (TF ops)."""
    import tensorflow as tf

    h = tf.nn.relu(tf.nn.conv2d(x, k1, strides=2, padding="SAME") + c1)
    h = tf.nn.relu(tf.nn.conv2d(h, k2, strides=2, padding="SAME") + c2)
    return tf.matmul(tf.reduce_mean(h, axis=[1, 2]), w) + b


def build_cnn(path: PathLike, *, seed: int = 0) -> Path:
    import tensorflow as tf

    m = tf.Module()
    m.params = [tf.Variable(w) for w in cnn_weights(seed)]

    @tf.function(input_signature=[tf.TensorSpec([None, 64, 64, 3], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        return {"y": cnn_forward(x, *m.params)}

    return _save(m, path, {"serving_default": serve})


_CNN_LARGE = ((3, 32, 1), (32, 64, 1), (64, 128, 2), (128, 256, 2))  # (in, out, stride) of each 3x3 conv


def cnn_large_weights(seed: int = 0) -> list[Any]:
    """Kernels and biases of :func:`build_cnn_large`, then the dense layer's ``w, b``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for cin, cout, _stride in _CNN_LARGE:
        out.append((rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32))
        out.append(np.full(cout, 0.01, np.float32))
    out.append((rng.standard_normal((_CNN_LARGE[-1][1], 10)) / np.sqrt(_CNN_LARGE[-1][1])).astype(np.float32))
    out.append(np.zeros(10, np.float32))
    return out


def build_cnn_large(path: PathLike, *, seed: int = 0) -> Path:
    """The benchmark's CNN: about 460 MFLOP per 64x64x3 image (3x3 convs 32/s1, 64/s1, 128/s2,
    256/s2, mean pool, dense 10), sized like the brief's reference CNN: on this 2-core machine
    ~205 images/s in-process at batch 1 and ~340-390 at batch 8-64 (brief: 210 and 325).

    serving_default  x float [-1,64,64,3] -> y float [-1,10]
    """
    import tensorflow as tf

    m = tf.Module()
    m.params = [tf.Variable(w) for w in cnn_large_weights(seed)]

    @tf.function(input_signature=[tf.TensorSpec([None, 64, 64, 3], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        h = x
        for i, (_cin, _cout, stride) in enumerate(_CNN_LARGE):
            h = tf.nn.relu(tf.nn.conv2d(h, m.params[2 * i], strides=stride, padding="SAME") + m.params[2 * i + 1])
        return {"y": tf.matmul(tf.reduce_mean(h, axis=[1, 2]), m.params[-2]) + m.params[-1]}

    return _save(m, path, {"serving_default": serve})


def build_multi_io_tf1(path: PathLike) -> Path:
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as sess:
        a = v1.placeholder(tf.float32, [None, 2], name="a")
        b = v1.placeholder(tf.float32, [None, 2], name="b")
        outputs = {"sum": tf.add(a, b, name="sum"), "prod": tf.multiply(a, b, name="prod")}
        signature = v1.saved_model.signature_def_utils.predict_signature_def({"a": a, "b": b}, outputs)
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(
            sess, ["serve"], signature_def_map={"serving_default": signature}
        )
        builder.save()
    return Path(path)


def build_tflite(path: PathLike) -> Path:
    """Write ``path/model.tflite``: signature ``serving_default``, x float -> y = 0.5x + 2.

    The input's shape is [1] with shape_signature [-1]: the interpreter (or a signature runner)
    resizes it to the batch it is given.
    """
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": 0.5 * x + 2.0}

    m = HalfPlusTwo()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([m.serve.get_concrete_function()], m)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").write_bytes(converter.convert())
    return out


def build_large(path: PathLike, mb: int) -> Path:
    import tensorflow as tf

    columns = max(1, mb * 2**20 // (4 * 4))  # [4, columns] float32 = mb MiB
    m = tf.Module()
    m.w = tf.Variable(tf.fill([4, columns], tf.constant(0.5, tf.float32)), name="w")

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        return {"y": tf.linalg.matvec(x, m.w[:, 0])}

    return _save(m, path, {"serving_default": serve})


def write_warmup(version_dir: PathLike, requests: Iterable[Any]) -> Path:
    """Write ``assets.extra/tf_serving_warmup_requests`` under ``version_dir``.

    ``requests`` are PredictRequest, ClassificationRequest, RegressionRequest,
    MultiInferenceRequest or ready-made PredictionLog messages. Returns the file's path.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import (
        classification_pb2,
        inference_pb2,
        predict_pb2,
        prediction_log_pb2,
        regression_pb2,
    )

    field_by_type = {
        predict_pb2.PredictRequest: "predict_log",
        classification_pb2.ClassificationRequest: "classify_log",
        regression_pb2.RegressionRequest: "regress_log",
        inference_pb2.MultiInferenceRequest: "multi_inference_log",
    }
    extra = Path(version_dir) / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    out = extra / "tf_serving_warmup_requests"
    with tf.io.TFRecordWriter(str(out)) as writer:
        for request in requests:
            if isinstance(request, prediction_log_pb2.PredictionLog):
                log = request
            else:
                log = prediction_log_pb2.PredictionLog()
                getattr(log, field_by_type[type(request)]).request.CopyFrom(request)
            writer.write(log.SerializeToString())
    return out
