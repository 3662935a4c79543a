"""TensorProto <-> numpy, with the semantics of TF's C++ ``Tensor::FromProto``.

That is what TF Serving applies to every gRPC input, so the rules are its:

* ``tensor_content`` (raw little-endian bytes) wins when non-empty; its size
  must match the shape exactly.
* Otherwise the typed field is read (``float_val``, ``int_val`` for
  int8/16/32 and uint8/16, ``half_val`` holding float16 bit patterns, ...):
  no values → zeros; fewer values than elements → the last value repeats (so
  one value broadcasts); more values → the extra ones are ignored.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from .errors import ServingError
from .signature import NUMPY_DTYPES, dtype_name

__all__ = ["to_ndarray", "from_ndarray", "fill_proto"]

_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_STRING: "string_val",
}
# The field's own element type, when it differs from the tensor's.
_FIELD_NP = {"int_val": np.dtype(np.int32), "half_val": np.dtype(np.int32)}


def _np_dtype(dtype: int) -> np.dtype:
    np_dtype = NUMPY_DTYPES.get(dtype)
    if np_dtype is None:
        if dtype == types_pb2.DT_INVALID:
            raise ServingError.invalid_argument("Cannot parse TensorProto: dtype is not set (DT_INVALID)")
        raise ServingError.unimplemented(f"Tensors of type {dtype_name(dtype)} are not supported")
    return np_dtype


def _shape(tp: tensor_pb2.TensorProto) -> tuple[int, ...]:
    proto = tp.tensor_shape
    if proto.unknown_rank:
        raise ServingError.invalid_argument("Cannot parse TensorProto: shape has unknown rank")
    shape = tuple(int(d.size) for d in proto.dim)
    if any(d < 0 for d in shape):
        raise ServingError.invalid_argument(
            f"Cannot parse TensorProto: negative dimension in shape [{', '.join(map(str, shape))}]")
    return shape


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 28:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _decode_string_list(content: bytes, n: int) -> np.ndarray:
    """TF's EncodeStringList layout: n varint32 lengths, then the bytes back to back."""
    lengths = []
    pos = 0
    for _ in range(n):
        length, pos = _read_varint(content, pos)
        lengths.append(length)
    if pos + sum(lengths) != len(content):
        raise ValueError("size mismatch")
    out = np.empty(n, dtype=object)
    for i, length in enumerate(lengths):
        out[i] = content[pos:pos + length]
        pos += length
    return out


def _from_content(content: bytes, dtype: int, np_dtype: np.dtype, n: int) -> np.ndarray:
    if dtype == types_pb2.DT_STRING:
        try:
            return _decode_string_list(content, n)
        except ValueError:
            raise ServingError.invalid_argument(
                "Cannot parse TensorProto: malformed tensor_content for string tensor") from None
    if len(content) != n * np_dtype.itemsize:
        raise ServingError.invalid_argument(
            f"Cannot parse TensorProto: tensor_content has {len(content)} bytes, "
            f"expected {n * np_dtype.itemsize} for {n} {dtype_name(dtype)} values")
    # Read-only view on the proto's bytes: no copy.
    return np.frombuffer(content, dtype=np_dtype.newbyteorder("<"))


def _from_field(tp: tensor_pb2.TensorProto, dtype: int, np_dtype: np.dtype, n: int) -> np.ndarray:
    name = _FIELD[dtype]
    values = getattr(tp, name)
    count = len(values)
    if dtype == types_pb2.DT_STRING:
        if count == 0:
            out = np.empty(n, dtype=object)
            out.fill(b"")
            return out
        arr = np.empty(count, dtype=object)
        arr[:] = list(values)
    elif count == 0:
        return np.zeros(n, dtype=np_dtype)
    else:
        # upb repeated fields expose __array__: a single C-level copy.
        arr = np.asarray(values, dtype=_FIELD_NP.get(name, np_dtype))
        if dtype == types_pb2.DT_HALF:
            arr = arr.astype(np.uint16).view(np.float16)
        elif arr.dtype != np_dtype:
            arr = arr.astype(np_dtype)  # int_val → int8/16, uint8/16: a C cast, as in TF
    if count > n:
        return arr[:n]
    if count < n:
        return np.concatenate([arr, np.full(n - count, arr[-1], dtype=arr.dtype)])
    return arr


def to_ndarray(tp: tensor_pb2.TensorProto) -> np.ndarray:
    """Decode a client's TensorProto (any encoding) into a numpy array.

    DT_STRING becomes an object array of ``bytes``.  Unsupported dtypes
    (bfloat16, complex, resource, variant, quantized) raise UNIMPLEMENTED;
    malformed protos raise INVALID_ARGUMENT.
    """
    dtype = int(tp.dtype)
    np_dtype = _np_dtype(dtype)
    shape = _shape(tp)
    n = 1
    for d in shape:
        n *= d
    if n == 0:
        return np.empty(shape, dtype=np_dtype)
    content = tp.tensor_content
    if content:
        flat = _from_content(content, dtype, np_dtype, n)
    else:
        flat = _from_field(tp, dtype, np_dtype, n)
    return flat.reshape(shape)


def _string_values(arr: np.ndarray) -> list[bytes]:
    return [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in arr.ravel().tolist()]


def from_ndarray(arr: np.ndarray, dtype: int, *, use_tensor_content: bool) -> tensor_pb2.TensorProto:
    """Encode an output array as TF Serving does (``Tensor::AsProtoField`` / ``AsProtoTensorContent``).

    By default values go to the typed ``*_val`` field; with
    ``use_tensor_content`` numeric tensors are written as raw little-endian
    bytes.  Strings always use ``string_val``.
    """
    tp = tensor_pb2.TensorProto()
    fill_proto(tp, arr, dtype, use_tensor_content=use_tensor_content)
    return tp


def fill_proto(tp: tensor_pb2.TensorProto, arr: np.ndarray, dtype: int, *, use_tensor_content: bool) -> None:
    """:func:`from_ndarray` into an empty ``tp`` in place (e.g. a response's map entry: no copy)."""
    np_dtype = _np_dtype(dtype)
    arr = np.asarray(arr)
    tp.dtype = dtype
    dims = tp.tensor_shape.dim
    for d in arr.shape:
        dims.add().size = d
    if arr.size == 0:
        return
    if dtype == types_pb2.DT_STRING:
        tp.string_val.extend(_string_values(arr))
        return
    a = np.ascontiguousarray(arr, dtype=np_dtype.newbyteorder("<"))
    if use_tensor_content:
        tp.tensor_content = a.tobytes()
        return
    flat = a.ravel()
    if dtype == types_pb2.DT_HALF:
        flat = flat.view(np.uint16)
    # Slice assignment from a list is the fastest bulk path into upb repeated fields.
    getattr(tp, _FIELD[dtype])[:] = flat.tolist()
