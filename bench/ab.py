"""Interleaved A/B: ``python -m bench --ab`` (``make bench-ab``), report in bench/AB.md.

The full run (bench/run.py) measures one server after another, so slow drift of a shared, noisy
machine lands on whichever server happened to run then: the same server measured twice a few
minutes apart differs by 15-30 %. Here every server is started at once (each on its own ports;
an idle one costs ~no CPU) and stays up; each cell (model, concurrency, protocol) is measured in
``--rounds`` rounds, and in each round every server that speaks the protocol gets one short window
(warmup + measured). The order rotates from round to round (round r starts at server r), so no
server always goes first or last, and a cell's rounds lie within a minute or two of each other.
The report takes the median over the rounds and shows min..max, so the noise is visible; ratios
between servers are also given per round (the two windows of a pair ran back to back).

Everything that starts servers, drives load and cleans up is run.py's ``Bench``; this module only
schedules the windows and renders the result (``python -m bench.ab RUN/ab.json [--out F.md]``
re-renders a saved run).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench import report
from bench.procs import ROOT, tree_rss
from bench.report import AIO, FLOOR, PEERS, MiB, _f, _md_table, _text_table

# The comparisons: the small models at c=1 (latency, adaptive vs off) and c=64
# (throughput vs peers, adaptive vs tf-style), the CNN at c=16 (against raw best batch).
DEFAULT_PLAN: dict[str, tuple[int, ...]] = {"half_plus_two": (1, 64), "mlp": (1, 64), "cnn": (16,)}
AB_MD = os.path.join(ROOT, "bench", "AB.md")
WINDOW_OVERHEAD_S = 0.7  # load-generator start-up and bookkeeping per window (for the estimate)


def plan(models: list[str], concurrency: list[int] | None) -> list[tuple[str, int]]:
    """(model, concurrency) cells: the issue's plan, or every model at ``--concurrency`` if given."""
    return [(m, c) for m in models for c in (concurrency or DEFAULT_PLAN.get(m, (1, 64)))]


@dataclass
class _Live:
    """A server that is up for the whole A/B run."""
    run: Any  # run.ServerRun
    proc: Any
    rest: int
    grpc: int
    prefix: list[str]
    starts: int = 1

    @property
    def key(self) -> str:
        return str(self.run.spec.key)


