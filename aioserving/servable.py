"""A loaded model version (a *servable*) and how to run its signatures.

Loading and running are blocking TensorFlow calls: they are only ever invoked
from executor threads, never on the event loop.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import Code, ServingError
from .signature import SignatureInfo, signature_from_proto

__all__ = ["Servable", "SavedModelServable", "load_servable", "INIT_OP_KEY"]

log = logging.getLogger(__name__)

INIT_OP_KEY = "__saved_model_init_op"


class Servable:
    """Base interface shared by SavedModel and TFLite servables."""

    name: str
    version: int
    path: str
    signatures: Mapping[str, SignatureInfo]
    #: The MetaGraphDef's full signature map (``SignatureDef`` protos), for metadata.
    signature_defs: Mapping[str, Any]

    def run(
        self, signature_key: str, inputs: Mapping[str, np.ndarray], output_keys: Sequence[str]
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Drop references to TF objects so their memory can be released."""


def _read_meta_graph(path: Path, tags: Sequence[str]) -> Any:
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / "saved_model.pb"
    sm = saved_model_pb2.SavedModel()
    if pb.exists():
        sm.ParseFromString(pb.read_bytes())
    else:
        from google.protobuf import text_format

        pbtxt = path / "saved_model.pbtxt"
        if not pbtxt.exists():
            raise ServingError(
                Code.NOT_FOUND,
                f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}",
            )
        text_format.Parse(pbtxt.read_text(), sm)
    wanted = set(tags)
    for mg in sm.meta_graphs:
        if set(mg.meta_info_def.tags) == wanted:
            return mg
    available = [",".join(mg.meta_info_def.tags) for mg in sm.meta_graphs]
    raise ServingError(
        Code.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {' '.join(sorted(wanted))} }}. "
        f"To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
        f"`saved_model_cli`. Available tag-sets: {available}",
    )


def _tf_error_to_serving(exc: BaseException) -> ServingError:
    """Map a TensorFlow runtime error to the canonical code TF reports."""
    import tensorflow as tf

    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        msg = exc.message.split("\n")[0] if exc.message else str(exc)
        return ServingError(Code(exc.error_code), msg)
    if isinstance(exc, (TypeError, ValueError)):
        return ServingError(Code.INVALID_ARGUMENT, str(exc).split("\n")[0])
    log.exception("unexpected error running a signature", exc_info=exc)
    return ServingError(Code.INTERNAL, f"{type(exc).__name__} while running the model")


def _flat_call(fn: Any) -> tuple[Any, list[str]] | None:
    """A fast entry point ``(call(input_tensors) -> {output key: tensor}, input names in call order)``,
    or None.

    Inputs are validated (names, dtypes, shapes) by the core before they get here, so the
    concrete function's structured-argument checks are skipped. Preferred: execute the
    signature's function by name the way TF's eager context does (``quick_execute``), which
    holds the GIL ~40 µs less per call than ``ConcreteFunction._call_flat`` (measured with
    half_plus_two and the mlp); both are private TF API, so when either is missing, an output
    is not a plain tensor, or the signature takes positional arguments, this falls back to
    ``_call_flat`` and then (None) to the public keyword call.
    """
    try:
        names = list(fn._arg_keywords)
        if fn._num_positional_args != 0 and len(names) != fn._num_positional_args:
            return None
        captured = list(fn.captured_inputs)
        call_flat = fn._call_flat
    except AttributeError:
        return None

    def via_call_flat(args: list[Any]) -> Any:
        return call_flat(args, captured)

    try:
        import itertools

        from tensorflow.python.eager import context, execute
        from tensorflow.python.util import nest

        atomic = fn._inference_function
        n_out = len(atomic.function_type.flat_outputs)
        if len(atomic.cached_definition.signature.input_arg) != len(names) + len(captured):
            return via_call_flat, names
        index = nest.pack_sequence_as(fn.structured_outputs, list(range(n_out)), expand_composites=True)
        if not isinstance(index, dict) or sorted(index.values()) != list(range(n_out)) or any(
            out.dtype._handle_data for out in atomic.function_type.flat_outputs
        ):
            return via_call_flat, names
        ctx = context.context()
        fname = atomic.name.decode()
        attrs = tuple(itertools.chain(*ctx.function_call_options.as_attrs().items()))
        quick = execute.quick_execute
        pairs = tuple(index.items())
    except Exception:  # noqa: BLE001 - any change in TF's internals: take the _call_flat path
        return via_call_flat, names

    def direct(args: list[Any]) -> dict[str, Any]:
        outs = quick(fname, n_out, args + captured, attrs, ctx)
        return {key: outs[i] for key, i in pairs}

    return direct, names


class SavedModelServable(Servable):
    """A TF1 (builder-style) or TF2 SavedModel loaded with ``tf.saved_model.load``."""

    def __init__(self, name: str, version: int, path: str, tags: Sequence[str] = ("serve",)) -> None:
        import tensorflow as tf

        self.name = name
        self.version = version
        self.path = path
        meta_graph = _read_meta_graph(Path(path), tags)
        self.signature_defs = dict(meta_graph.signature_def)
        self._loaded = tf.saved_model.load(path, tags=list(tags))
        self._fns: dict[str, Any] = {}
        self._flat: dict[str, Any] = {}
        sigs: dict[str, SignatureInfo] = {}
        for key, sig in self.signature_defs.items():
            if key == INIT_OP_KEY:
                continue
            fn = self._loaded.signatures.get(key) if hasattr(self._loaded, "signatures") else None
            if fn is None:
                continue
            self._fns[key] = fn
            self._flat[key] = _flat_call(fn)
            sigs[key] = signature_from_proto(key, sig)
        self.signatures = sigs
        self._tf = tf

    def run(
        self, signature_key: str, inputs: Mapping[str, np.ndarray], output_keys: Sequence[str]
    ) -> dict[str, np.ndarray]:
        flat = self._flat[signature_key]
        try:
            if flat is not None:
                # Inputs were validated (names, dtypes, shapes) by the core, so the
                # function's own structured-argument checks can be skipped.
                call, names = flat
                convert = self._tf.convert_to_tensor
                result = call([convert(inputs[n]) for n in names])
            else:
                result = self._fns[signature_key](**inputs)
        except BaseException as exc:  # noqa: BLE001 - mapped to a status for the client
            raise _tf_error_to_serving(exc) from None
        out: dict[str, np.ndarray] = {}
        for key in output_keys:
            value = result[key].numpy()
            if not isinstance(value, np.ndarray):
                value = np.asarray(value)
            out[key] = value
        return out

    def close(self) -> None:
        self._fns.clear()
        self._flat.clear()
        self._loaded = None
        gc.collect()


def load_servable(name: str, version: int, path: str, *, tags: Sequence[str] = ("serve",),
                  prefer_tflite: bool = False, tflite_options: Any = None) -> Servable:
    """Load one version directory (blocking; call from the loading executor)."""
    if prefer_tflite and os.path.exists(os.path.join(path, "model.tflite")):
        from .tflite import TfLiteServable  # optional backend

        return TfLiteServable(name, version, path, options=tflite_options)
    return SavedModelServable(name, version, path, tags)
