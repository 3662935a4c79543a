"""TF Serving REST JSON rules (util/json_tensor.cc): exact values, codes and messages."""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any, Callable

import numpy as np
import orjson
import pytest
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2 as T

from aioserving import _json_decode, jsonfmt
from aioserving._json_text import escape_bytes, float_tokens, write_decimal
from aioserving.errors import Code, ServingError
from aioserving.signature import NUMPY_DTYPES, TensorSpec


def spec(alias: str, dtype: int, shape: tuple[int, ...] | None = (-1,)) -> TensorSpec:
    return TensorSpec(alias=alias, name=f"{alias}:0", dtype=dtype, shape=shape)


X = {"x": spec("x", T.DT_FLOAT)}


def raises(code: Code, message: str, fn: Callable[..., Any], *args: Any) -> None:
    with pytest.raises(ServingError) as info:
        fn(*args)
    assert (info.value.code, info.value.message) == (code, message)


def decode(body: bytes, inputs: dict[str, TensorSpec]) -> dict[str, np.ndarray]:
    return jsonfmt.decode_inputs(jsonfmt.parse_predict(body), inputs)


def bad(body: bytes, inputs: dict[str, TensorSpec], message: str, code: Code = Code.INVALID_ARGUMENT) -> None:
    raises(code, message, decode, body, inputs)


# ------------------------------------------------------------------ loads


def test_loads_fast_and_nan_fallback() -> None:
    assert jsonfmt.loads(b'{"a": [1, 2.5, "s"]}') == {"a": [1, 2.5, "s"]}
    doc = jsonfmt.loads(b'{"a": [NaN, Infinity, -Infinity]}')
    assert np.isnan(doc["a"][0]) and doc["a"][1:] == [float("inf"), float("-inf")]


@pytest.mark.parametrize("body,message", [
    (b"", "JSON Parse error: The document is empty"),
    (b"  ", "JSON Parse error: The document is empty. at offset: 2"),
    (b'{"a": [1,}', "JSON Parse error: Invalid value. at offset: 9"),
    (b'{"a": 1 "b": 2}', "JSON Parse error: Missing a comma or '}' after an object member. at offset: 8"),
    (b'{"a": [1 2]}', "JSON Parse error: Missing a comma or ']' after an array element. at offset: 9"),
    (b'{"a" 1}', "JSON Parse error: Missing a colon after a name of object member. at offset: 5"),
    (b'{1: 2}', "JSON Parse error: Missing a name for object member. at offset: 1"),
    (b'{"a": 1} x', "JSON Parse error: The document root must not be followed by other values. at offset: 9"),
    (b'{"a": "\\q"}', "JSON Parse error: Invalid escape character in string. at offset: 7"),
    (b'{"a": tru}', "JSON Parse error: Invalid value. at offset: 6"),
])
def test_loads_parse_errors(body: bytes, message: str) -> None:
    raises(Code.INVALID_ARGUMENT, message, jsonfmt.loads, body)


@pytest.mark.parametrize("body,message", [
    (b"[1, 2.5]", "JSON Value: [\n    1,\n    2.5\n] Is not object"),
    (b'"s"', 'JSON Value: "s" Is not object'),
    (b"1.5", "JSON Value: 1.5 Is not object"),
    (b"null", "JSON Value: null Is not object"),
])
def test_loads_top_level_must_be_object(body: bytes, message: str) -> None:
    raises(Code.INVALID_ARGUMENT, message, jsonfmt.loads, body)


def test_dumps() -> None:
    assert jsonfmt.dumps({"error": "x", "n": np.int64(3)}) == b'{"error":"x","n":3}'


# ---------------------------------------------------------- parse_predict


def test_parse_predict_formats() -> None:
    row = jsonfmt.parse_predict(b'{"signature_name": "s", "instances": [1]}')
    assert (row.signature_name, row.columnar, row.data) == ("s", False, [1])
    col = jsonfmt.parse_predict(b'{"inputs": {"a": 1}}')
    assert (col.signature_name, col.columnar, col.data) == ("", True, {"a": 1})