class ABRun:
    def __init__(self, bench: Any) -> None:
        self.b = bench
        self.s = bench.s
        self.live: list[_Live] = []
        self.windows: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        b = self.b
        try:
            b.prepare()
            if not b.wrk:
                b.notes.append("wrk not installed: REST load came from bench.loadgen_http "
                               "(aiohttp closed loop), which is slower than wrk.")
            self._start_all()
            self._measure_all()
            if self.live:
                time.sleep(2.0)
                for lv in self.live:
                    if lv.proc.poll() is None:
                        lv.run.rss_idle_after = tree_rss(lv.proc.pid)
        finally:
            b.children.stop_all()
            b.netns.teardown()
        return self.finish()

    def _start_all(self) -> None:
        from bench.run import _SPECS

        b = self.b
        for key in self.s.servers:
            spec = _SPECS[key]
            if b.over_budget():
                b.runs.append(_server_run(spec, "skipped: over the time budget"))
                continue
            run, proc, rest, grpc, prefix = b._start_with_retry(spec, 0)
            b.runs.append(run)
            if proc is None:
                b._note(f"{key}: NOT RUN — {run.reason}")
                continue
            self.live.append(_Live(run, proc, rest, grpc, prefix))
        b.log(f"up at once: {', '.join(lv.key for lv in self.live) or 'nothing'}")

    def _cells(self) -> list[tuple[str, int, str]]:
        return [(m, c, p) for m, c in self.s.ab_plan for p in self.s.protocols]

    def _measure_all(self) -> None:
        from bench.run import Cell

        b, s = self.b, self.s
        n = sum(len([lv for lv in self.live if p in lv.run.spec.protocols])
                for _, _, p in self._cells()) * s.rounds
        est = n * (s.warmup_s + s.duration_s + WINDOW_OVERHEAD_S)
        b.log(f"A/B: {n} windows of {s.warmup_s:g}+{s.duration_s:g} s, ~{est / 60:.1f} min; "
              f"budget left {(s.budget_s - (time.monotonic() - b.t0)) / 60:.1f} min")
        for m, c, p in self._cells():
            live = [lv for lv in self.live if p in lv.run.spec.protocols]
            if not live:
                continue
            for r in range(s.rounds):
                k = r % len(live)
                order = live[k:] + live[:k]
                self.orders.append({"model": m, "concurrency": c, "protocol": p, "round": r,
                                    "order": [lv.key for lv in order]})
                for pos, lv in enumerate(order):
                    cell = Cell(lv.key, m, c, p)
                    t = time.monotonic() - b.t0
                    if b.over_budget():
                        cell.note = "skipped: over the time budget"
                    elif self._ensure_alive(lv, cell):
                        b.measure(cell, lv.run.spec, lv.proc, lv.rest, lv.grpc, lv.prefix)
                        lv.run.rss_peak = max(lv.run.rss_peak, cell.rss_peak)
                    self.windows.append({**asdict(cell), "round": r, "position": pos,
                                         "t_s": round(t, 1)})
                    if not cell.note.startswith("skipped"):
                        b.log(f"r{r} #{pos} {report.cell_line(cell)}")
        skipped = sum(1 for w in self.windows if w["note"].startswith("skipped"))
        if skipped:
            b._note(f"{skipped} of {len(self.windows)} windows skipped: over the "
                    f"{s.budget_s / 60:.0f}-min budget (--budget)")

    def _ensure_alive(self, lv: _Live, cell: Any) -> bool:
        """True if the server answers; else restart it (as run.py does) or note why not."""
        from bench.run import MAX_STARTS

        b = self.b
        if lv.proc is not None and b._alive(lv.proc, lv.rest, lv.prefix):
            return True
        if lv.proc is not None:
            b.children.stop(lv.proc, grace_s=10.0)  # it may still be draining
            b._note(f"{lv.key} exited unexpectedly (rc={lv.proc.returncode}) before "
                    f"{cell.model} c={cell.concurrency} {cell.protocol}; see "
                    f"{os.path.relpath(lv.run.log, ROOT)}")
            lv.proc = None
        if lv.starts >= MAX_STARTS:
            cell.note = "server exited; no restarts left"
            return False
        again, proc, rest, grpc, prefix = b.start(lv.run.spec, lv.starts)
        lv.starts += 1
        lv.run.restarts += 1
        if proc is None:
            cell.note = f"server exited; restart failed: {again.reason[:60]}"
            return False
        lv.proc, lv.rest, lv.grpc, lv.prefix, lv.run.log = proc, rest, grpc, prefix, again.log
        return True

    # ------------------------------------------------------------------ output
    def finish(self, interrupted: bool = False) -> int:
        b = self.b
        elapsed = time.monotonic() - b.t0
        data = {"date": _now(), "settings": asdict(self.s), "manifest": b.manifest,
                "windows": self.windows,
                "orders": self.orders, "servers": [asdict(r) for r in b.runs],
                "notes": b.notes, "elapsed_s": elapsed, "wrk": b.wrk or "",
                "loadavg_start": b.loadavg_start, "loadavg_end": os.getloadavg(),
                "kserve_versions": getattr(b, "kserve_versions", []),
                "batching_parameters": _read(b.batching_file)}
        paths = [os.path.join(b.dir, "ab.json")]
        if self.s.ab_out:
            paths.append(os.path.splitext(self.s.ab_out)[0] + ".json")
        for path in paths:
            with open(path, "w") as f:
                json.dump(data, f, indent=1, default=str)
        print(render_console(data), flush=True)
        if interrupted:
            print(f"interrupted: partial windows in {os.path.relpath(paths[0], ROOT)}; "
                  f"{os.path.relpath(self.s.ab_out or AB_MD, ROOT)} left as it was", flush=True)
            return 130
        md = self.s.ab_out or AB_MD
        with open(md, "w") as f:
            f.write(render_markdown(data))
        print(f"wrote {os.path.relpath(md, ROOT)} and {os.path.relpath(paths[0], ROOT)} "
              f"({elapsed / 60:.1f} min)", flush=True)
        return 0 if any(w["rps"] > 0 for w in self.windows) else 1


