"""grpc.aio servicers: PredictionService and ModelService.

Each method only decodes the request, calls the core, and encodes the reply;
one wrapper maps every error to its gRPC status (HOUSE_STYLE §2).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, Awaitable, Callable

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from . import tensors
from .core import CLASSIFY_METHOD, ClassifyResult, ServingCore
from .errors import Code, ServingError, grpc_status, truncate_message
from .observe import CURRENT_RECORD, Observer, RequestRecord, new_request_id
from .protos_util import examples_from_input, fill_model_spec, spec_from_proto, status_response, tasks_from_multi

__all__ = ["PredictionServicer", "ModelServicer", "add_services"]

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any, grpc.aio.ServicerContext, RequestRecord], Awaitable[Any]]


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode()
    return ""


def _rpc(api: str) -> Callable[[Handler], Callable[..., Awaitable[Any]]]:
    """Run a servicer method with the shared error mapping and a request record."""

    def wrap(fn: Handler) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def method(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            observer = self._observer
            detailed = observer.detailed
            rid = _metadata_value(context, "x-request-id")
            rec = RequestRecord("GRPC", api)
            trailer: tuple[tuple[str, str], ...] = ()
            if rid or detailed:
                # Echoed in the trailers so it arrives with errors too: the client's own id,
                # or a generated one when the access log records it.
                rec.request_id = rid = rid or new_request_id()
                trailer = (("x-request-id", rid),)
                context.set_trailing_metadata(trailer)
            if detailed:
                rec.peer = context.peer() or ""
                rec.bytes_in = request.ByteSize()
            spec = getattr(request, "model_spec", None)
            if spec is not None:
                rec.model = spec.name
            token = CURRENT_RECORD.set(rec)
            try:
                resp = await fn(self, request, context, rec)
                if detailed:
                    rec.bytes_out = resp.ByteSize()
                return resp
            except ServingError as exc:
                rec.code = exc.code
                await context.abort(grpc_status(exc.code), truncate_message(exc.message), trailer)
            except grpc.aio.AbortError:
                raise
            except Exception:  # noqa: BLE001 - never leak a traceback to the client
                log.exception("unexpected error in %s", api)
                rec.code = Code.INTERNAL
                await context.abort(grpc.StatusCode.INTERNAL, f"Internal error in {api}", trailer)
            finally:
                CURRENT_RECORD.reset(token)
                rec.latency_s = time.perf_counter() - start
                observer.on_request(rec)

        return method

    return wrap


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    if remaining is None:
        return None
    return asyncio.get_running_loop().time() + remaining


def _fill_classification(result: ClassifyResult, out: Any) -> None:
    n = (result.scores if result.scores is not None else result.classes).shape[0]  # type: ignore[union-attr]
    for i in range(n):
        cls = out.classifications.add()
        width = (result.scores if result.scores is not None else result.classes).shape[1]  # type: ignore[union-attr]
        for j in range(width):
            c = cls.classes.add()
            if result.classes is not None:
                label = result.classes[i, j]
                c.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if result.scores is not None:
                c.score = float(result.scores[i, j])


def _fill_regression(result: Any, out: Any) -> None:
    for v in result.values.tolist():
        out.regressions.add().value = v


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: ServingCore, observer: Observer, *, tensor_content: bool = False) -> None:
        self._core = core
        self._observer = observer
        self._tensor_content = tensor_content

    @_rpc("Predict")
    async def Predict(self, request: Any, context: Any, rec: RequestRecord) -> Any:
        spec = spec_from_proto(request.model_spec)
        inputs = {k: tensors.to_ndarray(v) for k, v in request.inputs.items()}
        result = await self._core.predict(spec, inputs, output_filter=list(request.output_filter),
                                          deadline=_deadline(context))
        rec.version, rec.signature = result.version, result.signature_name
        resp = predict_pb2.PredictResponse()
        fill_model_spec(resp.model_spec, result.name, result.version, result.signature_name)
        outputs = resp.outputs
        for alias, arr in result.outputs.items():
            tensors.fill_proto(outputs[alias], arr, result.output_specs[alias].dtype,
                               use_tensor_content=self._tensor_content)
        return resp

    async def _on_examples(self, request: Any, context: Any, rec: RequestRecord,
                           run: Callable[..., Awaitable[Any]], response: Any) -> Any:
        """Classify/Regress: decode the Input, run it on the core, echo the resolved spec."""
        examples = examples_from_input(request.input)
        rec.examples = len(examples)
        result = await run(spec_from_proto(request.model_spec), examples, deadline=_deadline(context))
        rec.version, rec.signature = result.version, result.signature_name
        fill_model_spec(response.model_spec, result.name, result.version, result.signature_name)
        return result

    @_rpc("Classify")
    async def Classify(self, request: Any, context: Any, rec: RequestRecord) -> Any:
        resp = classification_pb2.ClassificationResponse()
        _fill_classification(await self._on_examples(request, context, rec, self._core.classify, resp), resp.result)
        return resp

    @_rpc("Regress")
    async def Regress(self, request: Any, context: Any, rec: RequestRecord) -> Any:
        resp = regression_pb2.RegressionResponse()
        _fill_regression(await self._on_examples(request, context, rec, self._core.regress, resp), resp.result)
        return resp

    @_rpc("MultiInference")
    async def MultiInference(self, request: Any, context: Any, rec: RequestRecord) -> Any:
        tasks = tasks_from_multi(request)
        if tasks:
            rec.model = tasks[0][0].name
        examples = examples_from_input(request.input)
        rec.examples = len(examples)
        results = await self._core.multi_inference(tasks, examples, deadline=_deadline(context))
        resp = inference_pb2.MultiInferenceResponse()
        for res in results:
            r = resp.results.add()
            fill_model_spec(r.model_spec, res.name, res.version, res.signature_name)
            if isinstance(res, ClassifyResult):
                _fill_classification(res, r.classification_result)
            else:
                _fill_regression(res, r.regression_result)
        return resp

    @_rpc("GetModelMetadata")
    async def GetModelMetadata(self, request: Any, context: Any, rec: RequestRecord) -> Any:
        spec = spec_from_proto(request.model_spec)
        if not spec.name:
            raise ServingError(Code.INVALID_ARGUMENT, "Missing model name in request.")
        fields = list(request.metadata_field)
        if not fields:
            raise ServingError(Code.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field")
        for f in fields:
            if f != "signature_def":
                raise ServingError(Code.INVALID_ARGUMENT, f"Metadata field {f} is not supported")
        name, version, sigdefs = self._core.metadata(spec)
        rec.version = version
        resp = get_model_metadata_pb2.GetModelMetadataResponse()
        fill_model_spec(resp.model_spec, name, version, None)
        sdm = get_model_metadata_pb2.SignatureDefMap()
        for k, v in sigdefs.items():
            sdm.signature_def[k].CopyFrom(v)
        resp.metadata["signature_def"].Pack(sdm)
        return resp


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: ServingCore, observer: Observer,
                 reload: Callable[[Any], Awaitable[None]]) -> None:
        self._core = core
        self._observer = observer
        self._reload = reload

    @_rpc("GetModelStatus")
    async def GetModelStatus(self, request: Any, context: Any, rec: RequestRecord) -> Any:
        spec = spec_from_proto(request.model_spec)
        return status_response(self._core.manager.status(spec.name, spec.version, spec.label))

    @_rpc("HandleReloadConfigRequest")
    async def HandleReloadConfigRequest(self, request: Any, context: Any, rec: RequestRecord) -> Any:
        from tensorflow_serving.apis import model_management_pb2

        # TF Serving returns a failed reload as the RPC's own status (ToGRPCStatus),
        # so a failure raises here and the wrapper maps it; success carries OK.
        await self._reload(request.config)
        return model_management_pb2.ReloadConfigResponse()


def add_services(server: grpc.aio.Server, core: ServingCore, observer: Observer,
                 reload: Callable[[Any], Awaitable[None]], *, tensor_content: bool = False) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core, observer, tensor_content=tensor_content), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core, observer, reload), server)
