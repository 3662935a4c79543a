"""SavedModelServable's fast call paths give exactly what the public signature call gives."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aioserving.errors import Code, ServingError
from aioserving.servable import SavedModelServable


def _example(x: float, feature: str = "x") -> bytes:
    import tensorflow as tf

    ex = tf.train.Example()
    ex.features.feature[feature].float_list.value.append(x)
    return ex.SerializeToString()


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("half_plus_two", "serving_default", {"x": np.array([1.0, 3.0], np.float32)}),
    ("half_plus_two", "regress_x_to_y", {"inputs": np.array([_example(4.0)], object)}),
    ("tf2", "serving_default", {"x": np.array([1.0, -2.0], np.float32)}),
    ("tf2", "multi", {"a": np.array([[1.0, 2.0]], np.float32), "b": np.array([7], np.int64)}),
    ("tf2", "classify", {"examples": np.array([_example(2.0)], object)}),
    ("keras", "serving_default", {"x": np.array([[1.0, 2.0, 3.0]], np.float32)}),
    ("multi_io", "serving_default", {"a": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32),
                                     "b": np.array([[0.5, 0.5], [2.0, -1.0]], np.float32)}),
]


def _public(servable: SavedModelServable, key: str, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    fn = servable._fns[key]
    res = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in res.items()}


@pytest.mark.parametrize("model,key,given", CASES, ids=[f"{m}-{k}" for m, k, _ in CASES])
def test_fast_paths_equal_public_call(model_root: Path, model: str, key: str, given: dict[str, Any]) -> None:
    servable = SavedModelServable(model, 1, str(model_root / model / "1"))
    try:
        flat = servable._flat[key]
        # Every model built by the fixtures takes the direct-execute path.
        assert flat is not None and flat[0].__name__ == "direct"
        inputs = given
        keys = sorted(servable.signatures[key].outputs)
        want = _public(servable, key, inputs)
        assert sorted(want) == keys
        got = servable.run(key, inputs, keys)
        for k in keys:
            assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
            np.testing.assert_array_equal(got[k], want[k])
        # Without a fast path (the public keyword call) the result is the same.
        servable._flat[key] = None
        again = servable.run(key, inputs, keys)
        for k in keys:
            np.testing.assert_array_equal(again[k], want[k])
    finally:
        servable.close()


def test_call_flat_fallback_equal(model_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With TF's eager internals unavailable, the ``_call_flat`` path is used and agrees."""
    import tensorflow.python.eager.execute as execute

    monkeypatch.delattr(execute, "quick_execute")
    servable = SavedModelServable("tf2", 1, str(model_root / "tf2" / "1"))
    try:
        flat = servable._flat["serving_default"]
        assert flat is not None and flat[0].__name__ == "via_call_flat"
        got = servable.run("serving_default", {"x": np.array([1.5, 2.0], np.float32)}, ["y", "z"])
        np.testing.assert_array_equal(got["y"], np.array([3.0, 4.0], np.float32))
        np.testing.assert_array_equal(got["z"], np.array([2.5, 3.0], np.float32))
    finally:
        servable.close()


def test_runtime_error_maps_to_tf_status(model_root: Path) -> None:
    """A model error raised inside the direct call keeps TF's canonical code and first line."""
    servable = SavedModelServable("tf2", 1, str(model_root / "tf2" / "1"))
    try:
        with pytest.raises(ServingError) as err:
            servable.run("regress", {"examples": np.array([_example(1.0, feature="y")], object)}, ["outputs"])
        assert err.value.code == Code.INVALID_ARGUMENT
        assert "Feature: x (data type: float) is required but could not be found." in err.value.message
        assert "\n" not in err.value.message
    finally:
        servable.close()