def _now() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _server_run(spec: Any, reason: str) -> Any:
    from bench.run import ServerRun

    return ServerRun(spec, reason=reason)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except (OSError, TypeError):
        return ""


# ---------------------------------------------------------------------- summary (pure)
CellKey = tuple[str, int, str]


def _ok(w: dict[str, Any]) -> bool:
    return bool(w["rps"] > 0 and not w.get("note"))


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def cells(data: dict[str, Any]) -> list[CellKey]:
    s = data["settings"]
    return [(m, int(c), p) for m, c in s["ab_plan"] for p in s["protocols"]]


def summarize(data: dict[str, Any]) -> dict[CellKey, dict[str, dict[str, Any]]]:
    """Per cell, per server: windows, median/min/max req/s, median p50/p99, errors, per-round rps."""
    out: dict[CellKey, dict[str, dict[str, Any]]] = {}
    for w in data["windows"]:
        key = (w["model"], int(w["concurrency"]), w["protocol"])
        st = out.setdefault(key, {}).setdefault(w["server"], {
            "windows": 0, "ok": 0, "errors": 0, "notes": [], "by_round": {}, "_rps": [],
            "_p50": [], "_p99": [], "_cpu": []})
        st["windows"] += 1
        st["errors"] += int(w["errors"])
        if _ok(w):
            st["ok"] += 1
            st["by_round"][int(w["round"])] = w["rps"]
            st["_rps"].append(w["rps"])
            st["_p50"].append(w["p50_ms"])
            st["_p99"].append(w["p99_ms"])
            cpu = w.get("server_cpu_us")
            if isinstance(cpu, (int, float)) and cpu == cpu:
                st["_cpu"].append(cpu)
        elif w.get("note") and w["note"] not in st["notes"]:
            st["notes"].append(w["note"])
    for per in out.values():
        for st in per.values():
            rps = st.pop("_rps")
            st["rps"] = _med(rps)
            st["rps_min"] = min(rps) if rps else float("nan")
            st["rps_max"] = max(rps) if rps else float("nan")
            st["spread"] = ((st["rps_max"] - st["rps_min"]) / st["rps"]) if rps else float("nan")
            st["p50_ms"] = _med(st.pop("_p50"))
            st["p99_ms"] = _med(st.pop("_p99"))
            st["server_cpu_us"] = _med(st.pop("_cpu"))
    return out


def _best(per: dict[str, dict[str, Any]], keys: tuple[str, ...]) -> tuple[str, dict[str, Any]] | None:
    got = [(k, per[k]) for k in keys if k in per and per[k]["ok"]]
    return max(got, key=lambda kv: kv[1]["rps"]) if got else None


def _paired(a: dict[str, Any], b: dict[str, Any]) -> list[float]:
    """a/b per round, from the rounds where both ran (back to back in the same round)."""
    return [a["by_round"][r] / b["by_round"][r] for r in sorted(a["by_round"])
            if r in b["by_round"] and b["by_round"][r] > 0]


def _range(st: dict[str, Any]) -> str:
    return f"{st['rps_min']:.0f}..{st['rps_max']:.0f}"


def _pr(xs: list[float], pct: bool = False) -> str:
    if not xs:
        return "-"
    if pct:
        return f"{100 * min(xs):.0f}..{100 * max(xs):.0f}%"
    return f"{min(xs):.2f}..{max(xs):.2f}"