@pytest.mark.parametrize("body,message", [
    (b'{"foo": 1}', "Missing 'inputs' or 'instances' key"),
    (b'{"instances": [1], "inputs": [1]}',
     'JSON Value: {\n    "instances": [\n        1\n    ],\n    "inputs": [\n        1\n    ]\n} '
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "),
    (b'{"instances": []}', "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"),
    (b'{"instances": 1.0}', "JSON Value: {\n    \"instances\": 1.0\n} Excepting 'instances' to be an list/array"),
    (b'{"signature_name": 1, "inputs": {}}',
     'JSON Value: {\n    "signature_name": 1,\n    "inputs": {}\n} not formatted correctly. '
     "'signature_name' key must be a string value."),
])
def test_parse_predict_errors(body: bytes, message: str) -> None:
    raises(Code.INVALID_ARGUMENT, message, jsonfmt.parse_predict, body)


# ---------------------------------------------------------- decode_inputs


def test_row_single_input() -> None:
    out = decode(b'{"instances": [[1, 2.5], [3, 4]]}', X)
    assert out["x"].dtype == np.float32 and out["x"].tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert decode(b'{"instances": [1, 2]}', X)["x"].shape == (2,)


def test_row_named_inputs() -> None:
    inputs = {"a": spec("a", T.DT_INT64), "b": spec("b", T.DT_STRING)}
    out = decode(b'{"instances": [{"a": 1, "b": "x"}, {"b": {"b64": "/w=="}, "a": -2}]}', inputs)
    assert out["a"].dtype == np.int64 and out["a"].tolist() == [1, -2]
    assert out["b"].dtype == object and out["b"].tolist() == [b"x", b"\xff"]


def test_columnar() -> None:
    out = decode(b'{"inputs": [[1, 2], [3, 4]]}', X)
    assert out["x"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert decode(b'{"inputs": 2.5}', X)["x"].shape == ()
    inputs = {"a": spec("a", T.DT_INT32), "b": spec("b", T.DT_BOOL)}
    out = decode(b'{"inputs": {"a": [1, 2], "b": [[true], [false]], "ignored": 1}}', inputs)
    assert out["a"].dtype == np.int32 and out["a"].tolist() == [1, 2]
    assert out["b"].dtype == np.bool_ and out["b"].tolist() == [[True], [False]]
    assert decode(b'{"inputs": [[], []]}', X)["x"].shape == (2, 0)


def test_b64_and_strings() -> None:
    s = {"s": spec("s", T.DT_STRING)}
    assert decode(b'{"inputs": {"b64": "aGk="}}', s)["s"].tolist() == b"hi"
    out = decode('{"instances": [{"b64": "aGk"}, "caf\u00e9"]}'.encode(), s)
    assert out["s"].tolist() == [b"hi", "caf\u00e9".encode()]
    bad(b'{"inputs": [{"b64": "!!"}]}', s, "Unable to base64 decode")
    bad(b'{"inputs": [{"a": 1}]}', s, 'JSON Value: {\n    "a": 1\n} not formatted correctly for base64 data')
    bad(b'{"inputs": [1]}', s, "JSON Value: 1 Type: Number is not of expected type: string")


def test_nan_and_infinity_accepted() -> None:
    out = decode(b'{"instances": [NaN, Infinity, -Infinity]}', X)["x"]
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf
    d = decode(b'{"inputs": [NaN]}', {"x": spec("x", T.DT_DOUBLE)})["x"]
    assert d.dtype == np.float64 and np.isnan(d[0])


@pytest.mark.parametrize("dtype,body,expected", [
    (T.DT_INT8, b"[300, -1]", [44, -1]),  # int_val then a C cast, as in TF
    (T.DT_UINT8, b"[255, -1]", [255, 255]),
    (T.DT_INT16, b"[-32768]", [-32768]),
    (T.DT_INT32, b"[2147483647]", [2147483647]),
    (T.DT_INT64, b"[-9223372036854775808, 9223372036854775807]", [-(2**63), 2**63 - 1]),
    (T.DT_UINT32, b"[4294967295]", [4294967295]),
    (T.DT_UINT64, b"[18446744073709551615, 0]", [2**64 - 1, 0]),
    (T.DT_DOUBLE, b"[9007199254740991, 1e300]", [9007199254740991.0, 1e300]),
    (T.DT_FLOAT, b"[16777215, -16777215, 1e38]", [16777215.0, -16777215.0, np.float32(1e38)]),
    (T.DT_FLOAT, b"[3e7, 0.5]", [3e7, 0.5]),
])
def test_integer_and_float_ranges(dtype: int, body: bytes, expected: list[Any]) -> None:
    out = decode(b'{"inputs": ' + body + b"}", {"x": spec("x", dtype)})["x"]
    assert out.dtype == NUMPY_DTYPES[dtype]
    assert out.tolist() == expected


@pytest.mark.parametrize("dtype,value,message", [
    (T.DT_INT32, b"1.0", "JSON Value: 1.0 Type: Number is not of expected type: int32"),
    (T.DT_INT32, b"2147483648", "JSON Value: 2147483648 Type: Number is not of expected type: int32"),
    (T.DT_INT8, b"1.5", "JSON Value: 1.5 Type: Number is not of expected type: int8"),
    (T.DT_INT64, b"9223372036854775808",
     "JSON Value: 9223372036854775808 Type: Number is not of expected type: int64"),
    (T.DT_UINT32, b"-1", "JSON Value: -1 Type: Number is not of expected type: uint32"),
    (T.DT_UINT64, b"-1", "JSON Value: -1 Type: Number is not of expected type: uint64"),
    (T.DT_BOOL, b"1", "JSON Value: 1 Type: Number is not of expected type: bool"),
    (T.DT_FLOAT, b"true", "JSON Value: true Type: True is not of expected type: float"),
    (T.DT_FLOAT, b'"1.5"', 'JSON Value: "1.5" Type: String is not of expected type: float'),
    (T.DT_FLOAT, b"null", "JSON Value: null Type: Null is not of expected type: float"),
    (T.DT_FLOAT, b'{"b64": "AA=="}',
     'JSON Value: {\n    "b64": "AA=="\n} Type: Object is not of expected type: float'),
    (T.DT_FLOAT, b"16777216", "Cannot convert JSON value: 16777216 to float without loss of precision."),
    (T.DT_FLOAT, b"1e39", "Cannot convert JSON value: 1e+39 to float without loss of precision."),
    (T.DT_DOUBLE, b"9007199254740992",
     "Cannot convert JSON value: 9007199254740992 to double without loss of precision."),
])
def test_value_type_errors(dtype: int, value: bytes, message: str) -> None:
    bad(b'{"inputs": [' + value + b"]}", {"x": spec("x", dtype)}, message)


def test_float_value_printing_in_errors() -> None:
    # JsonValueToString prints doubles within float range as float32 (WriteDecimal<float>).
    bad(b'{"inputs": [0.123456789]}', {"x": spec("x", T.DT_INT32)},
        "JSON Value: 0.123456791 Type: Number is not of expected type: int32")
    bad(b'{"inputs": [1e300]}', {"x": spec("x", T.DT_INT32)},
        "JSON Value: 1e+300 Type: Number is not of expected type: int32")


@pytest.mark.parametrize("dtype,name", [(T.DT_HALF, "half"), (T.DT_UINT16, "uint16"),
                                        (T.DT_BFLOAT16, "bfloat16"), (T.DT_COMPLEX64, "complex64")])
def test_unsupported_input_dtypes(dtype: int, name: str) -> None:
    inputs = {"x": spec("x", dtype)}
    bad(b'{"inputs": [1.5]}', inputs, f"Conversion of JSON Value: 1.5 to type: {name}", Code.UNIMPLEMENTED)
    # Row format wraps every per-element status into INVALID_ARGUMENT, as TF does.
    bad(b'{"instances": [1]}', inputs,
        f"Failed to process element: 0 of 'instances' list. Error: UNIMPLEMENTED: "
        f"Conversion of JSON Value: 1 to type: {name}")


@pytest.mark.parametrize("body,message", [
    (b'{"inputs": [[1, 2], [3]]}', "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    (b'{"inputs": [[1, 2], 3]}',
     "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    (b'{"inputs": [[1, 2], [3, [4]]]}', "Encountered list at unexpected level: 2 expected < 2"),
    (b'{"instances": [[1, 2], [3]]}',
     "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
     "Expecting tensor size: 2 but got: 1"),
    (b'{"instances": [[1, 2], [[3, 4]]]}',
     "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
     "Expecting shape [2] but got: [1,2]"),
    (b'{"instances": [1, {"x": 1}]}', "Expecting value/list but got object at item 1 of input list"),
])
def test_ragged_and_mixed(body: bytes, message: str) -> None:
    bad(body, X, message)


def test_named_instance_errors() -> None:
    inputs = {"a": spec("a", T.DT_FLOAT), "b": spec("b", T.DT_FLOAT)}
    bad(b'{"instances": [1, 2]}', inputs,
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map")
    bad(b'{"instances": [{"a": 1, "b": 2}, [1]]}', inputs,
        "Expecting object but got list at item 1 of input list")
    bad(b'{"instances": [{"a": 1}]}', inputs,
        "Failed to process element: 0 of 'instances' list. JSON object: {\n    \"a\": 1\n} "
        "must only have keys: a,b")
    bad(b'{"instances": [{"a": 1, "b": 2, "c": 3}]}', inputs,
        "Failed to process element: 0 key: c of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON object: does not have named input: c")
    bad(b'{"instances": [{"a": 1, "b": "x"}]}', inputs,
        "Failed to process element: 0 key: b of 'instances' list. Error: INVALID_ARGUMENT: "
        'JSON Value: "x" Type: String is not of expected type: float')


def test_named_columnar_errors() -> None:
    inputs = {"a": spec("a", T.DT_FLOAT), "b": spec("b", T.DT_FLOAT)}
    bad(b'{"inputs": [1]}', inputs,
        "inputs is a plain value/list, but expecting an object as multiple input tensors "
        "required as per tensorinfo_map")
    bad(b'{"inputs": {"a": 1}}', inputs, "Missing named input: b in 'inputs' object.")
    raises(Code.INVALID_ARGUMENT, "Failed to get input map for signature: DEFAULT",
           jsonfmt.decode_inputs, jsonfmt.parse_predict(b'{"inputs": 1}'), {})


def test_bool_hidden_in_numbers_is_rejected() -> None:
    bad(b'{"instances": [1.5, false]}', X,
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON Value: false Type: False is not of expected type: float")
    # "true" inside a key or a string does not disturb the numeric fast path.
    out = decode(b'{"signature_name": "true_false", "inputs": [1, 2]}', X)
    assert out["x"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("dtype", [T.DT_FLOAT, T.DT_DOUBLE, T.DT_INT32, T.DT_INT64, T.DT_UINT8, T.DT_BOOL])
def test_fast_path_equals_exact_path(dtype: int) -> None:
    rng = np.random.default_rng(dtype)
    if dtype == T.DT_BOOL:
        data = (rng.random((3, 4, 5)) < 0.5).tolist()
    elif dtype in (T.DT_FLOAT, T.DT_DOUBLE):
        data = (rng.standard_normal((3, 4, 5)) * 1e3).tolist()
    else:
        data = rng.integers(0, 200, (3, 4, 5)).tolist()
    inputs = {"x": spec("x", dtype)}
    body = orjson.dumps({"instances": data})
    fast = decode(body, inputs)["x"]
    exact = jsonfmt.decode_inputs(jsonfmt.PredictJson("", False, orjson.loads(body)["instances"]), inputs)["x"]
    assert fast.dtype == exact.dtype and fast.shape == exact.shape == (3, 4, 5)
    np.testing.assert_array_equal(fast, exact)


# ---------------------------------------------------------- encode_predict


def _row_reply(tokens: list[str]) -> bytes:
    """TF Serving's row reply for a single 1-D output (single-line rows, outer array closes on its own line)."""
    return b'{\n    "predictions": [' + ", ".join(tokens).encode() + b"\n    ]\n}"


def _columnar_reply(tokens: list[str]) -> bytes:
    """TF Serving's columnar reply for a single 1-D output (every element on its own line)."""
    return b'{\n    "outputs": [\n        ' + ",\n        ".join(tokens).encode() + b"\n    ]\n}"


@pytest.mark.parametrize("value,text", [
    (0.1, "0.1"), (3.0, "3.0"), (-0.0, "-0.0"), (1e-5, "1e-05"), (1e6, "1e+06"), (1e7, "1e+07"),
    (123456.0, "123456.0"), (1234567.0, "1234567.0"), (0.123456789, "0.123456791"),
    (1 / 3, "0.333333343"), (16777216.0, "16777216.0"), (3.4028235e38, "3.40282347e+38"),
    (0.0001, "0.0001"), (999999.5, "999999.5"), (1e-45, "1.4013e-45"),
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
])
def test_float32_formatting(value: float, text: str) -> None:
    body = jsonfmt.encode_predict({"y": np.array([value], np.float32)}, True, {})
    assert body == _columnar_reply([text])


@pytest.mark.parametrize("value,text", [
    (0.1, "0.1"), (2.0, "2.0"), (1 / 3, "0.33333333333333331"), (1e300, "1e+300"), (1e16, "1e+16"),
    (123456789.0, "123456789.0"), (float("nan"), "NaN"),
])
def test_float64_formatting(value: float, text: str) -> None:
    body = jsonfmt.encode_predict({"y": np.array([value], np.float64)}, False, {})
    assert body == _row_reply([text])


def _reference(arr: np.ndarray) -> list[str]:
    is32 = arr.dtype == np.float32
    return [write_decimal(float(v), is32) for v in arr.ravel()]


@pytest.mark.parametrize("kind", ["uniform", "rounded", "integers", "wide", "tiny"])
@pytest.mark.parametrize("np_type", [np.float32, np.float64])
def test_float_writer_matches_tf_rule(kind: str, np_type: type) -> None:
    rng = np.random.default_rng(7)
    base = {
        "uniform": rng.random(2000),
        "rounded": np.round(rng.random(2000) * 1000) / 1000,
        "integers": rng.integers(-10**6, 10**6, 2000).astype(np.float64),
        "wide": rng.standard_normal(2000) * 10.0 ** rng.integers(-30, 30, 2000),
        "tiny": rng.random(2000) * 1e-40,
    }[kind]
    arr = base.astype(np_type)
    assert float_tokens(arr) == _reference(arr)
    # Whatever path encode_predict takes (orjson or TF writer), the text is TF's.
    assert jsonfmt.encode_predict({"y": arr}, True, {}) == _columnar_reply(_reference(arr))
    assert jsonfmt.encode_predict({"y": arr}, False, {}) == _row_reply(_reference(arr))


def test_half_plus_two_reply_as_in_tf_serving_docs() -> None:
    # The reply printed in TF Serving's README / REST API docs.
    body = jsonfmt.encode_predict({"y": np.array([2.5, 3.0, 4.5], np.float32)}, False, {})
    assert body == b'{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}'


# json_tensor_test.cc's MakeJsonFromTensors cases (it compares parsed JSON; these are
# the bytes RapidJSON's PrettyWriter writes for them).
_INT_TENSOR = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32)


def test_tf_single_tensor() -> None:  # FromJsonSingleTensor
    assert jsonfmt.encode_predict({"int_tensor": _INT_TENSOR}, False, {}) == (
        b'{\n    "predictions": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]\n    ]\n}')
    col = jsonfmt.encode_predict({"int_tensor": _INT_TENSOR}, True, {})
    assert col == (
        b'{\n    "outputs": [\n'
        b'        [\n            [\n                1,\n                2\n            ],\n'
        b'            [\n                3,\n                4\n            ],\n'
        b'            [\n                5,\n                6\n            ]\n        ],\n'
        b'        [\n            [\n                7,\n                8\n            ],\n'
        b'            [\n                9,\n                0\n            ],\n'
        b'            [\n                1,\n                2\n            ]\n        ]\n'
        b'    ]\n}')
    assert orjson.loads(col) == {"outputs": _INT_TENSOR.tolist()}


def test_tf_single_scalar_tensor() -> None:  # FromJsonSingleScalarTensor
    t = {"int_tensor": np.array([1, 2, 3, 4, 5], np.int32)}
    assert jsonfmt.encode_predict(t, False, {}) == _row_reply(["1", "2", "3", "4", "5"])
    assert jsonfmt.encode_predict(t, True, {}) == _columnar_reply(["1", "2", "3", "4", "5"])


def test_tf_single_bytes_tensor() -> None:  # FromJsonSingleBytesTensor
    t = {"str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], object)}
    # b64 objects ignore kFormatSingleLineArray: they break the single-line rows.
    assert jsonfmt.encode_predict(t, False, {}) == (
        b'{\n    "predictions": [[{\n                "b64": "aGVsbG8="\n            }, {\n'
        b'                "b64": "d29ybGQ="\n            }], [{\n                "b64": "dGY="\n'
        b'            }, {\n                "b64": "c2VydmluZw=="\n            }]\n    ]\n}')


def test_tf_six_digit_precision_and_non_finite() -> None:
    # FromJsonSingleFloatTensorSixDigitPrecision / FromJsonSingleFloatTensorNonFinite
    t = np.array([[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]], np.float32)
    assert jsonfmt.encode_predict({"float_tensor": t}, False, {}) == (
        b'{\n    "predictions": [[9e+06, 999999.0, 0.5], [0.0003, 3e-05, 555557.5]\n    ]\n}')
    t = np.array([[np.nan, np.inf], [3, -np.inf]], np.float32)
    assert jsonfmt.encode_predict({"float_tensor": t}, False, {}) == (
        b'{\n    "predictions": [[NaN, Infinity], [3.0, -Infinity]\n    ]\n}')


def test_tf_multiple_named_tensors() -> None:  # FromJsonMultipleNamedTensors
    outs = {
        "int_tensor": _INT_TENSOR,
        "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], object),
        "float_tensor": np.array([[1.0], [2.0]], np.float32),
        "double_scalar_tensor": np.array([8.0, 9.0], np.float64),
        "str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], object),
    }
    specs = {"str_tensor": spec("str_tensor", T.DT_STRING), "str_tensor_bytes": spec("str_tensor_bytes", T.DT_STRING)}
    row = (
        b'{\n    "predictions": [\n'
        b'        {\n'
        b'            "double_scalar_tensor": 8.0,\n'
        b'            "float_tensor": [1.0],\n'
        b'            "int_tensor": [[1, 2], [3, 4], [5, 6]],\n'
        b'            "str_tensor": ["foo", "bar"],\n'
        b'            "str_tensor_bytes": [{\n                    "b64": "aGVsbG8="\n                }, {\n'
        b'                    "b64": "d29ybGQ="\n                }]\n'
        b'        },\n'
        b'        {\n'
        b'            "double_scalar_tensor": 9.0,\n'
        b'            "float_tensor": [2.0],\n'
        b'            "int_tensor": [[7, 8], [9, 0], [1, 2]],\n'
        b'            "str_tensor": ["baz", "bat"],\n'
        b'            "str_tensor_bytes": [{\n                    "b64": "dGY="\n                }, {\n'
        b'                    "b64": "c2VydmluZw=="\n                }]\n'
        b'        }\n'
        b'    ]\n}')
    assert jsonfmt.encode_predict(outs, False, specs) == row
    col = jsonfmt.encode_predict(outs, True, specs)
    assert col.startswith(
        b'{\n    "outputs": {\n'
        b'        "double_scalar_tensor": [\n            8.0,\n            9.0\n        ],\n'
        b'        "float_tensor": [\n            [\n                1.0\n            ],\n'
        b'            [\n                2.0\n            ]\n        ],\n'
        b'        "int_tensor": [\n            [\n                [\n                    1,\n')
    assert col.endswith(
        b'        "str_tensor": [\n            [\n                "foo",\n                "bar"\n            ],\n'
        b'            [\n                "baz",\n                "bat"\n            ]\n        ],\n'
        b'        "str_tensor_bytes": [\n            [\n                {\n'
        b'                    "b64": "aGVsbG8="\n                },\n                {\n'
        b'                    "b64": "d29ybGQ="\n                }\n            ],\n'
        b'            [\n                {\n                    "b64": "dGY="\n                },\n'
        b'                {\n                    "b64": "c2VydmluZw=="\n                }\n            ]\n'
        b'        ]\n    }\n}')
    assert orjson.loads(col) == {"outputs": {
        "double_scalar_tensor": [8.0, 9.0], "float_tensor": [[1.0], [2.0]], "int_tensor": _INT_TENSOR.tolist(),
        "str_tensor": [["foo", "bar"], ["baz", "bat"]],
        "str_tensor_bytes": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]],
    }}


def test_row_and_columnar_layouts() -> None:
    y = np.array([[1, 2], [3, 4]], np.float32)
    z = np.array([b"a", b"b"], object)
    specs = {"y": spec("y", T.DT_FLOAT), "z": spec("z", T.DT_STRING)}
    assert jsonfmt.encode_predict({"y": y}, False, specs) == (
        b'{\n    "predictions": [[1.0, 2.0], [3.0, 4.0]\n    ]\n}')
    assert jsonfmt.encode_predict({"z": z, "y": y}, False, specs) == (
        b'{\n    "predictions": [\n        {\n            "y": [1.0, 2.0],\n            "z": "a"\n        },\n'
        b'        {\n            "y": [3.0, 4.0],\n            "z": "b"\n        }\n    ]\n}')
    assert jsonfmt.encode_predict({"y": y}, True, specs) == (
        b'{\n    "outputs": [\n        [\n            1.0,\n            2.0\n        ],\n'
        b'        [\n            3.0,\n            4.0\n        ]\n    ]\n}')
    assert jsonfmt.encode_predict({"z": z, "y": y}, True, specs) == (
        b'{\n    "outputs": {\n        "y": [\n            [\n                1.0,\n                2.0\n'
        b'            ],\n            [\n                3.0,\n                4.0\n            ]\n        ],\n'
        b'        "z": [\n            "a",\n            "b"\n        ]\n    }\n}')
    third = np.array([[0.1], [1 / 3]], np.float32)  # TF-writer path in row form
    assert jsonfmt.encode_predict({"t": third, "z": z}, False, specs) == (
        b'{\n    "predictions": [\n        {\n            "t": [0.1],\n            "z": "a"\n        },\n'
        b'        {\n            "t": [0.333333343],\n            "z": "b"\n        }\n    ]\n}')
    assert jsonfmt.encode_predict({"t": third}, False, specs) == (
        b'{\n    "predictions": [[0.1], [0.333333343]\n    ]\n}')
    # Scalars (columnar only) and empty arrays.
    assert jsonfmt.encode_predict({"s": np.array(1 / 3, np.float32)}, True, {}) == (
        b'{\n    "outputs": 0.333333343\n}')
    assert jsonfmt.encode_predict({"s": np.array(2.5, np.float32)}, True, {}) == b'{\n    "outputs": 2.5\n}'
    assert jsonfmt.encode_predict({"s_bytes": np.array(b"hi", object)}, True, specs) == (
        b'{\n    "outputs": {\n        "b64": "aGk="\n    }\n}')
    assert jsonfmt.encode_predict({"e": np.zeros((2, 0), np.float32)}, False, {}) == (
        b'{\n    "predictions": [[], []\n    ]\n}')
    assert jsonfmt.encode_predict({"e": np.zeros((2, 0), np.float32)}, True, {}) == (
        b'{\n    "outputs": [\n        [],\n        []\n    ]\n}')
    assert jsonfmt.encode_predict({"e": np.zeros((2, 0), np.float32), "y": y}, False, {}) == (
        b'{\n    "predictions": [\n        {\n            "e": [],\n            "y": [1.0, 2.0]\n        },\n'
        b'        {\n            "e": [],\n            "y": [3.0, 4.0]\n        }\n    ]\n}')
    assert jsonfmt.encode_predict({"a": np.array(2.5, np.float32), "e": np.zeros(0, np.int32)}, True, {}) == (
        b'{\n    "outputs": {\n        "a": 2.5,\n        "e": []\n    }\n}')


def test_integers_bools_strings() -> None:
    outs = {
        "i64": np.array([-(2**63), 2**63 - 1], np.int64),
        "u64": np.array([2**64 - 1, 0], np.uint64),
        "i8": np.array([-128, 127], np.int8),
        "b": np.array([True, False]),
        "s": np.array([b'q"\\\n\x0b', b"\xff\xfe"], object),
        "img_bytes": np.array([b"\x00\xff", b""], object),
    }
    specs = {"s": spec("s", T.DT_STRING), "img_bytes": spec("img_bytes", T.DT_STRING)}
    assert jsonfmt.encode_predict(outs, True, specs) == (
        b'{\n    "outputs": {\n'
        b'        "b": [\n            true,\n            false\n        ],\n'
        b'        "i64": [\n            -9223372036854775808,\n            9223372036854775807\n        ],\n'
        b'        "i8": [\n            -128,\n            127\n        ],\n'
        b'        "img_bytes": [\n            {\n                "b64": "AP8="\n            },\n'
        b'            {\n                "b64": ""\n            }\n        ],\n'
        b'        "s": [\n            "q\\"\\\\\\n\\u000B",\n            "\xff\xfe"\n        ],\n'
        b'        "u64": [\n            18446744073709551615,\n            0\n        ]\n    }\n}')
    assert jsonfmt.encode_predict(outs, False, specs) == (
        b'{\n    "predictions": [\n'
        b'        {\n            "b": true,\n            "i64": -9223372036854775808,\n            "i8": -128,\n'
        b'            "img_bytes": {\n                "b64": "AP8="\n            },\n'
        b'            "s": "q\\"\\\\\\n\\u000B",\n            "u64": 18446744073709551615\n        },\n'
        b'        {\n            "b": false,\n            "i64": 9223372036854775807,\n            "i8": 127,\n'
        b'            "img_bytes": {\n                "b64": ""\n            },\n'
        b'            "s": "\xff\xfe",\n            "u64": 0\n        }\n    ]\n}')
    # Strings with the layout's own characters inside stay intact.
    tricky = {"s": np.array([[b"a, b", b"]], ["], [b"x\ny", b"  "]], object)}
    assert jsonfmt.encode_predict(tricky, False, specs) == (
        b'{\n    "predictions": [["a, b", "]], ["], ["x\\ny", "  "]\n    ]\n}')
    assert jsonfmt.encode_predict(tricky, True, specs) == (
        b'{\n    "outputs": [\n        [\n            "a, b",\n            "]], ["\n        ],\n'
        b'        [\n            "x\\ny",\n            "  "\n        ]\n    ]\n}')


def test_encode_errors() -> None:
    raises(Code.INVALID_ARGUMENT, "Cannot convert empty tensor map to JSON", jsonfmt.encode_predict, {}, True, {})
    raises(Code.INVALID_ARGUMENT, "Tensor name: s has no shape information ",
           jsonfmt.encode_predict, {"s": np.array(1.0)}, False, {})
    raises(Code.INVALID_ARGUMENT, "Tensor name: a has invalid batch size: 0",
           jsonfmt.encode_predict, {"a": np.zeros((0, 2))}, False, {})
    raises(Code.INVALID_ARGUMENT, "Tensor name: b has inconsistent batch size: 3 expecting: 2",
           jsonfmt.encode_predict, {"a": np.zeros(2), "b": np.zeros(3)}, False, {})
    raises(Code.INVALID_ARGUMENT, "Failed to write JSON value for tensor type: half",
           jsonfmt.encode_predict, {"h": np.zeros(2, np.float16)}, True, {"h": spec("h", T.DT_HALF)})
    raises(Code.INVALID_ARGUMENT, "Failed to write JSON value for tensor type: uint16",
           jsonfmt.encode_predict, {"u": np.zeros(2, np.uint16)}, True, {})


# -------------------------------------------------------- classify/regress


def _examples(body: bytes) -> tuple[str, list[example_pb2.Example]]:
    sig, raw = jsonfmt.parse_examples(body)
    return sig, [example_pb2.Example.FromString(r) for r in raw]


def test_parse_examples_types_and_context() -> None:
    sig, exs = _examples(
        b'{"signature_name": "cls", "context": {"c": "ctx", "over": 1},'
        b' "examples": [{"f": [1.5, 2.5], "i": [1, true], "s": {"b64": "/w=="}, "over": 7, "e": []},'
        b' {"f": 0.5}]}')
    assert sig == "cls" and len(exs) == 2
    f0 = exs[0].features.feature
    assert list(f0["f"].float_list.value) == [1.5, 2.5]
    assert list(f0["i"].int64_list.value) == [1, 1]
    assert list(f0["s"].bytes_list.value) == [b"\xff"]
    assert list(f0["c"].bytes_list.value) == [b"ctx"]
    assert list(f0["over"].int64_list.value) == [7]  # the example wins over the context
    assert f0["e"].WhichOneof("kind") is None
    assert list(exs[1].features.feature["over"].int64_list.value) == [1]
    _, plain = _examples(b'{"examples": [{"a": "x"}]}')
    assert list(plain[0].features.feature) == ["a"]


@pytest.mark.parametrize("body,message", [
    (b'{"signature_name": "s"}',
     'JSON Value: {\n    "signature_name": "s"\n} When method is classify, key \'examples\' is expected '
     "and was not found"),
    (b'{"examples": {}}', "JSON Value: {\n    \"examples\": {}\n} Expecting 'examples' value to be an list/array"),
    (b'{"examples": []}', "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array"),
    (b'{"examples": [1]}', "Example must be JSON object but got JSON Number"),
    (b'{"context": [], "examples": [{}]}', "Example must be JSON object but got JSON Array"),
    (b'{"examples": [{"a": null}]}', "Feature: a has element with unexpected JSON type: Null"),
    (b'{"examples": [{"a": [[1]]}]}', "Feature: a has element with unexpected JSON type: Array"),
    (b'{"examples": [{"a": {"x": 1}}]}', "Feature: a has element with unexpected JSON type: Object"),
    (b'{"examples": [{"a": [1, 1.5]}]}', "Unexpected element type in feature: a expecting type: int64"),
    (b'{"examples": [{"a": [1.5, "x"]}]}', "Unexpected element type in feature: a expecting type: float"),
    (b'{"examples": [{"a": ["x", true]}]}', "Unexpected element type in feature: a expecting type: bytes"),
    (b'{"examples": [{"a": 9223372036854775808}]}', "Feature: a has uint64 element. Only int64 is supported."),
    (b'{"examples": [{"a": 1e39}]}', "Cannot convert JSON value: 1e+39 to float without loss of precision."),
    (b'{"examples": [{"a": {"b64": "%%"}}]}', "Unable to base64 decode"),
    (b'{"signature_name": [], "examples": [{}]}',
     'JSON Value: {\n    "signature_name": [],\n    "examples": [\n        {}\n    ]\n} not formatted '
     "correctly. 'signature_name' key must be a string value."),
])
def test_parse_examples_errors(body: bytes, message: str) -> None:
    raises(Code.INVALID_ARGUMENT, message, jsonfmt.parse_examples, body)


def test_encode_classify() -> None:
    classes = np.array([[b"cat", b"dog"], [b"x\xff", b'"q"']], object)
    scores = np.array([[0.1, 0.9], [1.0, 1 / 3]], np.float32)
    assert jsonfmt.encode_classify(classes, scores) == (
        b'{\n    "results": [[["cat", 0.1], ["dog", 0.9]], [["x\xff", 1.0], ["\\"q\\"", 0.333333343]]\n    ]\n}')
    assert jsonfmt.encode_classify(None, scores[:1]) == b'{\n    "results": [[["", 0.1], ["", 0.9]]\n    ]\n}'
    assert jsonfmt.encode_classify(classes[:1], None) == (
        b'{\n    "results": [[["cat", 0.0], ["dog", 0.0]]\n    ]\n}')
    # json_tensor_test.cc JsonFromClassificationResult
    labels = np.array([[b"car", b"bike", b"bus"], [b"car", b"bike", b"bus"]], object)
    assert jsonfmt.encode_classify(labels, np.array([[0.2, 0.7, 0.1], [0.7, 0.1, 0.2]], np.float32)) == (
        b'{\n    "results": [[["car", 0.2], ["bike", 0.7], ["bus", 0.1]],'
        b' [["car", 0.7], ["bike", 0.1], ["bus", 0.2]]\n    ]\n}')
    raises(Code.INVALID_ARGUMENT, "Cannot convert empty ClassificationResults to JSON",
           jsonfmt.encode_classify, np.zeros((0, 2), object), None)


def test_encode_regress() -> None:
    values = np.array([1.0, 0.25, 1e7, 1 / 3, float("nan")], np.float32)
    assert jsonfmt.encode_regress(values) == b'{\n    "results": [1.0, 0.25, 1e+07, 0.333333343, NaN]\n}'
    # json_tensor_test.cc JsonFromRegressionResult(WithNonFinite); the whole array is single-line.
    assert jsonfmt.encode_regress(np.array([0.2, 0.9, 1.0], np.float32)) == b'{\n    "results": [0.2, 0.9, 1.0]\n}'
    assert jsonfmt.encode_regress(np.array([0.2, np.inf, 1.0, -np.inf, np.nan], np.float32)) == (
        b'{\n    "results": [0.2, Infinity, 1.0, -Infinity, NaN]\n}')
    raises(Code.INVALID_ARGUMENT, "Cannot convert empty RegressionResults to JSON",
           jsonfmt.encode_regress, np.zeros(0, np.float32))


def test_b64_bytes_output_roundtrip() -> None:
    raw = bytes(range(256))
    body = jsonfmt.encode_predict({"out_bytes": np.array([raw], object)}, False,
                                  {"out_bytes": spec("out_bytes", T.DT_STRING)})
    assert base64.b64decode(orjson.loads(body)["predictions"][0]["b64"]) == raw


# ------------------------------------------- a model of RapidJSON's PrettyWriter


class _PrettyWriter:
    """rapidjson::PrettyWriter's whitespace rules (prettywriter.h PrettyPrefix/EndArray/EndObject)."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.stack: list[list[Any]] = []  # [in_array, value_count]
        self.single_line = False  # kFormatSingleLineArray

    def _indent(self) -> str:
        return "    " * len(self.stack)

    def _prefix(self) -> None:
        if not self.stack:
            return
        level = self.stack[-1]
        if level[0]:
            if level[1]:
                self.out.append(", " if self.single_line else ",")
            if not self.single_line:
                self.out.append("\n" + self._indent())
        else:
            self.out.append((",\n" if level[1] % 2 == 0 else ": ") if level[1] else "\n")
            if level[1] % 2 == 0:
                self.out.append(self._indent())
        level[1] += 1

    def value(self, token: str) -> None:
        self._prefix()
        self.out.append(token)

    def start(self, in_array: bool) -> None:
        self._prefix()
        self.stack.append([in_array, 0])
        self.out.append("[" if in_array else "{")

    def end(self) -> None:
        in_array, count = self.stack.pop()
        if count and not (in_array and self.single_line):
            self.out.append("\n" + self._indent())
        self.out.append("]" if in_array else "}")


def _model_values(w: _PrettyWriter, arr: np.ndarray, name: str, dim: int, flat: list[Any], pos: list[int]) -> None:
    """AddTensorValues / AddSingleValueAndAdvance."""
    if dim >= arr.ndim:
        v = flat[pos[0]]
        pos[0] += 1
        if arr.dtype == object and name.endswith("_bytes"):
            w.start(False)
            w.value('"b64"')
            w.value('"' + base64.b64encode(v).decode() + '"')
            w.end()
        elif arr.dtype == object:
            w.value(escape_bytes(v).decode("utf-8", "surrogateescape"))
        elif arr.dtype.kind == "f":
            w.value(write_decimal(float(v), arr.dtype == np.float32))
        else:
            w.value(json.dumps(v))
        return
    w.start(True)
    for _ in range(arr.shape[dim]):
        _model_values(w, arr, name, dim + 1, flat, pos)
    w.end()


def _model_predict(outputs: dict[str, np.ndarray], columnar: bool) -> bytes:
    """MakeColumnarFormatJsonFromTensors / MakeRowFormatJsonFromTensors through the model writer."""
    w = _PrettyWriter()
    items = sorted(outputs.items())
    multi = len(items) > 1
    w.start(False)
    if columnar:
        w.value('"outputs"')
        if multi:
            w.start(False)
        for name, arr in items:
            if multi:
                w.value('"' + name + '"')
            _model_values(w, arr, name, 0, arr.ravel().tolist(), [0])
        if multi:
            w.end()
    else:
        w.value('"predictions"')
        w.start(True)
        pos = {name: [0] for name, _ in items}
        for _ in range(items[0][1].shape[0]):
            if multi:
                w.start(False)
            w.single_line = True
            for name, arr in items:
                if multi:
                    w.value('"' + name + '"')
                _model_values(w, arr, name, 1, arr.ravel().tolist(), pos[name])
            w.single_line = False
            if multi:
                w.end()
        w.end()
    w.end()
    return "".join(w.out).encode("utf-8", "surrogateescape")


def _model_array(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    n = math.prod(shape)
    arr = {
        "f32": lambda: (np.round(rng.random(n) * 100) / 4).astype(np.float32),  # orjson path
        "f32_tf": lambda: rng.random(n).astype(np.float32),  # TF writer path
        "f64": lambda: rng.random(n) * 1e7,
        "i64": lambda: rng.integers(-1000, 1000, n),
        "bool": lambda: rng.random(n) > 0.5,
        "str": lambda: np.array([b'"x, y]\n' * (i % 3) for i in range(n)], object),
    }[kind]()
    return arr.reshape(shape)


_MODEL_KINDS = ["f32", "f32_tf", "f64", "i64", "bool", "str"]


@pytest.mark.parametrize("shape", [(3,), (1,), (2, 2), (1, 3), (2, 3, 2), (3, 1, 1, 2), (2, 0), (2, 1, 0)])
@pytest.mark.parametrize("kind", _MODEL_KINDS + ["bytes"])
def test_single_output_matches_pretty_writer_model(shape: tuple[int, ...], kind: str) -> None:
    rng = np.random.default_rng(3)
    name = "out_bytes" if kind == "bytes" else "out"
    outs = {name: _model_array("str" if kind == "bytes" else kind, shape, rng)}
    for columnar in (False, True):
        assert jsonfmt.encode_predict(outs, columnar, {}) == _model_predict(outs, columnar)
    if len(shape) == 1:
        scalar = {name: outs[name].reshape(-1)[:1].reshape(())}
        assert jsonfmt.encode_predict(scalar, True, {}) == _model_predict(scalar, True)


@pytest.mark.parametrize("shapes", [((2,), (2, 3)), ((2, 2), (2,)), ((1, 2, 2), (1,)), ((3, 0), (3, 2))])
@pytest.mark.parametrize("kind", _MODEL_KINDS)
def test_multiple_outputs_match_pretty_writer_model(shapes: tuple[tuple[int, ...], ...], kind: str) -> None:
    rng = np.random.default_rng(5)
    first, second = shapes
    outs = {"a": _model_array(kind, first, rng), "b_bytes": _model_array("str", second, rng),
            "c": _model_array("f32_tf", second, rng), "d": _model_array("i64", second, rng)}
    for columnar in (False, True):
        assert jsonfmt.encode_predict(outs, columnar, {}) == _model_predict(outs, columnar)


# ---------------------------------------------------------- dense numeric bodies


IMG = {"x": spec("x", T.DT_FLOAT, (-1, 8, 8, 3))}


def _both(body: bytes, inputs: dict[str, TensorSpec]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(dense path, usual path) results for the same body."""
    req = jsonfmt.parse_predict(body)
    usual = jsonfmt.decode_inputs(jsonfmt.parse_predict(body, dense=False), inputs)
    return jsonfmt.decode_inputs(req, inputs), usual


def _img_body(rows: int, fmt: str = "{}", key: str = "instances", extra: str = "", ints: bool = False) -> bytes:
    rng = np.random.default_rng(rows)
    vals = rng.integers(-999, 999, (rows, 8, 8, 3))
    vals = vals if ints else vals / 100.0
    text = str(vals.tolist()).replace(" ", "")
    return ("{" + extra + f'"{key}": ' + fmt.format(text) + "}").encode()


@pytest.mark.parametrize("body", [
    _img_body(1),
    _img_body(3),
    _img_body(2, extra='"signature_name": "serving_default", '),
    _img_body(2, key="inputs"),
    _img_body(2).replace(b",", b" ,\n ").replace(b"[", b"[ "),
    _img_body(2).replace(b"0.1", b"1e-1").replace(b"-0.2", b"-2E-1"),
])
def test_dense_body_equals_usual_path(body: bytes) -> None:
    req = jsonfmt.parse_predict(body)
    assert req.dense is not None  # this body takes the dense path
    dense, usual = _both(body, IMG)
    assert dense["x"].dtype == usual["x"].dtype == np.float32
    assert dense["x"].shape == usual["x"].shape
    np.testing.assert_array_equal(dense["x"], usual["x"])


@pytest.mark.parametrize("tail,sig", [
    (b', "signature_name": "s]}"}', "s]}"),
    (b' ,\n "signature_name" : "sig"  }\n\n', "sig"),
    (b"}" + b" " * 1500, ""),  # trailing whitespace does not count against the tail window
    (b', "signature_name": "a"' + b" " * 2000 + b"}", "a"),  # found from the last "]", not the window
])
def test_dense_body_tails(tail: bytes, sig: str) -> None:
    body = _img_body(2)[:-1] + tail
    req = jsonfmt.parse_predict(body)
    assert req.dense is not None and req.signature_name == sig
    dense, usual = _both(body, IMG)
    np.testing.assert_array_equal(dense["x"], usual["x"])


def test_dense_body_signature_name_after_and_data_on_demand() -> None:
    body = _img_body(2)[:-1] + b', "signature_name": "sig"}'
    req = jsonfmt.parse_predict(body)
    assert (req.signature_name, req.columnar, req.dense is not None) == ("sig", False, True)
    assert np.array(req.data).shape == (2, 8, 8, 3)  # parsed the usual way when asked for


def test_dense_body_int_and_double_signatures() -> None:
    body = _img_body(2, ints=True)
    for dtype in (T.DT_INT32, T.DT_INT64, T.DT_DOUBLE):
        dense, usual = _both(body, {"x": spec("x", dtype, (-1, 8, 8, 3))})
        assert dense["x"].dtype == usual["x"].dtype
        np.testing.assert_array_equal(dense["x"], usual["x"])


@pytest.mark.parametrize("dtype,top", [(T.DT_FLOAT, 6), (T.DT_DOUBLE, 15)])
def test_dense_float_values_bit_exact(dtype: int, top: int) -> None:
    """simdjson's float64s equal orjson's, bit for bit: shortest-repr doubles over many exponents,
    subnormals, signed zeros, ints and exponent spellings (all small enough to stay on the dense
    path: a float signature's values past 2**24, a double's past 2**53, take the exact one)."""
    rng = np.random.default_rng(7)
    vals = rng.uniform(-1, 1, 1600) * 10.0 ** rng.integers(-45 if top == 6 else -320, top, 1600)
    tokens = [repr(float(v)) for v in vals] + [
        "-0.0", "-0", "0", "7", "-123456", "16777215", "1e-310", "4.9e-324", "1.17549435e-38",
        "2.5E+3", "1E2", "0.1", "0.30000000000000004", "1234567.123456789", "-9.999999e-41"]
    tokens = tokens[-1536:]
    rows = [tokens[i:i + 192] for i in range(0, 1536, 192)]
    body = ('{"instances": [' + ",".join("[" + ",".join(r) + "]" for r in rows) + "]}").encode()
    inputs = {"x": spec("x", dtype, (-1, 192))}
    req = jsonfmt.parse_predict(body)
    dense = _json_decode.decode_dense(req.dense, inputs)
    assert dense is not None  # decoded by the dense path itself, no fallback
    usual = jsonfmt.decode_inputs(jsonfmt.parse_predict(body, dense=False), inputs)
    assert dense["x"].dtype == usual["x"].dtype and dense["x"].shape == (8, 192)
    assert dense["x"].tobytes() == usual["x"].tobytes()  # -0.0 and subnormals included


def test_dense_mlp_row_takes_the_dense_path() -> None:
    """One row of 784 floats (the bench's mlp request) is parsed by the dense path."""
    row = np.round(np.random.default_rng(3).uniform(-1, 1, 784), 3)
    body = ('{"instances": [[' + ",".join(map(str, row.tolist())) + "]]}").encode()
    inputs = {"x": spec("x", T.DT_FLOAT, (-1, 784))}
    assert _json_decode.decode_dense(jsonfmt.parse_predict(body).dense, inputs) is not None
    dense, usual = _both(body, inputs)
    np.testing.assert_array_equal(dense["x"], usual["x"])
    np.testing.assert_array_equal(dense["x"], row.astype(np.float32).reshape(1, 784))


def _first_number(body: bytes, token: bytes) -> bytes:
    out = re.sub(rb"-?[0-9]+\.[0-9]+", token, body, count=1)
    assert out != body
    return out


def _ragged_body() -> bytes:
    """Dense [2,8,8,3]'s value count, but one pixel has 2 values and the next 4."""
    vals = (np.arange(2 * 8 * 8 * 3).reshape(2, 8, 8, 3) / 4).tolist()
    vals[0][0][1].append(vals[0][0][0].pop())
    return b'{"instances": ' + str(vals).replace(" ", "").encode() + b"}"


@pytest.mark.parametrize("body,inputs", [
    (_ragged_body(), IMG),
    (_img_body(1), {"x": spec("x", T.DT_INT32, (-1, 8, 8, 3))}),  # floats for an int signature
    (_first_number(_img_body(1), b"16777217"), IMG),  # an int a float cannot hold exactly
])
def test_dense_body_fallbacks_keep_messages(body: bytes, inputs: dict[str, TensorSpec]) -> None:
    assert jsonfmt.parse_predict(body).dense is not None
    with pytest.raises(ServingError) as usual:
        jsonfmt.decode_inputs(jsonfmt.parse_predict(body, dense=False), inputs)
    assert usual.value.code == Code.INVALID_ARGUMENT
    bad(body, inputs, usual.value.message)


@pytest.mark.parametrize("body", [
    _first_number(_img_body(1), b"true"),
    _first_number(_img_body(1), b'"s"'),
    _first_number(_img_body(1), b"NaN"),
    _img_body(1)[:-1] + b', "signature_name": "a", "signature_name": "b"}',
    _img_body(1)[:-1] + b', "other": 1}',
    b'{"instances": [[1.5, 2.5]]}',  # tiny: the usual parse is cheaper
    # A "]" in the name after the array, and the tail further back than the window searched.
    _img_body(1)[:-1] + b', "signature_name": "a]"' + b" " * 2000 + b"}",
])
def test_dense_path_declines(body: bytes) -> None:
    assert jsonfmt.parse_predict(body).dense is None


@pytest.mark.parametrize("body", [
    _img_body(1) + b"}",
    _img_body(1)[:-1],
    b"[" + _img_body(1) + b"]",
    _img_body(1)[:-2] + b"}",  # the array's last bracket missing
    _img_body(1).replace(b"]]]]", b"]]]]]", 1),
    _img_body(1).replace(b"[[[[", b"[[[[{", 1),
    _img_body(1).replace(b",", b",,", 1),
])
def test_dense_body_invalid_gets_the_usual_error(body: bytes) -> None:
    with pytest.raises(ServingError) as usual:
        jsonfmt.parse_predict(body, dense=False)
    assert usual.value.message.startswith(("JSON Parse error: ", "JSON Value: [\n    {"))
    bad(body, IMG, usual.value.message)


def test_dense_int_body_with_a_misplaced_bracket_gets_the_parse_error() -> None:
    """The bracket skeleton alone matches ``[ 7[,19]]``; the array must also be valid JSON."""
    body = b'{"instances": [[ 7[,19]]], "signature_name": "' + b"s" * 120 + b'"}'
    inputs = {"x": spec("x", T.DT_INT32, (-1, 2))}
    assert jsonfmt.parse_predict(body).dense is not None
    assert _json_decode.decode_dense(jsonfmt.parse_predict(body).dense, inputs) is None
    with pytest.raises(ServingError) as usual:
        jsonfmt.parse_predict(body, dense=False)
    assert usual.value.message.startswith("JSON Parse error: ")
    bad(body, inputs, usual.value.message)


def test_dense_int_body_equals_usual_path() -> None:
    body = _img_body(3, ints=True)
    inputs = {"x": spec("x", T.DT_INT64, (-1, 8, 8, 3))}
    assert _json_decode.decode_dense(jsonfmt.parse_predict(body).dense, inputs) is not None
    dense, usual = _both(body, inputs)
    assert dense["x"].dtype == usual["x"].dtype == np.int64
    np.testing.assert_array_equal(dense["x"], usual["x"])


@pytest.mark.parametrize("depth", [1100, 5000])
def test_deeply_nested_body_is_invalid_argument(depth: int) -> None:
    body = b'{"instances": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    bad(body, IMG, "JSON Parse error: The document is nested too deeply.")


def test_dense_body_malformed_number_gets_the_parse_error() -> None:
    body = _first_number(_img_body(1), b"0.1.2")
    assert jsonfmt.parse_predict(body).dense is not None
    with pytest.raises(ServingError) as info:
        decode(body, IMG)
    assert info.value.message.startswith("JSON Parse error: ")
