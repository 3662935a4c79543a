"""Build the bench models and measure raw in-process TF throughput (run as a subprocess).

``python -m bench.tfwork --models-dir D --models a,b --raw-seconds S --out F``

Writes JSON to F: per model the signature facts the load generators need, the expected output for
the sample request, and the raw numbers: per-call µs at batch 1 and rows/s at batch 1 and 8..128.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib
import inspect
import json
import os
import shutil
import time
from typing import Any, Callable, Iterator

import numpy as np
import psutil
import tensorflow as tf

from bench import builders

# "cnn" is the heavier CNN (about the brief's reference: ~200-300 images/s on 2 cores), so the
# served-vs-raw ratio measures serving overhead, not JSON parsing of a trivially cheap model.
_BUILDERS = {"half_plus_two": "build_half_plus_two", "mlp": "build_mlp", "cnn": "build_cnn_large"}


def _builder(name: str) -> tuple[Callable[[str], None], str]:
    """Prefer tests.models (the project's shared builders); fall back to bench.builders."""
    attr = _BUILDERS[name]
    try:
        mod = importlib.import_module("tests.models")
        fn = getattr(mod, attr, None)
        if fn is not None:
            return fn, "tests.models"
    except Exception:  # noqa: BLE001 - any import problem means "not available yet"
        pass
    return getattr(builders, attr), "bench.builders"


def _build(models_dir: str, name: str) -> tuple[str, str]:
    fn, source = _builder(name)
    # Rebuild when the builder's module changes (layer sizes are module constants).
    with open(inspect.getsourcefile(fn) or "", "rb") as f:
        source = f"{source} {hashlib.sha256(f.read()).hexdigest()[:16]}"
    base = os.path.join(models_dir, name)
    path = os.path.join(base, "1")
    marker = os.path.join(base, ".builder")
    current = open(marker).read().strip() if os.path.exists(marker) else ""
    if current != source or not os.path.exists(os.path.join(path, "saved_model.pb")):
        # Build beside, then swap in, so a reader never sees a half-written SavedModel.
        tmp = f"{base}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        fn(os.path.join(tmp, "1"))
        with open(os.path.join(tmp, ".builder"), "w") as f:
            f.write(source)
        shutil.rmtree(base, ignore_errors=True)
        os.replace(tmp, base)
    return path, source


@contextlib.contextmanager
def _lock(path: str) -> Iterator[None]:
    """Serialize model builds between bench runs started at the same time."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _time_calls(fn: Callable[[], Any], seconds: float) -> tuple[int, float, list[float]]:
    for _ in range(20):
        fn()
    n = 0
    lat: list[float] = []
    start = time.perf_counter()
    end = start + seconds
    now = start
    while now < end:
        t0 = time.perf_counter()
        fn()
        now = time.perf_counter()
        lat.append(now - t0)
        n += 1
    return n, now - start, lat


def _measure(sig: Any, input_name: str, sample: np.ndarray, seconds: float,
             batch_sizes: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"batches": {}}
    for b in [1] + batch_sizes:
        x = tf.constant(np.repeat(sample, b, axis=0))
        n, elapsed, lat = _time_calls(lambda: sig(**{input_name: x}), seconds)
        rows_s = n * b / elapsed
        out["batches"][str(b)] = {"calls": n, "rows_per_s": rows_s,
                                  "call_us_p50": float(np.percentile(lat, 50) * 1e6)}
    out["batch1_call_us"] = out["batches"]["1"]["call_us_p50"]
    out["batch1_rows_per_s"] = out["batches"]["1"]["rows_per_s"]
    best = max(out["batches"].items(), key=lambda kv: kv[1]["rows_per_s"])
    out["best_batch"] = int(best[0])
    out["best_rows_per_s"] = best[1]["rows_per_s"]
    return out


def _sample(shape: list[int]) -> np.ndarray:
    rng = np.random.default_rng(7)
    # Values with few digits keep the JSON body short and exactly representable-ish.
    return np.round(rng.uniform(-1, 1, size=[1] + shape), 3).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--raw-seconds", type=float, default=1.0)
    ap.add_argument("--batch-sizes", default="8,16,32,64,128")
    ap.add_argument("--bodies-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    os.makedirs(args.models_dir, exist_ok=True)
    bodies = args.bodies_dir
    os.makedirs(bodies, exist_ok=True)
    result: dict[str, Any] = {"tf_version": tf.__version__, "models": {}}
    loaded_keep = []
    names = args.models.split(",")
    with _lock(os.path.join(args.models_dir, ".lock")):
        built = {name: _build(args.models_dir, name) for name in names}
    for name in names:
        path, source = built[name]
        loaded = tf.saved_model.load(path)
        loaded_keep.append(loaded)
        sig = loaded.signatures["serving_default"]
        inputs = sig.structured_input_signature[1]
        if len(inputs) != 1:
            raise SystemExit(f"{name}: bench needs exactly one input, got {sorted(inputs)}")
        input_name, spec = next(iter(inputs.items()))
        outputs = sig.structured_outputs
        output_name = sorted(outputs)[0]
        inst_shape = [int(d) for d in spec.shape[1:]]
        sample = _sample(inst_shape)
        expected = sig(**{input_name: tf.constant(sample)})[output_name].numpy()
        np.save(os.path.join(bodies, f"{name}.npy"), sample)
        body_path = os.path.join(bodies, f"{name}.json")
        with open(body_path, "w") as f:
            instances = sample.astype(np.float64).round(3).tolist()
            json.dump({"instances": instances}, f, separators=(",", ":"))
        raw = _measure(sig, input_name, sample, args.raw_seconds, batch_sizes)
        result["models"][name] = {
            "path": os.path.abspath(path),
            "base_path": os.path.abspath(os.path.dirname(path)),
            "builder": source,
            "input": input_name,
            "input_dtype": spec.dtype.name,
            "instance_shape": inst_shape,
            "output": output_name,
            "expected": expected.reshape(-1).tolist(),
            "body_json": os.path.abspath(body_path),
            "body_npy": os.path.abspath(os.path.join(bodies, f"{name}.npy")),
            "body_bytes": os.path.getsize(body_path),
            "raw": raw,
        }
    result["rss_tf_plus_models"] = psutil.Process().memory_info().rss
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
