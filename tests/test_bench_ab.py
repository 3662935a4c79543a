"""`python -m bench --ab` (interleaved A/B) runs end to end at CI size.

Three servers up at once, half_plus_two at one concurrency on REST and gRPC, two rounds of short
windows: the report has one row per (server, cell) with both windows and no errors, and the order
rotated between rounds.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import run_bench

SERVERS = ("aioserving-off", "aioserving-adaptive", "floor")
CELLS = (("half_plus_two", 4, "rest"), ("half_plus_two", 4, "grpc"))
ROUNDS = 2


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_bench_ab_interleaved(tmp_path: Path) -> None:
    out_md = tmp_path / "AB.md"
    args = ["--ab", "--models", "half_plus_two",
            "--servers", ",".join(SERVERS), "--concurrency", "4", "--rounds", str(ROUNDS),
            "--duration", "0.5", "--warmup", "0.2", "--raw-seconds", "0.2", "--budget", "150",
            "--ab-out", str(out_md)]
    run_bench(args, timeout_s=170)

    # The markdown report: a row per (server, cell) with every window measured and no errors.
    md = out_md.read_text()
    assert "all servers up at once" in md and "rotating order" in md
    table = md.split("## Medians per cell and server", 1)[1].split("\n## ", 1)[0]
    header, *rows = [ln for ln in table.splitlines() if ln.startswith("| ")]
    cols = [c.strip() for c in header.strip("|").split("|")]
    got = {}
    for ln in rows:
        r = dict(zip(cols, (c.strip() for c in ln.strip("|").split("|"))))
        got[(r["server"], r["model"], int(r["conc"]), r["proto"])] = r
    want = {(s, *c) for s in SERVERS for c in CELLS}
    assert set(got) == want, f"rows {sorted(got)}\n{md}"
    for key, r in got.items():
        assert r["windows"] == str(ROUNDS), (key, r)
        assert r["errors"] == "0", (key, r)
        assert float(r["req/s median"].replace(",", "")) > 0, (key, r)

    # The raw windows (written beside the report): all measured, and the order rotated.
    data = json.loads(out_md.with_suffix(".json").read_text())
    windows = data["windows"]
    assert len(windows) == len(SERVERS) * len(CELLS) * ROUNDS
    assert all(w["errors"] == 0 and not w["note"] and w["rps"] > 0 for w in windows), windows
    for model, conc, proto in CELLS:
        orders = {o["round"]: o["order"] for o in data["orders"]
                  if (o["model"], o["concurrency"], o["protocol"]) == (model, conc, proto)}
        assert sorted(orders) == list(range(ROUNDS))
        assert all(sorted(o) == sorted(SERVERS) for o in orders.values())
        assert orders[0][0] != orders[1][0], orders  # round r starts at server r
        for r, order in orders.items():  # windows ran in that order
            ws = sorted((w for w in windows if (w["model"], w["concurrency"], w["protocol"],
                                                w["round"]) == (model, conc, proto, r)),
                        key=lambda w: w["position"])
            assert [w["server"] for w in ws] == order
