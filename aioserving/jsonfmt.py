"""TF Serving's REST JSON: request parsing, tensor decoding, reply encoding.

The rules, the error codes and the error texts are those of TF Serving's
``util/json_tensor.cc``.  Hot paths go through orjson and numpy; per-element
Python work happens only where TF's output cannot be produced otherwise
(floats that need TF's ``%g``/``%.9g`` rule, strings, error reporting).

Replies are byte-identical to TF Serving's RapidJSON PrettyWriter output
(layout rules in ``_json_layout``), with one deliberate difference: object
keys of multi-output replies are sorted (TF's protobuf-map order is
unspecified).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import orjson
from tensorflow.core.framework import types_pb2

from ._json_decode import bool_literals, decode_dense, decode_instances, decode_value, is_b64, match_dense
from ._json_examples import make_example
from ._json_layout import (HEAD_OUTPUTS, HEAD_PREDICTIONS, HEAD_RESULTS, INDENT, TAIL_ROWS, TAIL_VALUE,
                           b64_object, expand, line_template, pretty_template, single_line, split_rows)
from ._json_text import escape_bytes, fast_float_ok, float_tokens, parse_error, value_to_string
from .errors import ServingError
from .signature import DATATYPE_OF_NUMPY, NUMPY_DTYPES, TensorSpec, dtype_name

__all__ = [
    "PredictJson",
    "loads",
    "dumps",
    "parse_predict",
    "decode_inputs",
    "encode_predict",
    "parse_examples",
    "encode_classify",
    "encode_regress",
]

_OPT = orjson.OPT_SERIALIZE_NUMPY
# Output dtypes TF Serving's AddSingleValueAndAdvance can write (no half, no uint16).
_WRITABLE = {
    types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_INT16, types_pb2.DT_INT8,
    types_pb2.DT_UINT8, types_pb2.DT_STRING, types_pb2.DT_INT64, types_pb2.DT_BOOL, types_pb2.DT_UINT32,
    types_pb2.DT_UINT64,
}


# ------------------------------------------------------------------ parsing


def loads(body: bytes) -> Any:
    """Parse a request body; the top level must be a JSON object.

    orjson first; bodies it rejects (``NaN``/``Infinity`` tokens, invalid UTF-8
    inside strings) go through the stdlib parser.  Errors are TF Serving's
    ``JSON Parse error: <RapidJSON message> at offset: <n>`` (INVALID_ARGUMENT).
    """
    if not body:
        raise ServingError.invalid_argument("JSON Parse error: The document is empty")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = bytes(body).decode("utf-8", "surrogateescape")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise parse_error(e) from None
        except RecursionError:  # past ~1,000 nested levels (orjson's limit is 1,024)
            raise ServingError.invalid_argument("JSON Parse error: The document is nested too deeply.") from None
    if type(doc) is not dict:
        raise ServingError.invalid_argument(f"JSON Value: {value_to_string(doc)} Is not object")
    return doc


def dumps(obj: Any) -> bytes:
    """Serialize a general reply (errors, status) with orjson; numpy values allowed."""
    return orjson.dumps(obj, option=_OPT)


def _signature_name(doc: dict[str, Any]) -> str:
    sig = doc.get("signature_name", "")
    if type(sig) is not str:
        raise ServingError.invalid_argument(
            f"JSON Value: {value_to_string(doc)} not formatted correctly. "
            "'signature_name' key must be a string value.")
    return sig


@dataclass
class PredictJson:
    """A parsed ``:predict`` body.

    ``data`` is the value of ``instances`` (row format, ``columnar=False``) or
    ``inputs`` (columnar).  ``raw`` is the request body, used only to decide
    cheaply whether JSON booleans may hide in numeric lists; leave it empty
    when building one by hand (decoding is then always exact, just slower).
    ``dense`` holds the array's bytes when the body is one dense numeric array
    (``_json_decode.match_dense``); ``data`` is then parsed only if asked for.
    """

    signature_name: str
    columnar: bool
    _data: Any
    raw: bytes = field(default=b"", repr=False, compare=False)
    dense: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def data(self) -> Any:
        if self._data is None and self.dense is not None:
            self._data = parse_predict(self.raw, dense=False)._data
        return self._data


def parse_predict(body: bytes, *, dense: bool = True) -> PredictJson:
    """Parse a ``:predict`` body (FillPredictRequestFromJson's format checks)."""
    if dense and (m := match_dense(body)) is not None:
        signature_name, columnar, array = m
        return PredictJson(signature_name, columnar, None, body, array)
    doc = loads(body)
    sig = _signature_name(doc)
    if "instances" in doc:
        if "inputs" in doc:
            raise ServingError.invalid_argument(
                f"JSON Value: {value_to_string(doc)} Not formatted correctly expecting only one of "
                "'inputs' or 'instances' keys to exist ")
        instances = doc["instances"]
        if type(instances) is not list:
            raise ServingError.invalid_argument(
                f"JSON Value: {value_to_string(doc)} Excepting 'instances' to be an list/array")
        if not instances:
            raise ServingError.invalid_argument(
                f"JSON Value: {value_to_string(doc)} No values in 'instances' array")
        return PredictJson(sig, False, instances, body)
    if "inputs" in doc:
        return PredictJson(sig, True, doc["inputs"], body)
    raise ServingError.invalid_argument("Missing 'inputs' or 'instances' key")


def decode_inputs(req: PredictJson, inputs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray]:
    """Typed numpy inputs (keyed by alias) for the signature's ``inputs``.

    Row format stacks instances on a new batch dimension; columnar takes
    shapes as given.  Names in a columnar object that the signature lacks are
    ignored, as in TF Serving.
    """
    if not inputs:
        raise ServingError.invalid_argument(
            f"Failed to get input map for signature: {req.signature_name or 'DEFAULT'}")
    if req.dense is not None and (out := decode_dense(req.dense, inputs)) is not None:
        return out
    maybe_bools = bool_literals(req.raw) if req.raw else True
    if not req.columnar:
        return decode_instances(req.data, inputs, maybe_bools)
    val = req.data
    if type(val) is not dict or is_b64(val):
        if len(inputs) > 1:
            raise ServingError.invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map")
        (name, spec), = inputs.items()
        return {name: decode_value(val, spec, maybe_bools)}
    out = {}
    for name in sorted(inputs):
        if name not in val:
            raise ServingError.invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        out[name] = decode_value(val[name], inputs[name], maybe_bools)
    return out


def parse_examples(body: bytes) -> tuple[str, list[bytes]]:
    """Parse a ``:classify`` / ``:regress`` body into serialized ``tf.train.Example``s.

    Context features are merged the way TF Serving feeds an
    ExampleListWithContext: ``context_bytes + example_bytes`` (later wins).
    """
    doc = loads(body)
    sig = _signature_name(doc)
    context = make_example(doc["context"]).SerializeToString() if "context" in doc else b""
    if "examples" not in doc:
        raise ServingError.invalid_argument(
            f"JSON Value: {value_to_string(doc)} When method is classify, key 'examples' is expected "
            "and was not found")
    examples = doc["examples"]
    if type(examples) is not list:
        raise ServingError.invalid_argument(
            f"JSON Value: {value_to_string(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise ServingError.invalid_argument(f"JSON Value: {value_to_string(doc)} 'examples' value is an empty array")
    return sig, [context + make_example(ex).SerializeToString() for ex in examples]


# ----------------------------------------------------------------- encoding


def _string_token(v: Any, as_bytes: bool) -> str:
    """A string token, or for bytes outputs just the base64 text (wrapped by :func:`b64_object`)."""
    raw = v if isinstance(v, bytes) else str(v).encode("utf-8")
    if as_bytes:
        return base64.b64encode(raw).decode("ascii")
    return escape_bytes(raw).decode("utf-8", "surrogateescape")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class _Tensor:
    """One output prepared for writing: an orjson-ready array, or TF-formatted tokens."""

    def __init__(self, alias: str, arr: np.ndarray, dtype: int) -> None:
        if dtype not in _WRITABLE:
            raise ServingError.invalid_argument(
                f"Failed to write JSON value for tensor type: {dtype_name(dtype)}")
        self.shape = arr.shape
        self.array: np.ndarray | None = None
        self.tokens: list[str] = []
        self.b64 = False
        if arr.size == 0:
            self.array = np.zeros(arr.shape, dtype=np.int8)  # no values: just the brackets
        elif dtype == types_pb2.DT_STRING:
            self.b64 = alias.endswith("_bytes")
            self.tokens = [_string_token(v, self.b64) for v in arr.ravel().tolist()]
        else:
            np_dtype = NUMPY_DTYPES[dtype]
            a = np.asarray(arr, dtype=np_dtype)
            if not a.flags.c_contiguous:  # orjson needs C order (ascontiguousarray would drop 0-d)
                a = a.copy(order="C")
            if np_dtype.kind == "f" and not fast_float_ok(a.ravel()):
                self.tokens = float_tokens(a.ravel())
            else:
                self.array = a

    def leaves(self, depth: int) -> tuple[str, ...]:
        """The value tokens; ``depth`` containers are open around each (for b64 objects)."""
        if self.b64:
            return tuple(b64_object(t, depth) for t in self.tokens)
        return tuple(self.tokens)

    def columnar(self, level: int) -> bytes:
        """The whole tensor in default (multi-line) mode, ``level`` containers open outside."""
        ndim = len(self.shape)
        if self.array is not None:
            if ndim == 0:
                return orjson.dumps(self.array[()], option=_OPT)
            if self.array.size == 0:
                return pretty_template(self.shape, level).encode("ascii")
            return expand(orjson.dumps(self.array, option=_OPT), ndim, level)
        return _utf8(pretty_template(self.shape, level) % self.leaves(level + ndim))

    def rows(self, depth: int) -> list[bytes]:
        """One single-line text per batch row; ``depth`` containers are open around a row."""
        if self.array is not None:
            if self.array.size == 0:
                return [line_template(self.shape[1:]).encode("ascii")] * self.shape[0]
            return split_rows(single_line(orjson.dumps(self.array, option=_OPT)), len(self.shape))
        inner = self.shape[1:]
        tmpl = line_template(inner)
        tokens = self.leaves(depth + len(inner))
        k = math.prod(inner)
        return [_utf8(tmpl % tokens[i:i + k]) for i in range(0, len(tokens), k)]


def _dtype_of(alias: str, arr: np.ndarray, specs: Mapping[str, TensorSpec]) -> int:
    spec = specs.get(alias)
    if spec is not None:
        return spec.dtype
    return DATATYPE_OF_NUMPY.get(arr.dtype, types_pb2.DT_INVALID)


def _key(alias: str) -> bytes:
    return escape_bytes(alias.encode("utf-8", "surrogateescape"))


_ROW_OPEN = b"\n" + INDENT.encode() * 2 + b"{"
_ROW_KEY = b"\n" + INDENT.encode() * 3
_ROW_CLOSE = b"\n" + INDENT.encode() * 2 + b"}"
_OUT_KEY = b"\n" + INDENT.encode() * 2
_OUT_CLOSE = b"\n" + INDENT.encode() + b"}" + TAIL_VALUE


def encode_predict(outputs: Mapping[str, np.ndarray], columnar: bool,
                   output_specs: Mapping[str, TensorSpec]) -> bytes:
    """``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar) reply body.

    Byte for byte what TF Serving's MakeJsonFromTensors writes (RapidJSON
    PrettyWriter layout, see ``_json_layout``).  Numbers are written exactly
    as TF Serving writes them; DT_STRING outputs whose alias ends in
    ``_bytes`` become ``{"b64": ...}``.
    """
    if not outputs:
        raise ServingError.invalid_argument("Cannot convert empty tensor map to JSON")
    items = sorted(outputs.items())
    if columnar:
        tensors = [(a, _Tensor(a, arr, _dtype_of(a, arr, output_specs))) for a, arr in items]
        if len(tensors) == 1:
            return b"".join((HEAD_OUTPUTS, tensors[0][1].columnar(1), TAIL_VALUE))
        parts = [HEAD_OUTPUTS, b"{"]
        for i, (a, t) in enumerate(tensors):
            parts += (b"," if i else b"", _OUT_KEY, _key(a), b": ", t.columnar(2))
        parts.append(_OUT_CLOSE)
        return b"".join(parts)
    batch = 0
    for alias, arr in items:
        if arr.ndim == 0:
            raise ServingError.invalid_argument(f"Tensor name: {alias} has no shape information ")
        n = arr.shape[0]
        if n < 1:
            raise ServingError.invalid_argument(f"Tensor name: {alias} has invalid batch size: {n}")
        if batch and n != batch:
            raise ServingError.invalid_argument(
                f"Tensor name: {alias} has inconsistent batch size: {n} expecting: {batch}")
        batch = n
    if len(items) == 1:
        alias, arr = items[0]
        t = _Tensor(alias, arr, _dtype_of(alias, arr, output_specs))
        if t.array is not None:
            # "[r0, r1, ...]" is the predictions array up to its closing line.
            text = single_line(orjson.dumps(t.array, option=_OPT))
            return b"".join((HEAD_PREDICTIONS, memoryview(text)[:-1], TAIL_ROWS))
        return b"".join((HEAD_PREDICTIONS, b"[", b", ".join(t.rows(2)), TAIL_ROWS))
    # Several outputs: one object per row, on its own lines; values single-line.
    columns = [(_ROW_KEY + _key(a) + b": ", _Tensor(a, arr, _dtype_of(a, arr, output_specs)).rows(3))
               for a, arr in items]
    rows = [_ROW_OPEN + b",".join([key + vals[i] for key, vals in columns]) + _ROW_CLOSE for i in range(batch)]
    return b"".join((HEAD_PREDICTIONS, b"[", b",".join(rows), TAIL_ROWS))


def _float32_tokens(values: np.ndarray) -> list[str]:
    return float_tokens(np.ascontiguousarray(values, dtype=np.float32).ravel())


def encode_classify(classes: np.ndarray | None, scores: np.ndarray | None) -> bytes:
    """``{"results": [[[label, score], ...], ...]}`` (MakeJsonFromClassificationResult).

    Labels are ``""`` without a classes tensor and scores ``0.0`` without a
    scores tensor, as in TF Serving's ClassificationResult.  Each row is
    single-line; the results array closes on its own line.
    """
    ref = classes if classes is not None else scores
    if ref is None or ref.ndim == 0 or ref.shape[0] == 0:
        raise ServingError.invalid_argument("Cannot convert empty ClassificationResults to JSON")
    n = ref.shape[0]
    k = ref.reshape(n, -1).shape[1]
    labels = ([_string_token(v, False) for v in classes.ravel().tolist()]
              if classes is not None else ['""'] * (n * k))
    score_toks = _float32_tokens(scores) if scores is not None else ["0.0"] * (n * k)
    pairs = ["[" + lab + ", " + s + "]" for lab, s in zip(labels, score_toks)]
    rows = ["[" + ", ".join(pairs[i * k:(i + 1) * k]) + "]" for i in range(n)]
    return HEAD_RESULTS + _utf8("[" + ", ".join(rows)) + TAIL_ROWS


def encode_regress(values: np.ndarray) -> bytes:
    """``{"results": [v, ...]}`` (MakeJsonFromRegressionResult); values are float32.

    The array is single-line to its end: ``{\n    "results": [0.5, 1.0]\n}``.
    """
    if values.size == 0:
        raise ServingError.invalid_argument("Cannot convert empty RegressionResults to JSON")
    return HEAD_RESULTS + ("[" + ", ".join(_float32_tokens(values)) + "]").encode("ascii") + TAIL_VALUE
