"""The protocol-agnostic data plane.

Both transports decode their wire format into the calls below and encode what
they return; validation, routing, batching, deadlines and error codes are all
decided here, once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Sequence

import numpy as np

from .errors import Code, ServingError
from .manager import Lease, ModelManager
from .observe import CURRENT_RECORD
from .signature import DATATYPE_OF_NUMPY, NUMPY_DTYPES, SignatureInfo, TensorSpec, dtype_name

if TYPE_CHECKING:
    from .batching import BatchingParameters, BatchScheduler

__all__ = ["ServingCore", "Spec", "PredictResult", "ClassifyResult", "RegressResult",
           "DEFAULT_SIGNATURE", "CLASSIFY_METHOD", "REGRESS_METHOD", "PREDICT_METHOD"]

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

Inputs = Mapping[str, np.ndarray]
# A transport's decoder: the inputs for the resolved signature, or an awaitable of them
# (REST decodes large bodies in an executor).
InputDecoder = Callable[[SignatureInfo], "dict[str, np.ndarray] | Awaitable[dict[str, np.ndarray]]"]


@dataclass(frozen=True, slots=True)
class Spec:
    """A request's model spec, before resolution."""

    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""


@dataclass(slots=True)
class PredictResult:
    name: str
    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]
    output_specs: Mapping[str, TensorSpec]


@dataclass(slots=True)
class ClassifyResult:
    name: str
    version: int
    signature_name: str
    classes: np.ndarray | None  # [batch, n] of bytes
    scores: np.ndarray | None  # [batch, n] float


@dataclass(slots=True)
class RegressResult:
    name: str
    version: int
    signature_name: str
    values: np.ndarray  # [batch] float


def _shape_ok(spec: TensorSpec, shape: tuple[int, ...]) -> bool:
    if spec.shape is None:
        return True
    if len(spec.shape) != len(shape):
        return False
    return all(d == -1 or d == s for d, s in zip(spec.shape, shape))


def _fmt_shape(shape: Sequence[int] | None) -> str:
    return "unknown rank" if shape is None else "[" + ",".join(str(d) for d in shape) + "]"


