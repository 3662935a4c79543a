"""`make bench-smoke` keeps working: `python -m bench --smoke` exits 0.

The smoke run starts aioserving (REST + gRPC) and measures raw TF on half_plus_two at concurrency 4
for 2 s each; it fails on any request error, a zero rate or a wrong answer.
"""
from __future__ import annotations

import pytest

from harness import run_bench


@pytest.mark.slow
@pytest.mark.timeout(280)
def test_bench_smoke() -> None:
    out = run_bench(["--smoke"], timeout_s=240)
    assert "smoke OK" in out
