"""``python -m aioserving warmup``: write a warmup file from REST-style JSON requests.

Example::

    python -m aioserving warmup --model_dir models/half_plus_two/1 \\
        --request '{"instances": [1.0, 2.0]}' --request @more.json

writes ``models/half_plus_two/1/assets.extra/tf_serving_warmup_requests`` (or
``--out``): a TFRecord of ``PredictionLog``, one record per ``--request``.  The
JSON is the body of a REST ``:predict`` (or, with ``--api classify|regress``,
``:classify`` / ``:regress``) call; the version's SavedModel supplies the
signature's dtypes, as it does for the REST API.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["build_logs", "write_warmup_file", "main"]


def _signature_defs(model_dir: Path, tags: Sequence[str]) -> dict[str, Any]:
    from tensorflow.core.protobuf import saved_model_pb2

    from .errors import Code, ServingError

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((model_dir / "saved_model.pb").read_bytes())
    for mg in sm.meta_graphs:
        if set(mg.meta_info_def.tags) == set(tags):
            return dict(mg.signature_def)
    raise ServingError(Code.NOT_FOUND, f"No meta graph with tags {sorted(tags)} in {model_dir}")


def build_logs(model_dir: Path, requests: Sequence[bytes], *, api: str = "predict", model_name: str = "",
               signature_name: str = "", tags: Sequence[str] = ("serve",)) -> list[Any]:
    """REST JSON bodies → ``PredictionLog`` messages for the model in ``model_dir``."""
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    from . import jsonfmt, tensors
    from .errors import Code, ServingError
    from .signature import signature_from_proto

    sigdefs = _signature_defs(model_dir, tags)
    logs = []
    for body in requests:
        entry = prediction_log_pb2.PredictionLog()
        if api == "predict":
            parsed = jsonfmt.parse_predict(body)
            key = parsed.signature_name or signature_name or "serving_default"
            if key not in sigdefs:
                raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
            sig = signature_from_proto(key, sigdefs[key])
            req = entry.predict_log.request
            for alias, arr in jsonfmt.decode_inputs(parsed, sig.inputs).items():
                tensors.fill_proto(req.inputs[alias], arr, sig.inputs[alias].dtype, use_tensor_content=False)
        else:
            key, examples = jsonfmt.parse_examples(body)
            key = key or signature_name or "serving_default"
            req = getattr(entry, "classify_log" if api == "classify" else "regress_log").request
            for ex in examples:
                req.input.example_list.examples.append(example_pb2.Example.FromString(ex))
        req.model_spec.name = model_name
        req.model_spec.signature_name = key
        logs.append(entry)
    return logs


def write_warmup_file(out: Path, logs: Sequence[Any]) -> Path:
    """Write ``logs`` as a TFRecord file (at most 1000 records, as the server reads)."""
    import tensorflow as tf

    from .warmup import MAX_WARMUP_RECORDS

    if len(logs) > MAX_WARMUP_RECORDS:
        raise ValueError(f"at most {MAX_WARMUP_RECORDS} warmup records are replayed, got {len(logs)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(out)) as writer:
        for entry in logs:
            writer.write(entry.SerializeToString())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import ServingError
    from .warmup import WARMUP_FILE

    p = argparse.ArgumentParser(prog="aioserving warmup",
                                description="Write assets.extra/tf_serving_warmup_requests from JSON requests.")
    p.add_argument("--model_dir", type=Path, required=True, help="the version directory (holds saved_model.pb)")
    p.add_argument("--out", type=Path, help="output file (default: MODEL_DIR/" + WARMUP_FILE + ")")
    p.add_argument("--request", action="append", required=True,
                   help="a REST request body as JSON, or @FILE holding one (repeatable)")
    p.add_argument("--api", choices=("predict", "classify", "regress"), default="predict")
    p.add_argument("--model_name", default="", help="model_spec.name in the logged requests")
    p.add_argument("--signature_name", default="", help="signature when the JSON names none")
    p.add_argument("--saved_model_tags", default="serve")
    args = p.parse_args(argv)
    bodies = [Path(r[1:]).read_bytes() if r.startswith("@") else r.encode() for r in args.request]
    tags = [t.strip() for t in args.saved_model_tags.split(",") if t.strip()]
    try:
        logs = build_logs(args.model_dir, bodies, api=args.api, model_name=args.model_name,
                          signature_name=args.signature_name, tags=tags)
        out = write_warmup_file(args.out or args.model_dir / WARMUP_FILE, logs)
    except (ServingError, OSError, ValueError) as exc:
        print(f"aioserving warmup: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    print(f"Wrote {len(logs)} warmup records to {out}")
    return 0