class ServingCore:
    """predict / classify / regress / multi_inference / metadata / status / reload."""

    def __init__(
        self,
        manager: ModelManager,
        executor: Executor,
        *,
        scheduler: BatchScheduler | None = None,
        batching: BatchingParameters | None = None,
        per_model_batching: Callable[[Lease], BatchingParameters | None] | None = None,
        method_name_check: bool = False,
    ) -> None:
        self.manager = manager
        self.executor = executor
        self.scheduler = scheduler
        self.batching = batching
        self._per_model_batching = per_model_batching
        self.method_name_check = method_name_check
        #: model name -> ``hook(lease, sig, inputs, outputs)`` after a successful Predict (payload logging).
        self.payload_hooks: dict[str, Callable[[Lease, SignatureInfo, Mapping[str, np.ndarray],
                                                Mapping[str, np.ndarray]], None]] = {}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def signature(lease: Lease, name: str) -> SignatureInfo:
        key = name or DEFAULT_SIGNATURE
        sig = lease.servable.signatures.get(key)
        if sig is None:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        return sig

    @staticmethod
    def validate_inputs(sig: SignatureInfo, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Same inputs, dtypes and compatible shapes as the signature (before any queueing)."""
        if set(inputs) != set(sig.inputs):
            sent, want = sorted(inputs), sorted(sig.inputs)
            extra = [k for k in sent if k not in sig.inputs]
            missing = [k for k in want if k not in inputs]
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"input size does not match signature: {len(sent)}!={len(want)} len({{{','.join(sent)}}}) "
                f"!= len({{{','.join(want)}}}). Sent extra: {{{','.join(extra)}}}. "
                f"Missing but required: {{{','.join(missing)}}}.")
        out: dict[str, np.ndarray] = {}
        for i, (alias, spec) in enumerate(sig.inputs.items()):
            arr = inputs[alias]
            want = NUMPY_DTYPES.get(spec.dtype)
            if want is None:
                raise ServingError(Code.UNIMPLEMENTED,
                                   f"Input '{alias}' has dtype {dtype_name(spec.dtype)}, which is not supported")
            if arr.dtype != want:
                got = _np_dtype_name(arr.dtype)
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    f"Expects arg[{i}] to be {dtype_name(spec.dtype)} but {got} is provided"
                    + _signature_inputs(sig))
            if not _shape_ok(spec, arr.shape):
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    f"Input '{alias}' has shape {_fmt_shape(arr.shape)} which is incompatible with the "
                    f"signature's {_fmt_shape(spec.shape)}." + _signature_inputs(sig))
            out[alias] = arr
        return out

    @staticmethod
    def output_keys(sig: SignatureInfo, output_filter: Sequence[str]) -> list[str]:
        if not output_filter:
            return list(sig.outputs)
        seen: set[str] = set()
        for alias in output_filter:
            if alias not in sig.outputs:
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                    f"set {{{','.join(sorted(sig.outputs))}}}.")
            if alias in seen:
                raise ServingError(Code.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        return list(output_filter)

    def _batching_for(self, lease: Lease, sig: SignatureInfo) -> BatchingParameters | None:
        if self.scheduler is None:
            return None
        params = self._per_model_batching(lease) if self._per_model_batching else None
        params = params or self.batching
        if params is None:
            return None
        # Batching needs dim 0 to be a batch dimension on every input and output.
        if not all(s.batched for s in sig.inputs.values()) or not all(s.batched for s in sig.outputs.values()):
            return None
        return params

    async def run(
        self,
        lease: Lease,
        sig: SignatureInfo,
        inputs: dict[str, np.ndarray],
        output_keys: Sequence[str],
        deadline: float | None,
    ) -> dict[str, np.ndarray]:
        """Run a validated request, through the batch queue when batching applies."""
        loop = asyncio.get_running_loop()
        params = self._batching_for(lease, sig)
        if params is not None and inputs:
            # The scheduler checks that every input has the same dim 0 (TF's message).
            key = (id(lease.entry), sig.key,
                   tuple((k, a.shape[1:]) for k, a in inputs.items()) if not params.pad_variable_length_inputs else ())
            run = functools.partial(lease.servable.run, sig.key, output_keys=list(sig.outputs))
            t0 = time.perf_counter()
            outs = await self.scheduler.submit(key, params, run, inputs, deadline=deadline)  # type: ignore[union-attr]
            rec = CURRENT_RECORD.get()
            if rec is not None:  # like TF Serving's batching session, runtime includes the queue wait
                rec.runtime_s += time.perf_counter() - t0
                rec.batch_size = next(iter(inputs.values())).shape[0]
            return {k: outs[k] for k in output_keys}
        submitted = time.perf_counter()
        fut = loop.run_in_executor(self.executor, _timed, lease.servable.run, sig.key, inputs, list(output_keys))
        if deadline is None:
            outs, t0, t1 = await fut
        else:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                outs, t0, t1 = await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline exceeded") from None
        rec = CURRENT_RECORD.get()
        if rec is not None:
            rec.queue_s += t0 - submitted
            rec.runtime_s += t1 - t0
            for a in inputs.values():
                rec.batch_size = a.shape[0] if a.ndim else 1
                break
        return outs

    # ------------------------------------------------------------------ Predict
    async def predict(
        self,
        spec: Spec,
        inputs: Inputs | InputDecoder,
        *,
        output_filter: Sequence[str] = (),
        deadline: float | None = None,
    ) -> PredictResult:
        with self.manager.acquire(spec.name, spec.version, spec.label) as lease:
            sig = self.signature(lease, spec.signature_name)
            raw = (await _decode(inputs, sig)) if callable(inputs) else inputs
            feeds = self.validate_inputs(sig, raw)
            keys = self.output_keys(sig, output_filter)
            outs = await self.run(lease, sig, feeds, keys, deadline)
            hook = self.payload_hooks.get(lease.name)
            if hook is not None:
                hook(lease, sig, feeds, outs)
            return PredictResult(lease.name, lease.version, sig.key, outs, sig.outputs)

    # ------------------------------------------------------------------ Classify / Regress
    # TF Serving's classifier.cc / regressor.cc / multi_inference.cc, with one
    # deliberate relaxation (COMPAT.md): the single string input may have any
    # alias, not only "inputs", so TF2 signatures over serialized examples work.
    def _example_signature(self, lease: Lease, name: str, method: str) -> tuple[SignatureInfo, TensorSpec]:
        """Look up and check a classify/regress signature before anything runs."""
        key = name or DEFAULT_SIGNATURE
        sig = lease.servable.signatures.get(key)
        if sig is None:
            raise ServingError(Code.INVALID_ARGUMENT, f"No signature was found with the name: {key}")
        self._check_example_signature(lease, sig, method)
        return sig, next(iter(sig.inputs.values()))

    def _check_example_signature(self, lease: Lease, sig: SignatureInfo, method: str) -> None:
        api = "classification" if method == CLASSIFY_METHOD else "regression"
        if self.method_name_check and sig.method_name != method:
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"Expected {api} signature method_name to be {method}. Was: {sig.method_name}")
        if len(sig.inputs) != 1:
            raise ServingError(Code.INVALID_ARGUMENT, "Expected one input Tensor.")
        if method == CLASSIFY_METHOD:
            if len(sig.outputs) not in (1, 2):
                raise ServingError(Code.INVALID_ARGUMENT,
                                   f"Expected one or two output Tensors, found {len(sig.outputs)}")
            if "classes" not in sig.outputs and "scores" not in sig.outputs:
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    'Expected classification signature outputs to contain at least one of "classes" or '
                    f'"scores". Signature was: {_debug_string(lease, sig.key)}')
        else:
            if len(sig.outputs) != 1:
                raise ServingError(Code.INVALID_ARGUMENT, "Expected one output Tensor.")
            if "outputs" not in sig.outputs:
                raise ServingError(Code.INVALID_ARGUMENT,
                                   f"No regression outputs found in SignatureDef: {_debug_string(lease, sig.key)}")
        spec = next(iter(sig.inputs.values()))
        from tensorflow.core.framework import types_pb2
        if spec.dtype != types_pb2.DT_STRING or (spec.shape is not None and len(spec.shape) != 1):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Expected the {api} signature's input to take serialized tf.Examples (string [-1]); "
                f"signature {sig.key} has {spec.describe()}")

    @staticmethod
    def _examples_tensor(examples: Sequence[bytes]) -> np.ndarray:
        if not examples:
            raise ServingError(Code.INVALID_ARGUMENT, "Input is empty.")
        arr = np.empty(len(examples), dtype=object)
        arr[:] = list(examples)
        return arr

    async def classify(self, spec: Spec, examples: Sequence[bytes], *, deadline: float | None = None) -> ClassifyResult:
        with self.manager.acquire(spec.name, spec.version, spec.label) as lease:
            sig, in_spec = self._example_signature(lease, spec.signature_name, CLASSIFY_METHOD)
            arr = self._examples_tensor(examples)
            outs = await self.run(lease, sig, {in_spec.alias: arr}, list(sig.outputs), deadline)
            return _classify_result(lease, sig, len(examples), outs)

    async def regress(self, spec: Spec, examples: Sequence[bytes], *, deadline: float | None = None) -> RegressResult:
        with self.manager.acquire(spec.name, spec.version, spec.label) as lease:
            sig, in_spec = self._example_signature(lease, spec.signature_name, REGRESS_METHOD)
            arr = self._examples_tensor(examples)
            outs = await self.run(lease, sig, {in_spec.alias: arr}, list(sig.outputs), deadline)
            return _regress_result(lease, sig, len(examples), outs)

    async def multi_inference(self, tasks: Sequence[tuple[Spec, str]], examples: Sequence[bytes], *,
                              deadline: float | None = None) -> list[ClassifyResult | RegressResult]:
        """Several classify/regress tasks (spec, method_name) on one model and one input.

        Validated in TF Serving's order; the servable comes from the first
        task's spec.  TF Serving runs all tasks in one session run; signatures
        here are separate functions, so each task runs once, concurrently.
        """
        first = tasks[0][0] if tasks else Spec(name="")
        with self.manager.acquire(first.name, first.version, first.label) as lease:
            model_name = ""
            input_name = ""
            seen: set[str] = set()
            plan: list[tuple[SignatureInfo, TensorSpec, str]] = []
            for s, method in tasks:
                if not s.name:
                    raise ServingError(Code.INVALID_ARGUMENT, "Found ModelSpec with an empty model name.")
                if not model_name:
                    model_name = s.name
                elif s.name != model_name:
                    raise ServingError(Code.INVALID_ARGUMENT,
                                       "All ModelSpecs in a MultiInferenceRequest must access the same model name.")
                key = s.signature_name or DEFAULT_SIGNATURE
                if key in seen:
                    raise ServingError(Code.INVALID_ARGUMENT, f"Duplicate evaluation of signature: {key}")
                seen.add(key)
                sig = lease.servable.signatures.get(key)
                if sig is None:
                    raise ServingError(Code.INVALID_ARGUMENT, f"Requested signature not found in model graph: {key}")
                if method not in (CLASSIFY_METHOD, REGRESS_METHOD):
                    raise ServingError(Code.UNIMPLEMENTED, f"Unsupported signature method_name: {method}")
                self._check_example_signature(lease, sig, method)
                in_spec = next(iter(sig.inputs.values()))
                if not input_name:
                    input_name = in_spec.name
                elif in_spec.name != input_name:
                    raise ServingError(Code.INVALID_ARGUMENT, "Input tensor must be the same for all Signatures.")
                plan.append((sig, in_spec, method))
            arr = self._examples_tensor(examples)
            runs = [self.run(lease, sig, {in_spec.alias: arr}, list(sig.outputs), deadline)
                    for sig, in_spec, _ in plan]
            outputs = await asyncio.gather(*runs)
            n = len(examples)
            return [_classify_result(lease, sig, n, outs) if method == CLASSIFY_METHOD
                    else _regress_result(lease, sig, n, outs)
                    for (sig, _, method), outs in zip(plan, outputs)]

    # ------------------------------------------------------------------ metadata / status / reload
    def metadata(self, spec: Spec) -> tuple[str, int, Mapping[str, Any]]:
        """Resolved (name, version) and the MetaGraphDef's full SignatureDef map."""
        with self.manager.acquire(spec.name, spec.version, spec.label) as lease:
            return lease.name, lease.version, lease.servable.signature_defs


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """Run ``fn`` (in an executor thread) and say when it started and ended."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, t0, time.perf_counter()


def _np_dtype_name(dt: np.dtype) -> str:
    enum = DATATYPE_OF_NUMPY.get(dt)
    return dtype_name(enum) if enum is not None else str(dt)


def _debug_string(lease: Lease, key: str) -> str:
    """The SignatureDef in protobuf text format (TF Serving's ``DebugString()``)."""
    sigdef = lease.servable.signature_defs.get(key)
    return str(sigdef) if sigdef is not None else key


def _tf_dtype_enum_name(arr: np.ndarray) -> str:
    from tensorflow.core.framework import types_pb2

    enum = DATATYPE_OF_NUMPY.get(arr.dtype)
    return types_pb2.DataType.Name(enum) if enum is not None else str(arr.dtype)


def _classify_result(lease: Lease, sig: SignatureInfo, n: int, outs: Mapping[str, np.ndarray]) -> ClassifyResult:
    """PostProcessClassificationResult: shapes, dtypes and batch sizes as TF Serving checks them."""
    classes = outs.get("classes")
    scores = outs.get("scores")
    for what, arr, want in (("classes", classes, "DT_STRING"), ("scores", scores, "DT_FLOAT")):
        if arr is None:
            continue
        if arr.ndim != 2:
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"Expected Tensor shape: [batch_size num_classes] but got {_fmt_shape(arr.shape)}")
        got = _tf_dtype_enum_name(arr)
        if got != want:
            raise ServingError(Code.INVALID_ARGUMENT, f"Expected {what} Tensor of {want}. Got: {got}")
        if arr.shape[0] != n:
            raise ServingError(Code.INVALID_ARGUMENT,
                               f"Expected {what} output batch size of {n}. Got: {arr.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise ServingError(Code.INVALID_ARGUMENT,
                           f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} "
                           f"vs. {scores.shape[1]}")
    return ClassifyResult(lease.name, lease.version, sig.key, classes, scores)


