"""aiohttp REST routes, TF Serving's URL scheme and JSON.

One route (``/v1/...``, matched case-insensitively like TF Serving) dispatches
to the core.  Its wrapper is the single place where REST maps errors to HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import unquote

import orjson
from aiohttp import web

from . import jsonfmt
from .core import ServingCore, Spec
from .errors import Code, ServingError, http_status, truncate_message
from .observe import CURRENT_RECORD, Observer, RequestRecord, new_request_id
from .protojson import metadata_json, status_json
from .protos_util import fill_model_spec, status_response

if TYPE_CHECKING:
    import numpy as np

    from .signature import SignatureInfo

__all__ = ["RestApi", "error_body", "JSON"]

log = logging.getLogger(__name__)

JSON = "application/json"
_OFFLOAD_BYTES = 256 * 1024  # decode/encode bodies larger than this in an executor

_PREDICT_RE = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(-?\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.I)
_STATUS_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(-?\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.I)

_HTTP_CODES = {408: Code.DEADLINE_EXCEEDED, 413: Code.RESOURCE_EXHAUSTED}
_GZIP_MIN_BYTES = 1024  # smaller replies are not worth compressing
_CORS_METHODS = "POST, GET, OPTIONS"
_CORS_HEADERS = "Content-Type"

ExtraRoute = Callable[[web.Request, RequestRecord], Awaitable[web.StreamResponse]]


def error_body(message: str) -> bytes:
    """TF Serving's ``{ "error": "<message>" }`` layout, JSON-escaped."""
    return b'{ "error": ' + orjson.dumps(truncate_message(message)) + b" }"


