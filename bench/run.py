"""Orchestrator: build models, measure raw TF, start each server, drive load from outside, report.

Nothing here imports TensorFlow; TF work happens in child processes (bench.tfwork, the servers).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import report
from bench.procs import ROOT, Children, Netns, ResourceSampler, free_port, run_capture, tree_rss

OUT = os.path.join(ROOT, "bench", "out")
MODELS_DIR = os.path.join(OUT, "models")
RUNS = os.path.join(OUT, "runs")
KEEP_RUNS = 5
MAX_STARTS = 3  # per server: first start plus restarts after an outside kill
KSERVE_VENV = os.path.join(ROOT, "bench", ".kserve-venv")
KSERVE_VERSION = "0.21.0"
MAIN_PY = sys.executable

# Hand-tuned TF Serving batching for this 2-core CPU box: one batch thread per core, batches up to
# the largest client concurrency we drive, and a short window so low concurrency is not starved.
TF_BATCHING = """max_batch_size { value: 64 }
batch_timeout_micros { value: 500 }
max_enqueued_batches { value: 256 }
num_batch_threads { value: 2 }
"""


@dataclass
class ServerSpec:
    key: str
    kind: str  # aioserving | naive | kserve | floor
    protocols: tuple[str, ...]
    batching: str = ""


@dataclass
class Cell:
    server: str
    model: str
    concurrency: int
    protocol: str
    rps: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    rss_peak: int = 0
    server_cpu_us: float = float("nan")  # server CPU (all cores) per answered request
    client_cpu_us: float = float("nan")  # load generator CPU per answered request
    note: str = ""


@dataclass
class ServerRun:
    spec: ServerSpec
    started: bool = False
    reason: str = ""
    startup_s: float = 0.0
    rss_idle_before: int = 0
    rss_peak: int = 0
    rss_idle_after: int = 0
    restarts: int = 0
    log: str = ""


@dataclass
class Settings:
    smoke: bool
    models: list[str]
    concurrency: list[int]
    protocols: list[str]
    servers: list[str]
    duration_s: float
    warmup_s: float
    raw_seconds: float
    batch_sizes: str
    budget_s: float
    batching_file: str
    startup_timeout_s: float = 180.0
    no_wrk: bool = False
    # --ab (bench/ab.py): all servers up at once, interleaved rounds over these (model, c) cells.
    ab: bool = False
    rounds: int = 3
    ab_out: str = ""
    ab_plan: list[tuple[str, int]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """Run-directory kind: smoke, ab or full."""
        return "smoke" if self.smoke else "ab" if self.ab else "full"


def _parse(argv: list[str] | None) -> Settings:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="≈10 s CI run: half_plus_two, c=4, 2 s")
    ap.add_argument("--models", default=None, help="comma list (half_plus_two,mlp,cnn)")
    ap.add_argument("--concurrency", default=None, help="comma list (1,16,64)")
    ap.add_argument("--protocols", default=None, help="comma list (rest,grpc)")
    ap.add_argument("--servers", default=None,
                    help="comma list of aioserving-off,aioserving-tf,aioserving-adaptive,naive,"
                         "kserve,floor")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per cell (8)")
    ap.add_argument("--warmup", type=float, default=None, help="warmup seconds per cell (2)")
    ap.add_argument("--raw-seconds", type=float, default=None, help="seconds per raw batch size")
    ap.add_argument("--batching-parameters", default="",
                    help="BatchingParameters file for aioserving-tf (default: a tuned one)")
    ap.add_argument("--budget", type=float, default=None,
                    help="wall-clock budget in seconds; later cells are skipped past it")
    ap.add_argument("--no-wrk", action="store_true",
                    help="use the aiohttp load generator for REST even if wrk is installed")
    ap.add_argument("--report", metavar="RESULTS_JSON", default="",
                    help="only re-render bench/RESULTS.md from a saved results.json")
    ap.add_argument("--ab", action="store_true",
                    help="interleaved A/B (bench/ab.py): every server up at once, --rounds short "
                         "windows per server and cell in rotating order, medians; writes "
                         "bench/AB.md")
    ap.add_argument("--rounds", type=int, default=3, help="--ab: rounds per cell (3)")
    ap.add_argument("--ab-out", default="",
                    help="--ab: write the report here instead of bench/AB.md (and the raw "
                         "windows beside it as .json)")
    a = ap.parse_args(argv)
    if a.report:
        raise _ReportOnly(a.report)
    if a.ab and a.smoke:
        ap.error("--ab and --smoke are separate modes")
    if (a.rounds != 3 or a.ab_out) and not a.ab:
        ap.error("--rounds and --ab-out only apply with --ab")
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")

    def lst(v: str | None, default: str) -> list[str]:
        return [x for x in (v or default).split(",") if x]

    if a.ab:
        from bench.ab import plan  # the cells the issue compares

        models = lst(a.models, "half_plus_two,mlp,cnn")
        concs = [int(c) for c in lst(a.concurrency, "")] or None
        cells = plan(models, concs)
        return Settings(
            smoke=False, models=models, concurrency=sorted({c for _, c in cells}),
            protocols=lst(a.protocols, "rest,grpc"),
            servers=lst(a.servers,
                        "aioserving-off,aioserving-tf,aioserving-adaptive,naive,kserve,floor"),
            duration_s=a.duration or 4.0, warmup_s=a.warmup if a.warmup is not None else 1.0,
            raw_seconds=a.raw_seconds or 1.0, batch_sizes="8,16,32,64,128",
            budget_s=a.budget or 18 * 60.0, batching_file=a.batching_parameters, no_wrk=a.no_wrk,
            ab=True, rounds=a.rounds, ab_out=a.ab_out, ab_plan=cells)

    if a.smoke:
        return Settings(
            smoke=True, models=lst(a.models, "half_plus_two"),
            concurrency=[int(c) for c in lst(a.concurrency, "4")],
            protocols=lst(a.protocols, "rest,grpc"), servers=lst(a.servers, "aioserving-off"),
            duration_s=a.duration or 2.0, warmup_s=a.warmup if a.warmup is not None else 0.5,
            raw_seconds=a.raw_seconds or 0.3, batch_sizes="8,128", budget_s=a.budget or 120.0,
            batching_file=a.batching_parameters, startup_timeout_s=90.0, no_wrk=a.no_wrk)
    return Settings(
        smoke=False, models=lst(a.models, "half_plus_two,mlp,cnn"),
        concurrency=[int(c) for c in lst(a.concurrency, "1,16,64")],
        protocols=lst(a.protocols, "rest,grpc"),
        servers=lst(a.servers,
                    "aioserving-off,aioserving-tf,aioserving-adaptive,naive,kserve,floor"),
        duration_s=a.duration or 8.0, warmup_s=a.warmup if a.warmup is not None else 2.0,
        raw_seconds=a.raw_seconds or 1.0, batch_sizes="8,16,32,64,128",
        budget_s=a.budget or 24 * 60.0, batching_file=a.batching_parameters, no_wrk=a.no_wrk)


_SPECS = {
    "aioserving-off": ServerSpec("aioserving-off", "aioserving", ("rest", "grpc"), "off"),
    "aioserving-tf": ServerSpec("aioserving-tf", "aioserving", ("rest", "grpc"), "tf"),
    "aioserving-adaptive": ServerSpec("aioserving-adaptive", "aioserving", ("rest", "grpc"),
                                      "adaptive"),
    "naive": ServerSpec("naive", "naive", ("rest",)),
    "kserve": ServerSpec("kserve", "kserve", ("rest", "grpc")),
    # Not a peer: the stack's own ceiling (aiohttp / grpc.aio with a prebuilt reply, no model work).
    "floor": ServerSpec("floor", "floor", ("rest", "grpc")),
}


class Bench:
    def __init__(self, s: Settings) -> None:
        self.s = s
        self.t0 = time.monotonic()
        self.children = Children()
        self.netns = Netns()
        self.netns_ready: bool | None = None
        self.wrk = None if s.no_wrk else shutil.which("wrk")
        self.manifest: dict[str, Any] = {}
        self.cells: list[Cell] = []
        self.runs: list[ServerRun] = []
        self.notes: list[str] = []
        self.batching_file = s.batching_file
        self.env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        # Each run owns a directory (configs, bodies, logs, results), so runs started at the same
        # time (CI smoke next to a full run) never rewrite each other's files.
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.dir = os.path.join(RUNS, f"{stamp}-{s.kind}-{os.getpid()}")
        self.logs = os.path.join(self.dir, "logs")
        self.loadavg_start = os.getloadavg()

    # ----------------------------------------------------------------- helpers
    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)

    def over_budget(self) -> bool:
        return time.monotonic() - self.t0 > self.s.budget_s

    # ----------------------------------------------------------------- steps
    def prepare(self) -> None:
        os.makedirs(self.logs, exist_ok=True)
        _prune_runs(keep=KEEP_RUNS, current=self.dir)
        out = os.path.join(self.dir, "tfwork.json")
        self.log(f"building models {self.s.models} and measuring raw in-process TF")
        rc, text = run_capture(
            [MAIN_PY, "-m", "bench.tfwork", "--models-dir", MODELS_DIR,
             "--models", ",".join(self.s.models), "--raw-seconds", str(self.s.raw_seconds),
             "--batch-sizes", self.s.batch_sizes, "--bodies-dir", os.path.join(self.dir, "bodies"),
             "--out", out],
            timeout_s=600, env=self.env)
        if rc != 0:
            raise SystemExit(f"bench.tfwork failed (rc={rc}):\n{text[-3000:]}")
        with open(out) as f:
            self.manifest = json.load(f)
        cfg = os.path.join(self.dir, "models.config")
        with open(cfg, "w") as f:
            f.write("model_config_list {\n")
            for name in self.s.models:
                base = self.manifest["models"][name]["base_path"]
                f.write(f'  config {{ name: "{name}" base_path: "{base}" '
                        f'model_platform: "tensorflow" }}\n')
            f.write("}\n")
        self.model_config = cfg
        if not self.batching_file:
            self.batching_file = os.path.join(self.dir, "batching_parameters.txt")
            with open(self.batching_file, "w") as f:
                f.write(TF_BATCHING)
        os.makedirs(os.path.join(self.dir, "wrk"), exist_ok=True)
        for name in self.s.models:
            body = self.manifest["models"][name]["body_json"]
            with open(os.path.join(self.dir, "wrk", f"{name}.lua"), "w") as f:
                f.write(report.WRK_LUA.replace("@BODY@", body))
        for name in self.s.models:
            raw = self.manifest["models"][name]["raw"]
            self.log(f"raw {name}: batch-1 {raw['batch1_call_us']:.0f} µs/call "
                     f"({raw['batch1_rows_per_s']:.0f}/s), best {raw['best_rows_per_s']:.0f} rows/s "
                     f"at batch {raw['best_batch']}")

    def _argv(self, spec: ServerSpec, rest: int, grpc: int) -> tuple[list[str], list[str]]:
        """(server argv, prefix for every command that must reach it)."""
        if spec.kind == "aioserving":
            # --host is aioserving's own flag (TF Serving always binds every interface).
            argv = [MAIN_PY, "-m", "aioserving", "serve", "--host=127.0.0.1", f"--port={grpc}",
                    f"--rest_api_port={rest}", f"--model_config_file={self.model_config}"]
            if spec.batching == "tf":
                argv += ["--enable_batching", f"--batching_parameters_file={self.batching_file}"]
            elif spec.batching == "adaptive":
                argv += ["--enable_batching", "--batching_mode=adaptive"]
            return argv, []
        if spec.kind == "naive":
            return [MAIN_PY, "-m", "bench.naive_server", f"--rest_api_port={rest}",
                    f"--model_config_file={self.model_config}"], []
        if spec.kind == "floor":  # precomputes its replies from the bench's own request bodies
            argv = [MAIN_PY, "-m", "bench.floor_server", "--host=127.0.0.1", f"--port={grpc}",
                    f"--rest_api_port={rest}", f"--model_config_file={self.model_config}"]
            return argv + [f"--body={m}={self.manifest['models'][m]['body_json']}"
                           for m in self.s.models], []
        kpy = os.path.join(KSERVE_VENV, "bin", "python")
        argv = [kpy, os.path.join("bench", "kserve_server.py"), f"--http_port={rest}",
                f"--grpc_port={grpc}", "--enable_latency_logging=false"]
        for name in self.s.models:
            argv += ["--bench_model", f"{name}={self.manifest['models'][name]['path']}"]
        return self.netns.prefix() + argv, self.netns.prefix()

    def _kserve_unavailable(self) -> str:
        kpy = os.path.join(KSERVE_VENV, "bin", "python")
        if not os.path.exists(kpy):
            return (f"no KServe venv at bench/.kserve-venv (create it: python3.11 -m venv "
                    f"bench/.kserve-venv && bench/.kserve-venv/bin/pip install "
                    f"kserve=={KSERVE_VERSION} tensorflow==2.21.0)")
        rc, text = run_capture([kpy, "-c", "import importlib.metadata as m; "
                                "print(m.version('kserve'), m.version('tensorflow'))"], 60)
        if rc != 0:
            return f"KServe venv is broken: {text.strip()[-300:]}"
        self.kserve_versions = text.strip().split()
        if self.kserve_versions[:1] != [KSERVE_VERSION]:
            self._note(f"bench/.kserve-venv has kserve {self.kserve_versions[:1]}, "
                       f"the bench pins {KSERVE_VERSION}")
        if self.netns_ready is None:
            self.netns_ready = self.netns.setup()
        if not self.netns_ready:
            return (f"network namespace unavailable ({self.netns.reason}); KServe binds all "
                    f"interfaces, so it is never run on the host network")
        return ""

    def start(self, spec: ServerSpec, restarts: int = 0
              ) -> tuple[ServerRun, Any, int, int, list[str]]:
        run = ServerRun(spec)
        if spec.kind == "kserve":
            run.reason = self._kserve_unavailable()
            if run.reason:
                return run, None, 0, 0, []
        rest, grpc = free_port(), free_port()
        while grpc == rest:
            grpc = free_port()
        argv, prefix = self._argv(spec, rest, grpc)
        run.log = os.path.join(self.logs, f"{spec.key}{'-restart' * restarts}.log")
        self.log(f"starting {spec.key}: {' '.join(argv)}")
        t = time.monotonic()
        proc = self.children.start(argv, run.log, env=self.env)
        urls = [f"http://127.0.0.1:{rest}/v1/models/{m}" for m in self.s.models]
        deadline = t + self.s.startup_timeout_s
        while True:
            if proc.poll() is not None:
                run.reason = f"exited with {proc.returncode} during start-up: {_tail(run.log)}"
                break
            rc, _ = run_capture(prefix + [MAIN_PY, "-m", "bench.probe", "ready", *urls,
                                          "--timeout", "1"], 30)
            if rc == 0:
                run.started = True
                break
            if time.monotonic() > deadline:
                run.reason = f"not ready after {self.s.startup_timeout_s:.0f}s: {_tail(run.log)}"
                break
            time.sleep(0.3)
        run.startup_s = time.monotonic() - t
        if run.started:
            for m in self.s.models:
                info = self.manifest["models"][m]
                rc, text = run_capture(
                    prefix + [MAIN_PY, "-m", "bench.probe", "check",
                              f"http://127.0.0.1:{rest}/v1/models/{m}:predict", info["body_json"],
                              json.dumps(info["expected"])], 60)
                if rc != 0:
                    run.started = False
                    run.reason = f"REST answer check failed for {m}: {text.strip()[-300:]}"
                    break
        if not run.started:
            self.children.stop(proc)
            return run, None, 0, 0, []
        time.sleep(0.3 if self.s.smoke else 1.0)
        run.rss_idle_before = tree_rss(proc.pid)
        self.log(f"{spec.key} ready in {run.startup_s:.1f}s, RSS {run.rss_idle_before / 2**20:.0f} MiB")
        return run, proc, rest, grpc, prefix

    def _rest_load(self, prefix: list[str], url: str, model: str, conc: int) -> dict[str, Any]:
        info = self.manifest["models"][model]
        dur, warm = self.s.duration_s, self.s.warmup_s
        if self.wrk:
            lua = os.path.join(self.dir, "wrk", f"{model}.lua")
            base = prefix + ["wrk", "-t1", f"-c{conc}", "--timeout", "10s", "-s", lua]
            if warm >= 1:  # wrk counts whole seconds; shorter warmups rely on the answer check
                run_capture(base + [f"-d{round(warm)}s", url], warm + 30)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            rc, text = run_capture(base + [f"-d{max(1, round(dur))}s", url], dur + 30)
            t1 = time.monotonic()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            res = _benchjson(text)
            if res is None:
                return {"note": f"wrk failed rc={rc}: {text.strip()[-300:]}"}
            e = res
            errors = e["connect"] + e["read"] + e["write"] + e["status"] + e["timeout"]
            ok = e["requests"] - e["status"]
            samples = [f"{k}={e[k]}" for k in ("connect", "read", "write", "status", "timeout")
                       if e[k]]
            return {"requests": ok, "errors": errors, "error_samples": samples,
                    "rps": ok / (e["duration_us"] / 1e6), "p50_ms": e["p50_us"] / 1e3,
                    "p99_ms": e["p99_us"] / 1e3, "window": [t0 + 0.2, t1 - 0.2],
                    "client_cpu_s": client_cpu}
        rc, text = run_capture(prefix + [MAIN_PY, "-m", "bench.loadgen_http", "--url", url,
                                         "--body", info["body_json"], "--concurrency", str(conc),
                                         "--duration", str(dur), "--warmup", str(warm)],
                               dur + warm + 60)
        res = _benchjson(text)
        return res if res is not None else {"note": f"loadgen_http failed: {text.strip()[-300:]}"}

    def _grpc_load(self, spec: ServerSpec, prefix: list[str], port: int, model: str,
                   conc: int) -> dict[str, Any]:
        info = self.manifest["models"][model]
        proto = "v2" if spec.kind == "kserve" else "tfs"
        py = os.path.join(KSERVE_VENV, "bin", "python") if proto == "v2" else MAIN_PY
        dur, warm = self.s.duration_s, self.s.warmup_s
        rc, text = run_capture(
            prefix + [py, "-m", "bench.loadgen_grpc", "--target", f"127.0.0.1:{port}",
                      "--protocol", proto, "--model", model, "--npy", info["body_npy"],
                      "--input", info["input"], "--output", info["output"],
                      "--expected", json.dumps(info["expected"]), "--concurrency", str(conc),
                      "--duration", str(dur), "--warmup", str(warm)],
            dur + warm + 60, env=self.env)
        res = _benchjson(text)
        if res is None:
            return {"note": f"loadgen_grpc failed rc={rc}: {text.strip()[-300:]}"}
        if res.get("check_error"):
            res["note"] = f"answer check failed: {res['check_error']}"
        return res

    def _start_with_retry(self, spec: ServerSpec, first: int
                          ) -> tuple[ServerRun, Any, int, int, list[str]]:
        """Start; if the process dies on its own (not a start-up error we can fix), try again."""
        for attempt in range(first, MAX_STARTS):
            run, proc, rest, grpc, prefix = self.start(spec, attempt)
            if proc is not None or "exited with" not in run.reason or attempt + 1 == MAX_STARTS:
                return run, proc, rest, grpc, prefix
            self._note(f"{spec.key} exited during start-up ({run.reason[:120]}); retrying")
        raise AssertionError("unreachable")

    @staticmethod
    def _alive(proc: Any, rest: int, prefix: list[str]) -> bool:
        if proc.poll() is not None:
            return False
        if prefix:  # inside the netns: not reachable from here, trust the process state
            return True
        try:
            with socket.create_connection(("127.0.0.1", rest), timeout=2):
                return True
        except OSError:
            return False

    def _note(self, msg: str) -> None:
        self.log(msg)
        self.notes.append(msg)

    def measure(self, cell: Cell, spec: ServerSpec, proc: Any, rest: int, grpc: int,
                prefix: list[str]) -> None:
        """One load window (warmup + measured) against a running server; fills ``cell``."""
        m, c, p = cell.model, cell.concurrency, cell.protocol
        with ResourceSampler(proc.pid) as rss:
            if p == "rest":
                res = self._rest_load(prefix, f"http://127.0.0.1:{rest}/v1/models/{m}:predict",
                                      m, c)
            else:
                res = self._grpc_load(spec, prefix, grpc, m, c)
        cell.rss_peak = rss.peak
        if res.get("requests") and res.get("window"):
            a, b = res["window"]
            cell.server_cpu_us = rss.cpu_cores(a, b) * 1e6 / res["rps"]
            if res.get("client_cpu_s") is not None:
                cell.client_cpu_us = res["client_cpu_s"] * 1e6 / res["requests"]
        for k in ("rps", "p50_ms", "p99_ms", "requests", "errors", "error_samples", "note"):
            if k in res:
                setattr(cell, k, res[k])
        if proc.poll() is not None and not cell.note:
            cell.note = f"server exited during this cell (rc={proc.returncode})"

    def run_server(self, spec: ServerSpec) -> None:
        todo = [(m, c, p) for m in self.s.models for c in self.s.concurrency
                for p in self.s.protocols if p in spec.protocols]
        if self.over_budget():
            self.runs.append(ServerRun(spec, reason="skipped: over the time budget"))
            return
        run, proc, rest, grpc, prefix = self._start_with_retry(spec, 0)
        self.runs.append(run)
        if proc is None:
            self.log(f"{spec.key}: NOT RUN — {run.reason}")
            for m, c, p in todo:
                self.cells.append(Cell(spec.key, m, c, p, note=f"not run: {run.reason[:80]}"))
            return
        starts = 1
        try:
            for m, c, p in todo:
                cell = Cell(spec.key, m, c, p)
                self.cells.append(cell)
                if self.over_budget():
                    cell.note = "skipped: over the time budget"
                    continue
                if proc is not None and not self._alive(proc, rest, prefix):
                    # Stopped from outside (e.g. SIGTERM): it may still be draining; don't let
                    # the remaining cells fail fast against a closed port.
                    self.children.stop(proc, grace_s=10.0)
                if proc is None or proc.poll() is not None:
                    # Something outside the bench stopped the server; restart rather than lose
                    # every remaining cell, and say so in the results.
                    rc = proc.returncode if proc is not None else None
                    if proc is not None:
                        self.children.stop(proc)
                        self._note(f"{spec.key} exited unexpectedly (rc={rc}) before "
                                   f"{m} c={c} {p}; see {os.path.relpath(run.log, ROOT)}")
                    proc = None
                    if starts >= MAX_STARTS:
                        cell.note = f"server exited (rc={rc}); no restarts left"
                        continue
                    again, proc, rest, grpc, prefix = self.start(spec, starts)
                    starts += 1
                    run.restarts += 1
                    if proc is None:
                        cell.note = f"server exited (rc={rc}); restart failed: {again.reason[:60]}"
                        continue
                    run.log = again.log
                self.measure(cell, spec, proc, rest, grpc, prefix)
                run.rss_peak = max(run.rss_peak, cell.rss_peak)
                self.log(report.cell_line(cell))
            if proc is not None and proc.poll() is None:
                time.sleep(0.3 if self.s.smoke else 2.0)
                run.rss_idle_after = tree_rss(proc.pid)
        finally:
            if proc is not None:
                self.children.stop(proc)

    def run(self) -> int:
        try:
            self.prepare()
            if not self.wrk:
                self.notes.append("wrk not installed: REST load came from bench.loadgen_http "
                                  "(aiohttp closed loop), which is slower than wrk.")
            for key in self.s.servers:
                self.run_server(_SPECS[key])
        finally:
            self.children.stop_all()
            self.netns.teardown()
        return self.finish()

    def finish(self, interrupted: bool = False) -> int:
        elapsed = time.monotonic() - self.t0
        data = {"settings": asdict(self.s), "manifest": self.manifest,
                "cells": [asdict(c) for c in self.cells], "servers": [asdict(r) for r in self.runs],
                "notes": self.notes, "elapsed_s": elapsed, "wrk": self.wrk or "",
                "loadavg_start": self.loadavg_start, "loadavg_end": os.getloadavg(),
                "kserve_versions": getattr(self, "kserve_versions", []),
                "batching_parameters": _read(self.batching_file)}
        name = "smoke.json" if self.s.smoke else "results.json"
        for path in (os.path.join(self.dir, name), os.path.join(OUT, name)):
            with open(path, "w") as f:
                json.dump(data, f, indent=1, default=str)
        text = report.render_console(data)
        print(text, flush=True)
        if self.s.smoke:
            problems = report.smoke_problems(data)
            for p in problems:
                print(f"SMOKE FAILURE: {p}", flush=True)
            print(f"smoke {'FAILED' if problems else 'OK'} in {elapsed:.1f}s", flush=True)
            return 1 if problems else 0
        if interrupted:
            print("interrupted: partial results above; bench/RESULTS.md left as it was", flush=True)
            return 130
        md = _write_markdown(data)
        print(f"wrote {os.path.relpath(md, ROOT)} and bench/out/results.json "
              f"({elapsed / 60:.1f} min)", flush=True)
        return 0


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _prune_runs(keep: int, current: str) -> None:
    """Keep the newest ``keep`` run directories of the current kind (smoke or A/B runs never push
    a full run's logs out)."""
    kind = "-" + os.path.basename(current).split("-")[2] + "-"  # <date>-<time>-<kind>-<pid>
    try:
        names = sorted(n for n in os.listdir(RUNS) if kind in n)
    except FileNotFoundError:
        return
    old = [n for n in names if os.path.join(RUNS, n) != current]
    for n in old[:max(0, len(old) - keep)]:
        shutil.rmtree(os.path.join(RUNS, n), ignore_errors=True)


def _benchjson(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON "):])  # type: ignore[no-any-return]
    return None


def _tail(path: str, n: int = 400) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4000))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-3:])[-n:]


class _ReportOnly(Exception):
    def __init__(self, path: str) -> None:
        self.path = path


def _write_markdown(data: dict[str, Any]) -> str:
    md = os.path.join(ROOT, "bench", "RESULTS.md")
    with open(md, "w") as f:
        f.write(report.render_markdown(data))
    return md


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = _parse(argv)
    except _ReportOnly as r:
        with open(r.path) as f:
            data = json.load(f)
        print(report.render_console(data))
        print(f"wrote {os.path.relpath(_write_markdown(data), ROOT)}")
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    bench = Bench(settings)
    runner: Any = bench
    if settings.ab:
        from bench.ab import ABRun

        runner = ABRun(bench)
    try:
        return runner.run()  # type: ignore[no-any-return]
    except (KeyboardInterrupt, SystemExit) as e:
        if isinstance(e, SystemExit) and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)  # a fatal set-up error, e.g. models failed to build
            return 1
        print("interrupted; all bench processes stopped", file=sys.stderr, flush=True)
        if bench.manifest:
            runner.finish(interrupted=True)
        return 130
    except subprocess.SubprocessError as e:
        print(f"bench failed: {e}", file=sys.stderr)
        return 1
