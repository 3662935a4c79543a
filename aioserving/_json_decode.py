"""JSON values → numpy arrays, with TF Serving's exact rules and messages.

Two paths produce the same result.  The fast path hands nested lists straight
to ``np.array`` and accepts the result only after cheap vectorised checks.  The
exact path is a line-by-line replica of ``FillTensorProto`` /
``AddValueToTensor`` in TF Serving's ``util/json_tensor.cc``; it runs whenever
the fast path declines and is the only source of error messages.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import threading
from typing import Any, Mapping

import numpy as np
import simdjson
from tensorflow.core.framework import types_pb2

from ._json_text import text_bytes, type_string, value_to_string
from .errors import Code, ServingError
from .signature import TensorSpec, dtype_name

__all__ = ["decode_value", "decode_instances", "is_b64", "b64_decode", "bool_literals", "match_dense", "decode_dense"]

_FLOAT_INT_MAX = (1 << 24) - 1
_DOUBLE_INT_MAX = (1 << 53) - 1
_FLT_MAX = 3.4028234663852886e38
_INT32 = (-(2**31), 2**31 - 1)
_SMALL_INTS = {types_pb2.DT_INT32, types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8}
_INT_RANGE = {
    **{d: _INT32 for d in _SMALL_INTS},
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_FLOATS = {types_pb2.DT_FLOAT: ("float", _FLOAT_INT_MAX), types_pb2.DT_DOUBLE: ("double", _DOUBLE_INT_MAX)}
_FAST_TYPES = {*_FLOATS, *_INT_RANGE, types_pb2.DT_BOOL}


def is_b64(val: Any) -> bool:
    """``{"b64": "<string>"}`` and nothing else (IsValBase64Object)."""
    return type(val) is dict and len(val) == 1 and type(val.get("b64")) is str


def b64_decode(val: Any) -> bytes:
    """Decode a b64 object, with TF Serving's errors."""
    if not is_b64(val):
        raise ServingError.invalid_argument(
            f"JSON Value: {value_to_string(val)} not formatted correctly for base64 data")
    text = val["b64"]
    try:
        raw = text.encode("ascii")
        if len(raw) % 4:
            raw += b"=" * (-len(raw) % 4)  # absl accepts unpadded input
        return base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ServingError.invalid_argument("Unable to base64 decode") from None


def bool_literals(body: bytes) -> bool:
    """Whether ``true``/``false`` may occur in the body (a memchr scan, not a parse).

    JSON bools mixed into numeric lists are coerced silently by ``np.array``;
    only bodies that may contain them take the exact path for numeric inputs.
    """
    for ch, word, back in ((b"u", b"true", 2), (b"l", b"false", 2)):
        i = body.find(ch)
        seen = 0
        while i != -1:
            if body[i - back:i - back + len(word)] == word:
                return True
            seen += 1
            if seen > 64:  # a text-heavy body: not worth scanning, be exact instead
                return True
            i = body.find(ch, i + 1)
    return False


# ---------------------------------------------------------------- exact path


def _type_error(val: Any, dtype: int) -> ServingError:
    return ServingError.invalid_argument(
        f"JSON Value: {value_to_string(val)} Type: {type_string(val)} "
        f"is not of expected type: {dtype_name(dtype)}")


def _lossy(val: Any, target: str) -> ServingError:
    return ServingError.invalid_argument(
        f"Cannot convert JSON value: {value_to_string(val)} to {target} without loss of precision.")


def _is_lossless(val: int | float, int_max: int, fmax: float) -> bool:
    if isinstance(val, int) and -(2**63) <= val < 2**64:
        return abs(val) <= int_max
    f = float(val)
    if f != f or f in (float("inf"), float("-inf")):
        return True
    return -fmax <= f <= fmax


def _scalar(val: Any, dtype: int) -> Any:
    """AddValueToTensor for one leaf value (not an object)."""
    if dtype in _FLOATS:
        if type(val) not in (int, float):
            raise _type_error(val, dtype)
        target, int_max = _FLOATS[dtype]
        if not _is_lossless(val, int_max, _FLT_MAX if target == "float" else float("inf")):
            raise _lossy(val, target)
        return float(val)
    rng = _INT_RANGE.get(dtype)
    if rng is not None:
        if type(val) is not int or not rng[0] <= val <= rng[1]:
            raise _type_error(val, dtype)
        return val
    if dtype == types_pb2.DT_BOOL:
        if type(val) is not bool:
            raise _type_error(val, dtype)
        return val
    if dtype == types_pb2.DT_STRING:
        if type(val) is not str:
            raise _type_error(val, dtype)
        return text_bytes(val)
    raise ServingError(Code.UNIMPLEMENTED,
                       f"Conversion of JSON Value: {value_to_string(val)} to type: {dtype_name(dtype)}")