def _version(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ServingError(Code.INVALID_ARGUMENT, f"Failed to convert version: {text} to numeric.") from None


class RestApi:
    """The ``/v1/`` dispatcher.  ``extra_routes`` maps (METHOD, lowercase path) to handlers."""

    def __init__(self, core: ServingCore, observer: Observer, *, timeout_ms: int,
                 max_body: int, executor: Any = None) -> None:
        self.core = core
        self.observer = observer
        self.timeout_s = timeout_ms / 1000.0 if timeout_ms > 0 else None
        self.max_body = max_body
        self.executor = executor
        self.extra_routes: dict[tuple[str, str], ExtraRoute] = {}
        #: Set by the Server: bearer/host auth (None = off) and the body read timeout.
        self.auth: Any = None
        self.read_timeout_s: float | None = None
        #: --rest_api_enable_cors_support: None = off; () = any origin ("*"); else the allowed origins.
        self.cors_origins: tuple[str, ...] | None = None

    def add_route(self, method: str, path: str, handler: ExtraRoute) -> None:
        self.extra_routes[(method.upper(), path.lower())] = handler


    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        start = time.perf_counter()
        rid = request.headers.get("x-request-id") or new_request_id()
        rec = RequestRecord(transport="REST", api="", peer=request.remote or "", request_id=rid)
        token = CURRENT_RECORD.set(rec)
        cors = self._cors_headers(request)
        try:
            if cors is not None and request.method == "OPTIONS":
                resp = web.Response(status=200)  # a CORS preflight: the headers are the answer
            else:
                resp = await self._route(request, rec)
        except ServingError as exc:
            rec.code = exc.code
            resp = web.Response(status=http_status(exc.code), body=error_body(exc.message), content_type=JSON)
            if exc.code == Code.UNAUTHENTICATED:
                resp.headers["WWW-Authenticate"] = "Bearer"
        except asyncio.CancelledError:
            # The client went away (or the server is stopping): nobody reads a reply,
            # but the request is still counted and logged, as TF Serving's 499.
            rec.code = Code.CANCELLED
            rec.http_status = http_status(Code.CANCELLED)
            rec.latency_s = time.perf_counter() - start
            self.observer.on_request(rec)
            raise
        except web.HTTPException as exc:
            rec.code = _HTTP_CODES.get(exc.status) or (Code.INVALID_ARGUMENT if exc.status < 500 else Code.INTERNAL)
            # 413's text says which limit was passed ("Maximum request body size N exceeded, ...").
            message = exc.text if exc.status == 413 and exc.text else exc.reason
            resp = web.Response(status=exc.status, body=error_body(message), content_type=JSON)
            if exc.status == 408:
                resp.force_close()  # the rest of the body may still be on its way
        except Exception:  # noqa: BLE001 - never leak a traceback to the client
            log.exception("unexpected error serving %s %s", request.method, request.path)
            rec.code = Code.INTERNAL
            resp = web.Response(status=500, body=error_body("Internal error"), content_type=JSON)
        finally:
            rec.latency_s = time.perf_counter() - start
            CURRENT_RECORD.reset(token)
        rec.http_status = resp.status
        resp.headers["x-request-id"] = rid
        if cors:
            resp.headers.update(cors)
        if (isinstance(resp, web.Response) and resp.body is not None and len(resp.body) > _GZIP_MIN_BYTES  # type: ignore[arg-type]
                and "gzip" in request.headers.get("Accept-Encoding", "").lower()):
            resp.enable_compression(web.ContentCoding.gzip)  # large bodies are compressed off the loop
        if isinstance(resp, web.Response) and resp.body is not None:
            rec.bytes_out = len(resp.body)  # type: ignore[arg-type]
        self.observer.on_request(rec)
        return resp

    async def _read_body(self, request: web.Request, rec: RequestRecord) -> bytes:
        if self.read_timeout_s is None or request.content.is_eof():
            body = await request.read()  # the usual case: the body came with the headers
        else:
            try:
                body = await asyncio.wait_for(request.read(), self.read_timeout_s)
            except asyncio.TimeoutError:
                raise web.HTTPRequestTimeout(
                    reason=f"Request body not received within {self.read_timeout_s:g} seconds") from None
        rec.bytes_in = len(body)
        # aiohttp has already decoded a gzip/deflate Content-Encoding; the app's
        # client_max_size bounds the decoded size (413 past it).  An embedding
        # host may allow more, so check --rest_max_request_bytes here as well.
        if len(body) > self.max_body:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body, actual_size=len(body))
        return body

    def _cors_headers(self, request: web.Request) -> dict[str, str] | None:
        """TF Serving's CORS headers; with an origin list, only a listed Origin is echoed."""
        if self.cors_origins is None:
            return None
        if not self.cors_origins:
            origin = "*"
        else:
            origin = request.headers.get("Origin", "")
            if origin not in self.cors_origins:
                return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": _CORS_METHODS,
                "Access-Control-Allow-Headers": _CORS_HEADERS, **({"Vary": "Origin"} if origin != "*" else {})}

    async def _route(self, request: web.Request, rec: RequestRecord) -> web.StreamResponse:
        method = request.method
        raw_path = request.rel_url.raw_path
        if self.auth is not None:
            await self.auth.require_rest(raw_path, request.headers)
        extra = self.extra_routes.get((method, raw_path.lower().rstrip("/")))
        if extra is not None:
            return await extra(request, rec)
        m = _PREDICT_RE.fullmatch(raw_path)
        if method == "POST" and m:
            name, ver, label, verb = m.groups()
            spec = Spec(name=unquote(name), version=_version(ver), label=unquote(label) if label else None)
            rec.model = spec.name
            verb = verb.lower()
            rec.api = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}[verb]
            body = await self._read_body(request, rec)
            deadline = asyncio.get_running_loop().time() + self.timeout_s if self.timeout_s else None
            if verb == "predict":
                return await self._predict(spec, body, deadline, rec)
            return await self._examples(verb, spec, body, deadline, rec)
        m = _STATUS_RE.fullmatch(raw_path)
        if method == "GET" and m:
            name, ver, label, sub = m.groups()
            if not name:
                rec.api = "GetModelStatus"
                raise ServingError(Code.INVALID_ARGUMENT, "Missing model name in request.")
            spec = Spec(name=unquote(name), version=_version(ver), label=unquote(label) if label else None)
            rec.model = spec.name
            if sub:
                rec.api = "GetModelMetadata"
                model_name, version, sigdefs = self.core.metadata(spec)
                rec.version = version
                from tensorflow_serving.apis import model_pb2

                ms = model_pb2.ModelSpec()
                fill_model_spec(ms, model_name, version, "")
                return web.Response(body=metadata_json(ms, sigdefs), content_type=JSON)
            rec.api = "GetModelStatus"
            entries = self.core.manager.status(spec.name, spec.version, spec.label)
            return web.Response(body=status_json(status_response(entries)), content_type=JSON)
        raise ServingError(Code.INVALID_ARGUMENT, f"Malformed request: {method} {raw_path}")

    async def _offload(self, size: int, fn: Callable[..., Any], *args: Any) -> Any:
        if size > _OFFLOAD_BYTES:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        return fn(*args)

    async def _predict(self, spec: Spec, body: bytes, deadline: float | None,
                       rec: RequestRecord) -> web.Response:
        # Large bodies are parsed, and their values decoded once the core knows the signature,
        # in the executor; small ones on the loop.
        req = await self._offload(len(body), jsonfmt.parse_predict, body)
        spec = Spec(spec.name, spec.version, spec.label, req.signature_name)
        large = len(body) > _OFFLOAD_BYTES

        def decode(sig: SignatureInfo) -> dict[str, np.ndarray] | Awaitable[dict[str, np.ndarray]]:
            if large:
                return asyncio.get_running_loop().run_in_executor(
                    self.executor, jsonfmt.decode_inputs, req, sig.inputs)
            return jsonfmt.decode_inputs(req, sig.inputs)

        result = await self.core.predict(spec, decode, deadline=deadline)
        rec.version, rec.signature = result.version, result.signature_name
        out = await self._offload(
            sum(a.nbytes for a in result.outputs.values()),
            jsonfmt.encode_predict, result.outputs, req.columnar, result.output_specs)
        return web.Response(body=out, content_type=JSON)

    async def _examples(self, verb: str, spec: Spec, body: bytes, deadline: float | None,
                        rec: RequestRecord) -> web.Response:
        signature_name, examples = await self._offload(len(body), jsonfmt.parse_examples, body)
        spec = Spec(spec.name, spec.version, spec.label, signature_name)
        rec.examples = len(examples)
        if verb == "classify":
            c = await self.core.classify(spec, examples, deadline=deadline)
            rec.version, rec.signature = c.version, c.signature_name
            return web.Response(body=jsonfmt.encode_classify(c.classes, c.scores), content_type=JSON)
        r = await self.core.regress(spec, examples, deadline=deadline)
        rec.version, rec.signature = r.version, r.signature_name
        return web.Response(body=jsonfmt.encode_regress(r.values), content_type=JSON)