def comparisons(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per cell: medians per server, best aioserving mode, best peer, ratios."""
    summ = summarize(data)
    rows = []
    for key in cells(data):
        per = summ.get(key)
        if not per:
            continue
        m, c, p = key
        aio = _best(per, AIO)
        peer = _best(per, PEERS)
        other = False
        if peer is None:  # e.g. gRPC without KServe: the best peer on another protocol
            alts = [(k, st) for (m2, c2, p2), per2 in summ.items() if (m2, c2) == (m, c)
                    for k, st in per2.items() if k in PEERS and st["ok"]]
            if alts:
                peer, other = max(alts, key=lambda kv: kv[1]["rps"]), True
        floor = per.get(FLOOR) if per.get(FLOOR, {}).get("ok") else None
        raw = data["manifest"]["models"][m]["raw"]
        row: dict[str, Any] = {"model": m, "concurrency": c, "protocol": p, "per": per,
                               "aio": aio, "peer": peer, "peer_other_protocol": other,
                               "floor": floor, "raw": raw}
        if aio and peer:
            row["vs_peer"] = aio[1]["rps"] / peer[1]["rps"]
            row["vs_peer_rounds"] = [] if other else _paired(aio[1], peer[1])
        if aio and floor:
            row["vs_floor"] = aio[1]["rps"] / floor["rps"]
            row["vs_floor_rounds"] = _paired(aio[1], floor)
        rows.append(row)
    return rows


def targets(data: dict[str, Any]) -> list[str]:
    """The issue-3 comparisons from the medians, each MET / MISSED / n/a with its numbers."""
    out = []
    for r in comparisons(data):
        m, c, p, per = r["model"], r["concurrency"], r["protocol"], r["per"]
        label = f"{m} c={c} {p}"
        aio, peer = r["aio"], r["peer"]
        if m in ("half_plus_two", "mlp") and c == 64:
            if "vs_peer" not in r:
                out.append(f"n/a    ≥3× best peer, {label}: no "
                           f"{'aioserving' if aio is None else 'peer'} result")
            else:
                (ak, a), (pk, pe) = aio, peer
                ok = r["vs_peer"] >= 3 and a["p99_ms"] <= pe["p99_ms"]
                star = " (peer on its other protocol)" if r["peer_other_protocol"] else ""
                out.append(
                    f"{'MET   ' if ok else 'MISSED'} ≥3× best peer and p99 no "
                    f"worse, {label}: {r['vs_peer']:.2f}× (per round "
                    f"{_pr(r['vs_peer_rounds'])}); {ak} {a['rps']:.0f} [{_range(a)}] vs {pk} "
                    f"{pe['rps']:.0f} [{_range(pe)}] req/s{star}; p99 {a['p99_ms']:.1f} vs "
                    f"{pe['p99_ms']:.1f} ms")
        if m == "cnn" and c == 16:
            raw = r["raw"]
            if aio is None:
                out.append(f"n/a    ≥90% of raw best-batch, {label}: no aioserving result")
            else:
                ak, a = aio
                v = a["rps"] / raw["best_rows_per_s"]
                lo, hi = a["rps_min"] / raw["best_rows_per_s"], a["rps_max"] / raw["best_rows_per_s"]
                out.append(f"{'MET   ' if v >= 0.9 else 'MISSED'} ≥90% of raw best-batch, {label}: "
                           f"{100 * v:.0f}% ({100 * lo:.0f}..{100 * hi:.0f}%): {ak} "
                           f"{a['rps']:.0f} [{_range(a)}] vs raw {raw['best_rows_per_s']:.0f} "
                           f"rows/s at batch {raw['best_batch']}")
                b16 = raw["batches"].get("16", {}).get("rows_per_s")
                if b16:
                    v16 = a["rps"] / b16
                    out.append(f"{'MET   ' if v16 >= 0.9 else 'MISSED'} ≥90% of raw at batch 16, "
                               f"{label}: {100 * v16:.0f}% ({100 * a['rps_min'] / b16:.0f}.."
                               f"{100 * a['rps_max'] / b16:.0f}%): {ak} {a['rps']:.0f} vs raw "
                               f"{b16:.0f} rows/s at batch 16")
        ad, tf, off = (per.get(k) if per.get(k, {}).get("ok") else None
                       for k in ("aioserving-adaptive", "aioserving-tf", "aioserving-off"))
        if c == 64:
            if ad and tf:
                v = ad["rps"] / tf["rps"]
                out.append(f"{'MET   ' if v >= 0.9 else 'MISSED'} adaptive ≥90% of tf-style, "
                           f"{label}: {100 * v:.0f}% (per round {_pr(_paired(ad, tf), True)}); "
                           f"adaptive {ad['rps']:.0f} [{_range(ad)}] vs tf-style {tf['rps']:.0f} "
                           f"[{_range(tf)}] req/s")
            elif {"aioserving-adaptive", "aioserving-tf"} <= set(data["settings"]["servers"]):
                out.append(f"n/a    adaptive ≥90% of tf-style, {label}: a mode has no result")
        if c == 1:
            if ad and off:
                v = ad["rps"] / off["rps"]
                verdict = ("MET   " if v >= 1.0 else
                           "MET~  " if ad["rps"] >= off["rps_min"] else "MISSED")
                note = (" (below 1 but inside off's own min..max: within noise)"
                        if verdict.startswith("MET~") else "")
                out.append(f"{verdict} adaptive never slower than off, {label}: {100 * v:.0f}% "
                           f"(per round {_pr(_paired(ad, off), True)}){note}; adaptive "
                           f"{ad['rps']:.0f} [{_range(ad)}] vs off {off['rps']:.0f} "
                           f"[{_range(off)}] req/s; p50 {ad['p50_ms']:.3f} vs "
                           f"{off['p50_ms']:.3f} ms")
            elif {"aioserving-adaptive", "aioserving-off"} <= set(data["settings"]["servers"]):
                out.append(f"n/a    adaptive never slower than off, {label}: a mode has no "
                           f"result")
            modes = [(k, per[k]) for k in AIO if k in per and per[k]["ok"]]
            if modes:
                k, st = min(modes, key=lambda kv: kv[1]["p50_ms"])
                added = st["p50_ms"] - r["raw"]["batch1_call_us"] / 1e3
                out.append(f"{'MET   ' if added <= 1.0 else 'MISSED'} p50 added ≤1 ms over "
                           f"in-process, {label}: +{added:.3f} ms ({k} p50 {st['p50_ms']:.3f} ms "
                           f"vs batch-1 call {r['raw']['batch1_call_us'] / 1e3:.3f} ms)")
    return out


def floor_lines(data: dict[str, Any]) -> list[str]:
    out = []
    for r in comparisons(data):
        if r["floor"] is None:
            continue
        label = f"{r['model']} c={r['concurrency']} {r['protocol']}"
        f = r["floor"]
        if r["aio"] is None:
            out.append(f"aioserving / floor, {label}: - (floor {f['rps']:.0f} req/s)")
            continue
        k, a = r["aio"]
        out.append(f"aioserving / floor, {label}: {r['vs_floor']:.2f} (per round "
                   f"{_pr(r['vs_floor_rounds'])}; {k} {a['rps']:.0f} [{_range(a)}] vs floor "
                   f"{f['rps']:.0f} [{_range(f)}] req/s; p50 {a['p50_ms']:.2f} vs "
                   f"{f['p50_ms']:.2f} ms)")
    return out


def _order(data: dict[str, Any]) -> dict[str, int]:
    keys = list(AIO + PEERS + (FLOOR,))
    return {k: i for i, k in enumerate(keys + [k for k in data["settings"]["servers"]
                                                if k not in keys])}


def median_table(data: dict[str, Any]) -> list[list[str]]:
    rows = [["model", "conc", "proto", "server", "windows", "req/s median", "min..max",
             "spread", "p50 ms", "p99 ms", "errors", "srv CPU µs/req", "note"]]
    summ = summarize(data)
    order = _order(data)
    for key in cells(data):
        per = summ.get(key, {})
        for srv in sorted(per, key=lambda k: order.get(k, 99)):
            st = per[srv]
            windows = str(st["ok"]) if st["ok"] == st["windows"] else f"{st['ok']}/{st['windows']}"
            rows.append([key[0], str(key[1]), key[2], srv, windows, _f(st["rps"]),
                         f"{_f(st['rps_min'])}..{_f(st['rps_max'])}" if st["ok"] else "-",
                         f"{100 * st['spread']:.0f}%" if st["ok"] else "-",
                         _f(st["p50_ms"], 2), _f(st["p99_ms"], 2), str(st["errors"]),
                         _f(st["server_cpu_us"]), "; ".join(st["notes"])[:60]])
    return rows


def ratio_table(data: dict[str, Any]) -> list[list[str]]:
    rows = [["model", "conc", "proto", "off", "tf-style", "adaptive", "naive", "kserve", "floor",
             "aio/peer", "aio/floor", "aio/raw best"]]
    for r in comparisons(data):
        per = r["per"]
        vals = [_f(per[k]["rps"]) if k in per and per[k]["ok"] else "-"
                for k in AIO + PEERS + (FLOOR,)]
        aio = r["aio"]
        raw = r["raw"]["best_rows_per_s"]
        rows.append([r["model"], str(r["concurrency"]), r["protocol"], *vals,
                     (f"{r['vs_peer']:.2f}×{'*' if r['peer_other_protocol'] else ''}"
                      if "vs_peer" in r else "-"),
                     f"{r['vs_floor']:.2f}" if "vs_floor" in r else "-",
                     _pct(aio[1]["rps"] / raw) if aio and raw else "-"])
    return rows


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%" if v >= 0.01 else "<1%"


def window_lines(data: dict[str, Any]) -> list[str]:
    """Every window in the order it ran: one line per cell and round."""
    by = {(w["model"], int(w["concurrency"]), w["protocol"], int(w["round"]), w["server"]): w
          for w in data["windows"]}
    out = []
    for o in data["orders"]:
        parts = []
        for srv in o["order"]:
            w = by.get((o["model"], int(o["concurrency"]), o["protocol"], int(o["round"]), srv))
            if w is None:
                continue
            val = _f(w["rps"]) if _ok(w) else ("skipped" if w["note"].startswith("skipped")
                                                else "failed")
            parts.append(f"{srv} {val}")
        out.append(f"{o['model']} c={o['concurrency']} {o['protocol']}, round {o['round']}: "
                   + " → ".join(parts))
    return out


def _spread_summary(data: dict[str, Any]) -> str:
    spreads = [st["spread"] for per in summarize(data).values() for st in per.values()
               if st["ok"] >= 2]
    if not spreads:
        return ""
    return (f"spread (max-min)/median of one server's windows in one cell: median "
            f"{100 * statistics.median(spreads):.0f}%, largest {100 * max(spreads):.0f}%")


def render_console(data: dict[str, Any]) -> str:
    parts = ["", "== A/B medians (all servers up at once, rotating order) ==",
             _text_table(median_table(data)), ""]
    rt = ratio_table(data)
    if len(rt) > 1:
        parts += ["== medians side by side (req/s) ==", _text_table(rt), ""]
    fl = floor_lines(data)
    if fl:
        parts += ["== aioserving / floor ==", *fl, ""]
    t = targets(data)
    if t:
        parts += ["== targets (issue 3), from the medians ==", *t, ""]
    sp = _spread_summary(data)
    if sp:
        parts += [sp, ""]
    parts += [f"note: {n}" for n in data["notes"]]
    return "\n".join(parts)


def render_markdown(data: dict[str, Any]) -> str:
    s = data["settings"]
    la = [(data.get(k) or [float("nan")])[0] for k in ("loadavg_start", "loadavg_end")]
    kv = data.get("kserve_versions") or []
    kserve = (f"kserve {kv[0]} (tensorflow {kv[1]}) in bench/.kserve-venv, inside the netns "
              f"`bench`" if len(kv) == 2 else "kserve not run (see servers table)"
              if "kserve" in s["servers"] else "kserve not in this run")
    servers = [r["spec"]["key"] for r in data["servers"] if r["started"]]
    nwin = sum(1 for w in data["windows"] if _ok(w))
    out = [
        "# aioserving interleaved A/B",
        "",
        "Written by `python -m bench --ab` (`make bench-ab`); regenerate rather than edit. The "
        "sequential full run is bench/RESULTS.md.",
        "",
        f"- Date: {data.get('date') or _now()}",
        f"- Machine: {report._machine()}",
        f"- Python {platform.python_version()}, tensorflow {data['manifest'].get('tf_version')}, "
        f"aioserving {report._version('aioserving')}, aiohttp {report._version('aiohttp')}, "
        f"grpcio {report._version('grpcio')}",
        f"- Method: all servers up at once ({', '.join(servers) or 'none'}), each on its own "
        f"ports; {s['rounds']} rounds per cell, rotating order (round r starts at server r), "
        f"one window per server per round ({s['warmup_s']:g} s warmup + {s['duration_s']:g} s "
        f"measured); medians over the rounds, with min..max. Idle servers use ~no CPU. Per-round "
        f"ratios compare two windows of the same round, which ran back to back.",
        f"- Why: on this shared 2-core machine the same server measured twice minutes apart "
        f"differs by 15-30 %; the sequential full run lets that drift fall on one server and not "
        f"another, interleaving spreads it over all of them.",
        f"- Peers: {kserve}; naive = `bench/naive_server.py`; floor = `bench/floor_server.py` "
        f"(prebuilt replies, the stack's ceiling, never a peer).",
        f"- REST load: {report._wrk_version(data.get('wrk', ''))}, one thread, closed loop; gRPC: "
        f"`bench/loadgen_grpc.py`; load generators share the 2 cores with the servers.",
        f"- Load average (1 min) at start {la[0]:.2f}, at end {la[1]:.2f}; {nwin} windows; total "
        f"run {data['elapsed_s'] / 60:.1f} min.",
    ]
    sp = _spread_summary(data)
    if sp:
        out.append(f"- Noise: {sp}.")
    out += [
        "",
        "## Targets (issue 3), from the medians",
        "",
        "`[a..b]` = min..max of a server's windows; \"per round\" = the ratio within each round. "
        "MET~ = below target but inside the other side's own min..max (within noise).",
        "",
        *[f"- {t}" for t in targets(data)],
        "",
        "## Medians per cell and server",
        "",
        _md_table(median_table(data)),
        "",
        "## Medians side by side (req/s)",
        "",
        "aio = best aioserving mode by median; peer = best of naive / kserve on the same "
        "protocol (`*` = the peer has no such protocol, its other one is used); raw best = "
        "in-process TF rows/s at its best batch.",
        "",
        _md_table(ratio_table(data)),
        "",
        *[f"- {line}" for line in floor_lines(data)],
        "",
        "## Raw in-process TF",
        "",
        _md_table(report._raw_table(data)),
        "",
        "## Servers",
        "",
        _md_table(report._rss_table(data)),
        "",
        "## Windows in the order they ran (req/s)",
        "",
        *[f"- {line}" for line in window_lines(data)],
        "",
    ]
    if data["notes"]:
        out += ["## Notes", "", *[f"- {n}" for n in data["notes"]], ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ab",
                                 description="re-render an A/B report from a saved ab.json")
    ap.add_argument("ab_json")
    ap.add_argument("--out", default="", help="markdown path (default: print to stdout only)")
    a = ap.parse_args(argv)
    with open(a.ab_json) as f:
        data = json.load(f)
    print(render_console(data))
    if a.out:
        with open(a.out, "w") as f:
            f.write(render_markdown(data))
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
