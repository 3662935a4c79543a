"""Start a real aioserving instance in-process on free ports (the bound ports read back)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from aiohttp import web
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from aioserving import SERVER_KEY, ServerConfig, create_app
from aioserving.app import Server


@dataclass
class Running:
    runner: web.AppRunner
    server: Server
    rest_port: int
    grpc_port: int | None
    session: aiohttp.ClientSession
    channel: grpc.aio.Channel | None
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.rest_port}"

    @property
    def predict_stub(self) -> prediction_service_pb2_grpc.PredictionServiceStub:
        assert self.channel is not None
        return prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    @property
    def model_stub(self) -> model_service_pb2_grpc.ModelServiceStub:
        assert self.channel is not None
        return model_service_pb2_grpc.ModelServiceStub(self.channel)

    async def post(self, path: str, body: Any = None, *, data: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
        import json

        payload = data if data is not None else json.dumps(body).encode()
        async with self.session.post(self.url + path, data=payload, headers=headers) as r:
            raw = await r.read()
            return r.status, _json_or_none(raw), raw

    async def get(self, path: str) -> tuple[int, Any, bytes]:
        async with self.session.get(self.url + path) as r:
            raw = await r.read()
            return r.status, _json_or_none(raw), raw

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        await self.session.close()
        await self.runner.cleanup()


def _json_or_none(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return None


async def start_server(config: ServerConfig | None = None, *, wait_ready: bool = True,
                       auth_check: Any = None, **kw: Any) -> Running:
    """Serve on 127.0.0.1 with a free REST port and a free gRPC port.

    With TLS configured (``ssl_config_file`` / ``rest_ssl_cert``) REST is HTTPS and no
    client channel/session TLS is set up: the test brings its own credentials.
    """
    from aioserving.security import rest_ssl_context, runner_options

    base = dict(port=-1, rest_api_port=0, host="127.0.0.1", file_system_poll_wait_seconds=0)
    base.update(kw)
    config = (config or ServerConfig()).replace(**base)
    app = create_app(config, auth_check=auth_check)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, **runner_options(config))
    await runner.setup()
    ssl_ctx = rest_ssl_context(config)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_ctx)
    await site.start()
    rest_port = runner.addresses[0][1]
    server = app[SERVER_KEY]
    if wait_ready:
        await server.wait_ready(timeout=120)
    tls = server.ssl_config is not None
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") if server.grpc_port and not tls else None
    return Running(runner, server, rest_port, server.grpc_port, aiohttp.ClientSession(), channel,
                   "https" if ssl_ctx is not None else "http")


def write_config(path: Path, models: dict[str, Path], extra: str = "") -> Path:
    """A text-format ModelServerConfig serving ``models`` (name → base path)."""
    parts = []
    for name, base in models.items():
        parts.append(f'  config {{\n    name: "{name}"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n{extra}  }}\n')
    path.write_text("model_config_list {\n" + "".join(parts) + "}\n")
    return path


def run_bench(args: list[str], timeout_s: float) -> str:
    """Run ``python -m bench ARGS`` from the repository root; its output, after asserting rc 0.

    Past ``timeout_s`` the bench gets SIGTERM (it stops every process it started) and the
    test fails with the end of its output.
    """
    import os
    import subprocess
    import sys

    import pytest

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=root,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"bench {' '.join(args)} did not finish in {timeout_s:.0f} s:\n{out[-4000:]}")
    assert proc.returncode == 0, f"bench {' '.join(args)} failed (rc={proc.returncode}):\n{out[-6000:]}"
    return out
