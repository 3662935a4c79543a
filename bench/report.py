"""Tables, ratios, target checks and bench/RESULTS.md (pure formatting, no I/O besides version probes)."""
from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import re
import subprocess
from typing import Any

import psutil

_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "PROFILE.md")


def _profile_text() -> str:
    """Where the time goes: kept by hand in bench/PROFILE.md (measured with the scripts it names)."""
    try:
        with open(_PROFILE, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return "_No bench/PROFILE.md._"

# wrk script: POST the JSON body; at the end print one machine-readable line.
WRK_LUA = r"""
local f = assert(io.open("@BODY@", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

AIO = ("aioserving-off", "aioserving-tf", "aioserving-adaptive")
PEERS = ("naive", "kserve")
FLOOR = "floor"  # not a peer: the stack's ceiling (bench/floor_server.py), never in "best peer"
MiB = 2**20


def _f(v: float, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def cell_line(c: Any) -> str:
    d = c if isinstance(c, dict) else c.__dict__
    s = (f"{d['server']:<20} {d['model']:<13} c={d['concurrency']:<3} {d['protocol']:<4} "
         f"{_f(d['rps']):>8} req/s  p50 {_f(d['p50_ms'], 2):>7} ms  p99 {_f(d['p99_ms'], 2):>7} ms"
         f"  err {d['errors']}")
    if d.get("note"):
        s += f"  [{d['note'][:100]}]"
    if d.get("error_samples"):
        s += f"  {d['error_samples'][:2]}"
    return s


def _cells(data: dict[str, Any]) -> dict[tuple[str, str, int, str], dict[str, Any]]:
    return {(c["server"], c["model"], c["concurrency"], c["protocol"]): c for c in data["cells"]}


def _ok(c: dict[str, Any] | None) -> bool:
    return bool(c) and c["rps"] > 0 and not c.get("note")  # type: ignore[index]


def ratio_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    s = data["settings"]
    cells = _cells(data)
    rows = []
    for m in s["models"]:
        raw = data["manifest"]["models"][m]["raw"]
        for conc in s["concurrency"]:
            for proto in s["protocols"]:
                aio = [cells.get((k, m, conc, proto)) for k in AIO]
                aio = [c for c in aio if _ok(c)]
                peers = [c for k in PEERS if _ok(c := cells.get((k, m, conc, proto)))]
                any_proto = False
                if not peers:
                    peers = [c for k in PEERS for p in s["protocols"]
                             if _ok(c := cells.get((k, m, conc, p)))]
                    any_proto = bool(peers)
                floor = cells.get((FLOOR, m, conc, proto))
                floor = floor if _ok(floor) else None
                if not aio and not peers and not floor:
                    continue
                best = max(aio, key=lambda c: c["rps"]) if aio else None
                peer = max(peers, key=lambda c: c["rps"]) if peers else None
                row = {"model": m, "concurrency": conc, "protocol": proto,
                       "aio": best, "peer": peer, "peer_other_protocol": any_proto, "floor": floor,
                       "raw_best": raw["best_rows_per_s"], "raw_b1_us": raw["batch1_call_us"],
                       "modes": {k: cells.get((k, m, conc, proto)) for k in AIO}}
                row["vs_peer"] = best["rps"] / peer["rps"] if best and peer else None
                row["vs_raw"] = best["rps"] / raw["best_rows_per_s"] if best else None
                row["vs_floor"] = best["rps"] / floor["rps"] if best and floor else None
                row["p99_ok"] = (best["p99_ms"] <= peer["p99_ms"]) if best and peer else None
                if best and conc == 1:
                    row["added_p50_ms"] = min(c["p50_ms"] for c in aio) - raw["batch1_call_us"] / 1e3
                rows.append(row)
    return rows


def targets(data: dict[str, Any]) -> list[str]:
    """The issue's targets, each as 'MET'/'MISSED'/'n/a' with the measured margin."""
    out = []
    rows = ratio_rows(data)
    for r in rows:
        label = f"{r['model']} c={r['concurrency']} {r['protocol']}"
        if r["model"] in ("half_plus_two", "mlp") and r["concurrency"] == 64:
            if r["vs_peer"] is None:
                out.append(f"n/a  ≥3× best peer, {label}: "
                           f"no {'aioserving' if r['aio'] is None else 'peer'} result")
            else:
                ok = r["vs_peer"] >= 3 and r["p99_ok"]
                out.append(f"{'MET ' if ok else 'MISSED'} ≥3× best peer and p99 no worse, {label}: "
                           f"{r['vs_peer']:.2f}× ({r['aio']['server']} {r['aio']['rps']:.0f} vs "
                           f"{r['peer']['server']} {r['peer']['rps']:.0f} req/s; p99 "
                           f"{r['aio']['p99_ms']:.1f} vs {r['peer']['p99_ms']:.1f} ms)")
        if r["model"] == "cnn" and r["concurrency"] == 16:
            if r["vs_raw"] is None:
                out.append(f"n/a  ≥90% of raw best-batch, {label}: no aioserving result")
            else:
                out.append(f"{'MET ' if r['vs_raw'] >= 0.9 else 'MISSED'} ≥90% of raw best-batch, "
                           f"{label}: {100 * r['vs_raw']:.0f}% ({r['aio']['rps']:.0f} vs "
                           f"{r['raw_best']:.0f} rows/s)")
        if r["concurrency"] == 1 and "added_p50_ms" in r:
            a = r["added_p50_ms"]
            out.append(f"{'MET ' if a <= 1.0 else 'MISSED'} p50 added ≤1 ms over in-process, "
                       f"{label}: +{a:.2f} ms")
    base = data["manifest"].get("rss_tf_plus_models", 0)
    for srv in data["servers"]:
        if srv["spec"]["kind"] == "aioserving" and srv["started"] and base:
            extra = (srv["rss_peak"] - base) / MiB
            out.append(f"{'MET ' if extra <= 100 else 'MISSED'} RSS under load ≤ TF+models+100 MiB, "
                       f"{srv['spec']['key']}: peak {srv['rss_peak'] / MiB:.0f} MiB = "
                       f"TF+models {base / MiB:.0f} MiB {extra:+.0f} MiB")
    return out


def floor_lines(data: dict[str, Any]) -> list[str]:
    """aioserving / floor per (model, concurrency, protocol): the share of the stack's own ceiling."""
    out = []
    for r in ratio_rows(data):
        if r["floor"] is None:
            continue
        label = f"{r['model']} c={r['concurrency']} {r['protocol']}"
        a, f = r["aio"], r["floor"]
        if a is None:
            out.append(f"aioserving / floor, {label}: - (no aioserving result; floor "
                       f"{f['rps']:.0f} req/s)")
            continue
        out.append(f"aioserving / floor, {label}: {r['vs_floor']:.2f} ({a['server']} "
                   f"{a['rps']:.0f} vs floor {f['rps']:.0f} req/s; p50 {a['p50_ms']:.2f} vs "
                   f"{f['p50_ms']:.2f} ms)")
    return out


def _main_table(data: dict[str, Any]) -> list[list[str]]:
    rows = [["model", "conc", "proto", "server", "req/s", "p50 ms", "p99 ms", "errors",
             "srv CPU µs/req", "client CPU µs/req", "note"]]
    order = {k: i for i, k in enumerate(AIO + PEERS + (FLOOR,))}
    for c in sorted(data["cells"], key=lambda c: (data["settings"]["models"].index(c["model"]),
                                                   c["concurrency"], c["protocol"],
                                                   order.get(c["server"], 99))):
        note = c.get("note") or ", ".join(c.get("error_samples") or [])
        rows.append([c["model"], str(c["concurrency"]), c["protocol"], c["server"], _f(c["rps"]),
                     _f(c["p50_ms"], 2), _f(c["p99_ms"], 2), str(c["errors"]),
                     _f(c.get("server_cpu_us", float("nan"))),
                     _f(c.get("client_cpu_us", float("nan"))), note[:60]])
    return rows


def _ratio_table(data: dict[str, Any]) -> list[list[str]]:
    rows = [["model", "conc", "proto", "off", "tf-style", "adaptive", "best peer", "aio/peer",
             "p99 aio/peer ms", "aio/raw", "floor", "aio/floor", "c=1 added p50"]]
    for r in ratio_rows(data):
        modes = [_f(c["rps"]) if _ok(c) else "-" for c in r["modes"].values()]
        peer = r["peer"]
        peer_s = (f"{peer['server']}{'*' if r['peer_other_protocol'] else ''} {_f(peer['rps'])}"
                  if peer else "-")
        p99 = (f"{r['aio']['p99_ms']:.1f}/{peer['p99_ms']:.1f}" if r["aio"] and peer else "-")
        rows.append([r["model"], str(r["concurrency"]), r["protocol"], *modes, peer_s,
                     f"{r['vs_peer']:.2f}×" if r["vs_peer"] else "-", p99,
                     f"{100 * r['vs_raw']:.0f}%" if r["vs_raw"] else "-",
                     _f(r["floor"]["rps"]) if r["floor"] else "-",
                     f"{r['vs_floor']:.2f}" if r["vs_floor"] else "-",
                     f"+{r['added_p50_ms']:.2f} ms" if "added_p50_ms" in r else ""])
    return rows


def _raw_table(data: dict[str, Any]) -> list[list[str]]:
    sizes = None
    rows: list[list[str]] = []
    for m, info in data["manifest"]["models"].items():
        b = info["raw"]["batches"]
        if sizes is None:
            sizes = list(b)
            rows.append(["model", "µs/call b=1", *[f"rows/s b={s}" for s in sizes], "best"])
        rows.append([m, _f(info["raw"]["batch1_call_us"]), *[_f(b[s]["rows_per_s"]) for s in sizes],
                     f"{_f(info['raw']['best_rows_per_s'])} (b={info['raw']['best_batch']})"])
    return rows


def _rss_table(data: dict[str, Any]) -> list[list[str]]:
    rows = [["server", "started", "start-up s", "RSS idle MiB", "RSS peak under load MiB",
             "RSS after load MiB", "why not run"]]
    for s in data["servers"]:
        rows.append([s["spec"]["key"], "yes" if s["started"] else "no", _f(s["startup_s"], 1),
                     _f(s["rss_idle_before"] / MiB), _f(s["rss_peak"] / MiB),
                     _f(s["rss_idle_after"] / MiB), s["reason"][:160]])
    return rows


def _text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _md_table(rows: list[list[str]]) -> str:
    def esc(v: str) -> str:
        return v.replace("|", "\\|")
    lines = ["| " + " | ".join(esc(v) for v in rows[0]) + " |",
             "|" + "|".join("---" for _ in rows[0]) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def render_console(data: dict[str, Any]) -> str:
    parts = ["", "== raw in-process TF (the physical limit) ==", _text_table(_raw_table(data)),
             f"TF + models RSS: {data['manifest'].get('rss_tf_plus_models', 0) / MiB:.0f} MiB", "",
             "== servers ==", _text_table(_rss_table(data)), "",
             "== results ==", _text_table(_main_table(data)), ""]
    rr = _ratio_table(data)
    if len(rr) > 1:
        parts += ["== ratios (best aioserving mode vs best peer / raw best-batch rows/s) ==",
                  _text_table(rr), ""]
    fl = floor_lines(data)
    if fl:
        parts += ["== aioserving / floor (share of the stack's own ceiling) ==", *fl, ""]
    t = targets(data)
    if t and not data["settings"]["smoke"]:
        parts += ["== targets (issue 3) ==", *t, ""]
    parts += [f"note: {n}" for n in data["notes"]]
    return "\n".join(parts)


def smoke_problems(data: dict[str, Any]) -> list[str]:
    problems = []
    for s in data["servers"]:
        if not s["started"]:
            problems.append(f"{s['spec']['key']} did not start: {s['reason']}")
    for c in data["cells"]:
        label = f"{c['server']} {c['model']} c={c['concurrency']} {c['protocol']}"
        if c.get("note"):
            problems.append(f"{label}: {c['note']}")
        if c["errors"]:
            problems.append(f"{label}: {c['errors']} errors {c['error_samples']}")
        if not c["rps"] > 0:
            problems.append(f"{label}: zero rate")
    if not data["cells"]:
        problems.append("no cells ran")
    for m, info in data["manifest"].get("models", {}).items():
        if not info["raw"]["best_rows_per_s"] > 0:
            problems.append(f"raw {m}: zero rate")
    return problems


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pass
    if dist == "aioserving":  # a source checkout that is not pip-installed: read setup.cfg
        cfg = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.cfg")
        try:
            with open(cfg) as f:
                for line in f:
                    if line.replace(" ", "").startswith("version="):
                        return line.split("=", 1)[1].strip() + " (source tree)"
        except OSError:
            pass
    return "not installed"


def _machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM")


def _wrk_version(path: str) -> str:
    if not path:
        return "not installed (REST load from bench.loadgen_http)"
    try:
        out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
        first = (out.stdout + out.stderr).strip().splitlines()[0]
        m = re.search(r"(\d+\.\d+[\w.\-]*)", first)
        return f"wrk {m.group(1)}" if m else first
    except (OSError, subprocess.SubprocessError, IndexError):
        return path


def render_markdown(data: dict[str, Any]) -> str:
    s = data["settings"]
    la_start = (data.get("loadavg_start") or [float("nan")])[0]
    la_end = (data.get("loadavg_end") or [float("nan")])[0]
    kv = data.get("kserve_versions") or []
    kserve = (f"kserve {kv[0]} (tensorflow {kv[1]}) in bench/.kserve-venv" if len(kv) == 2
              else "not run (see servers table)")
    batching = data.get("batching_parameters", "").strip()
    out = [
        "# aioserving benchmark results",
        "",
        "Written by `python -m bench` (`make bench`); regenerate rather than edit.",
        "",
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Machine: {_machine()}",
        f"- Python {platform.python_version()}, tensorflow {data['manifest'].get('tf_version')}, "
        f"aioserving {_version('aioserving')}, aiohttp {_version('aiohttp')}, "
        f"grpcio {_version('grpcio')}, tensorflow-serving-api {_version('tensorflow-serving-api')}",
        f"- Peers: {kserve}; naive = `bench/naive_server.py` (aiohttp + run_in_executor, stdlib json)",
        "- floor = `bench/floor_server.py`, not a peer but the ceiling of the server stack itself: "
        "one uvloop process, aiohttp + grpc.aio, answering every predict with a reply prebuilt at "
        "start-up (the REST body is read, never parsed; no TF). No server built on this stack can beat it; aio/floor says how "
        "close aioserving gets to the stack's own limit.",
        f"- REST load: {_wrk_version(data.get('wrk', ''))}, one thread, closed loop; gRPC load: "
        "`bench/loadgen_grpc.py` (grpc.aio, pre-serialized Predict with tensor_content / v2 "
        "ModelInfer with raw_input_contents); all load generators are separate processes on the "
        "same 2 cores as the server.",
        f"- Load average (1 min) at start {la_start:.2f}, at end {la_end:.2f}"
        + (" — other processes shared the CPU, so absolute numbers are noisy; ratios were "
           "measured under the same conditions." if max(la_start, la_end) > 0.7 else "."),
        f"- Per cell: {s['warmup_s']:g} s warmup + {s['duration_s']:g} s measured; one request = one "
        f"row; total run {data['elapsed_s'] / 60:.1f} min.",
        "- Servers bind 127.0.0.1 only; KServe binds all interfaces, so it and its load generator "
        "run inside a network namespace that has only `lo`. KServe runs with its defaults (one "
        "worker, sync `predict()` as in its custom-model docs) except "
        "`--enable_latency_logging=false`.",
        "- aioserving modes: off = no batching; tf-style = `--enable_batching "
        "--batching_parameters_file` with the parameters below; adaptive = `--enable_batching "
        "--batching_mode=adaptive`.",
        "",
        "```",
        batching,
        "```",
        "",
        "## Raw in-process TF (the physical limit)",
        "",
        _md_table(_raw_table(data)),
        "",
        f"RSS of the process holding TF + all models after the raw run: "
        f"{data['manifest'].get('rss_tf_plus_models', 0) / MiB:.0f} MiB.",
        "",
        "## Results",
        "",
        _md_table(_main_table(data)),
        "",
        "## Ratios",
        "",
        "Best aioserving mode per row against the best peer on the same protocol (`*` = the peer "
        "has no such protocol; its best other protocol is used) and against raw best-batch rows/s; "
        "at concurrency 1 the added p50 is the best mode's p50 minus the in-process batch-1 call; "
        "aio/floor = best aioserving mode / floor req/s (1.00 = the stack's ceiling).",
        "",
        _md_table(_ratio_table(data)),
        "",
        *[f"- {line}" for line in floor_lines(data)],
        "",
        "## Targets (issue 3)",
        "",
        *[f"- {t}" for t in targets(data)],
        "",
        "## Servers and memory",
        "",
        _md_table(_rss_table(data)),
        "",
        "## Profile",
        "",
        _profile_text(),
        "",
    ]
    if data["notes"]:
        out += ["## Notes", "", *[f"- {n}" for n in data["notes"]], ""]
    return "\n".join(out)