def _regress_result(lease: Lease, sig: SignatureInfo, n: int, outs: Mapping[str, np.ndarray]) -> RegressResult:
    """PostProcessRegressionResult."""
    values = outs["outputs"]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise ServingError(Code.INVALID_ARGUMENT,
                           "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                           f"{_fmt_shape(values.shape)}")
    if values.shape[0] != n:
        raise ServingError(Code.INVALID_ARGUMENT,
                           f"Input batch size did not match output batch size: {n} vs. {values.shape[0]}")
    got = _tf_dtype_enum_name(values)
    if got != "DT_FLOAT":
        raise ServingError(Code.INVALID_ARGUMENT, f"Expected output Tensor of DT_FLOAT.  Got: {got}")
    return RegressResult(lease.name, lease.version, sig.key, values.reshape(-1))


def _signature_inputs(sig: SignatureInfo) -> str:
    """`` Signature inputs: x: float [-1, 3]; ...`` appended to TF Serving's own message."""
    return " Signature inputs: " + "; ".join(s.describe() for s in sig.inputs.values())


async def _decode(decoder: InputDecoder, sig: SignatureInfo) -> dict[str, np.ndarray]:
    """Run a transport's decoder; its INVALID_ARGUMENTs also name the signature's inputs."""
    try:
        out = decoder(sig)
        return out if isinstance(out, dict) else await out
    except ServingError as exc:
        # Messages about a missing named input already say which one is wanted.
        if (exc.code != Code.INVALID_ARGUMENT or "Signature inputs: " in exc.message
                or "named input" in exc.message):
            raise
        raise ServingError(exc.code, exc.message + _signature_inputs(sig)) from None