def _dense_shape(val: Any) -> list[int]:
    shape: list[int] = []
    while type(val) is list:
        shape.append(len(val))
        if not val:
            break
        val = val[0]
    return shape


def _fill(val: Any, level: int, shape: list[int], dtype: int, out: list[Any]) -> None:
    rank = len(shape)
    if type(val) is not list:
        if level != rank:
            raise ServingError.invalid_argument(
                f"JSON Value: {value_to_string(val)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}")
        if type(val) is dict:
            if dtype != types_pb2.DT_STRING:
                raise _type_error(val, dtype)
            out.append(b64_decode(val))
        else:
            out.append(_scalar(val, dtype))
        return
    if level >= rank:
        raise ServingError.invalid_argument(
            f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(val) != shape[level]:
        raise ServingError.invalid_argument(
            f"Encountered list at unexpected size: {len(val)} at level: {level} "
            f"expected size: {shape[level]}")
    for v in val:
        _fill(v, level + 1, shape, dtype, out)


def _exact(val: Any, spec: TensorSpec) -> tuple[list[Any], list[int]]:
    shape = _dense_shape(val)
    out: list[Any] = []
    _fill(val, 0, shape, spec.dtype, out)
    return out, shape


def _to_array(values: list[Any], shape: list[int], spec: TensorSpec) -> np.ndarray:
    np_dtype = spec.np_dtype
    if np_dtype is None:
        # An empty list of an unsupported type gets here without any value check.
        raise ServingError.unimplemented(f"Conversion of JSON to type: {dtype_name(spec.dtype)}")
    if np_dtype == object:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr.reshape(shape)
    if np_dtype.kind in "iu" and spec.dtype in _SMALL_INTS:
        # int_val holds int32; narrower types are a C cast (wraps), as in TF.
        return np.array(values, dtype=np.int64).astype(np_dtype).reshape(shape)
    return np.array(values, dtype=np_dtype).reshape(shape)


# ----------------------------------------------------------------- fast path


def _fast(val: Any, spec: TensorSpec, maybe_bools: bool) -> np.ndarray | None:
    """np.array(val) typed for ``spec`` when provably identical to the exact path."""
    dtype = spec.dtype
    if dtype not in _FAST_TYPES:
        return None
    if maybe_bools and dtype != types_pb2.DT_BOOL:
        return None
    try:
        arr = np.array(val)
    except (ValueError, TypeError, OverflowError):
        return None
    kind = arr.dtype.kind
    if dtype == types_pb2.DT_BOOL:
        return arr if kind == "b" else None
    if arr.size == 0 or kind not in "iuf":
        return None
    if dtype in _FLOATS:
        if kind == "f":
            return _small_floats(arr, spec)
        if kind == "u" or max(-int(arr.min()), int(arr.max())) > _FLOATS[dtype][1]:
            return None
        return arr.astype(spec.np_dtype)
    lo, hi = _INT_RANGE[dtype]
    if kind == "f" or int(arr.min()) < lo or int(arr.max()) > hi:
        return None
    return arr.astype(spec.np_dtype, copy=False)


def _small_floats(arr: np.ndarray, spec: TensorSpec) -> np.ndarray | None:
    """A float64 ``arr`` as the float signature's type, or None when a value needs the exact path.

    Anything large (maybe a lossy int, maybe out of range) goes exact; NaN and infinities are
    lossless and stay.
    """
    mag = np.abs(arr)
    big = mag > _FLOATS[spec.dtype][1]
    if big.any() and not np.isinf(mag[big]).all():
        return None
    return arr.astype(spec.np_dtype)


def decode_value(val: Any, spec: TensorSpec, maybe_bools: bool) -> np.ndarray:
    """One tensor from a JSON value (columnar form): TF's FillTensorProto."""
    arr = _fast(val, spec, maybe_bools)
    if arr is not None:
        return arr
    values, shape = _exact(val, spec)
    return _to_array(values, shape, spec)


def _is_element_object(val: Any) -> bool:
    return type(val) is dict and not is_b64(val)


def _status(e: ServingError) -> str:
    return f"{e.code.name}: {e.message}"


def _shape_str(shape: list[int]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


def _fast_instances(instances: list[Any], inputs: Mapping[str, TensorSpec],
                    maybe_bools: bool) -> dict[str, np.ndarray] | None:
    first = instances[0]
    if not _is_element_object(first):
        if len(inputs) != 1:
            return None
        (name, spec), = inputs.items()
        arr = _fast(instances, spec, maybe_bools)
        return None if arr is None else {name: arr}
    names = inputs.keys()
    for inst in instances:
        if type(inst) is not dict or inst.keys() != names:
            return None
    out = {}
    for name, spec in inputs.items():
        arr = _fast([inst[name] for inst in instances], spec, maybe_bools)
        if arr is None:
            return None
        out[name] = arr
    return out


def decode_instances(instances: list[Any], inputs: Mapping[str, TensorSpec],
                     maybe_bools: bool) -> dict[str, np.ndarray]:
    """Row format: FillTensorMapFromInstancesList."""
    fast = _fast_instances(instances, inputs, maybe_bools)
    if fast is not None:
        return fast
    names = sorted(inputs)
    if type(instances[0]) is not dict and len(inputs) > 1:
        raise ServingError.invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map")
    objects = _is_element_object(instances[0])
    values: dict[str, list[Any]] = {}
    shapes: dict[str, list[int]] = {}

    def add(item: Any, name: str) -> None:
        if name not in inputs:
            raise ServingError.invalid_argument(f"JSON object: does not have named input: {name}")
        vals, shape = _exact(item, inputs[name])
        if name not in shapes:
            shapes[name], values[name] = shape, vals
            return
        expected = int(np.prod(shapes[name])) if shapes[name] else 1
        if expected != len(vals):
            raise ServingError.invalid_argument(f"Expecting tensor size: {expected} but got: {len(vals)}")
        if shapes[name] != shape:
            raise ServingError.invalid_argument(
                f"Expecting shape {_shape_str(shapes[name])} but got: {_shape_str(shape)}")
        values[name].extend(vals)

    for count, elem in enumerate(instances):
        if objects:
            if not _is_element_object(elem):
                raise ServingError.invalid_argument(
                    f"Expecting object but got list at item {count} of input list")
            for name, item in elem.items():
                try:
                    add(item, name)
                except ServingError as e:
                    raise ServingError.invalid_argument(
                        f"Failed to process element: {count} key: {name} of 'instances' list. "
                        f"Error: {_status(e)}") from None
            if set(elem) != set(names):
                raise ServingError.invalid_argument(
                    f"Failed to process element: {count} of 'instances' list. JSON object: "
                    f"{value_to_string(elem)} must only have keys: {','.join(names)}")
        else:
            if _is_element_object(elem):
                raise ServingError.invalid_argument(
                    f"Expecting value/list but got object at item {count} of input list")
            try:
                add(elem, names[0])
            except ServingError as e:
                raise ServingError.invalid_argument(
                    f"Failed to process element: {count} of 'instances' list. Error: {_status(e)}") from None
    n = len(instances)
    return {name: _to_array(values[name], [n, *shapes[name]], inputs[name]) for name in shapes}


# -- dense numeric bodies, straight from the bytes ------------------------------------------
# ``{"instances": [[...numbers...]]}`` (or ``"inputs"``, with an optional plain
# ``signature_name``) whose array holds only numbers: orjson would build one Python list
# per innermost row (4,096 for a 64x64x3 image) and a Python float per number, and numpy
# would walk them all again.  Instead the array's bytes are checked against the bracket
# skeleton that the signature's shape implies and its numbers parsed in one go by simdjson,
# straight into float64 (int64 for an integer signature).
# Anything else (objects, strings, booleans, nulls, escapes, ragged or unknown shapes, a
# number the strict parsers reject) makes ``decode_dense`` return None and the caller
# parses the body the usual way, so results and error messages are those of the paths
# above.

_SIG = rb'"signature_name"\s*:\s*"([^"\\]*)"\s*'
_DENSE_HEAD = re.compile(rb'\s*\{\s*(?:' + _SIG + rb',\s*)?"(instances|inputs)"\s*:\s*(?=\[)')
_DENSE_TAIL = re.compile(rb'(?<=\])\s*(?:,\s*' + _SIG + rb')?\}\s*\Z')
_DENSE_TAIL_WINDOW = 1024  # the tail is looked for in the body's last bytes only
_DENSE_MIN_BYTES = 128  # below this the usual parse costs less than these checks
_NUMBER_BYTES = b"0123456789eE.+- \t\r\n"
_ARRAY_BYTES = _NUMBER_BYTES + b"[],"


def match_dense(body: bytes) -> tuple[str, bool, bytes] | None:
    """``(signature_name, columnar, array bytes)`` when ``body`` looks like one dense numeric array
    (not for tiny bodies, whose usual parse costs less than these checks).

    The head (``{"instances":`` with an optional signature name) and the tail are matched by
    regular expressions at the body's two ends, and the array between them by one ``translate``
    that deletes every byte a numeric array may hold (a third of a regex scan's time).
    """
    if len(body) < _DENSE_MIN_BYTES:
        return None
    head = _DENSE_HEAD.match(body)
    if head is None:
        return None
    end = len(body.rstrip())
    # Usually the array's last "]" is the body's last one; a signature name holding "]" after
    # the array makes that match fail, and the tail is then searched for.
    close = body.rfind(b"]", head.end(), end)
    tail = _DENSE_TAIL.match(body, close + 1) if close > 0 else None
    if tail is None:
        tail = _DENSE_TAIL.search(body, max(head.end() + 1, end - _DENSE_TAIL_WINDOW))
    if tail is None or (head.group(1) is not None and tail.group(1) is not None):
        return None  # not that shape, or signature_name given twice: the full parser decides
    array = body[head.end():tail.start()]
    if array.translate(None, _ARRAY_BYTES):
        return None
    sig = head.group(1) if head.group(1) is not None else tail.group(1) or b""
    try:
        name = sig.decode()
    except UnicodeDecodeError:
        return None
    return name, head.group(2) == b"inputs", array


@functools.lru_cache(maxsize=64)
def _row_skeleton(row_shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of one row of ``row_shape`` (cached: a signature has one; the
    row count varies per request, so whole-array skeletons are not kept)."""
    s = b""
    for n in reversed(row_shape):
        s = b"[" + b",".join([s] * n) + b"]"
    return s


def decode_dense(text: bytes, inputs: Mapping[str, TensorSpec]) -> dict[str, np.ndarray] | None:
    """The one input's array from a :func:`match_dense` array, or None to take the usual path."""
    if len(inputs) != 1:
        return None
    (name, spec), = inputs.items()
    dims = spec.shape
    if dims is None or len(dims) < 1 or any(d < 0 for d in dims[1:]):
        return None
    # Row format stacks instances on dim 0; columnar gives the whole tensor: either way
    # the array is [n] + the signature's other dims.
    floats = spec.dtype in _FLOATS
    if not floats and spec.dtype not in _INT_RANGE:
        return None  # bools, strings, halves: the usual path
    try:
        # simdjson validates the whole array as JSON and writes its numbers straight into one
        # float64 (int64) buffer: no Python number per value (a third of orjson-then-numpy's
        # time for an image).  Ints past int64 or floats for an int signature raise here.
        flat = np.frombuffer(_simdjson().parse(text).as_buffer(of_type="d" if floats else "i"),
                             np.float64 if floats else np.int64)
    except (ValueError, TypeError, RuntimeError):  # not JSON numbers of that kind, or too deep: the usual path says why
        return None
    row = 1
    for d in dims[1:]:
        row *= d
    if not len(flat) or row == 0 or len(flat) % row:
        return None
    n = len(flat) // row
    if text.translate(None, _NUMBER_BYTES) != b"[" + b",".join([_row_skeleton(tuple(dims[1:]))] * n) + b"]":
        return None
    arr = _small_floats(flat, spec) if floats else _fast(flat, spec, False)
    return None if arr is None else {name: arr.reshape((n, *dims[1:]))}


_parsers = threading.local()


def _simdjson() -> simdjson.Parser:
    """This thread's parser (a parser is reused across documents, never shared by threads)."""
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    return parser
