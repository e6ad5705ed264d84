"""benchmarks/device_suite.py and benchmarks/bench_scaling.py: the dry run in CI (slow tier), and
the helpers that decide what the table says (fast)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_scaling  # noqa: E402
import device_suite  # noqa: E402


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
def test_dry_run_has_every_row_and_no_failure(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "device_suite.py"),
            "--dry-run",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    with open(tmp_path / "device_suite.json") as f:
        out = json.load(f)
    rows = {r["row"]: r for r in out["rows"]}
    assert list(rows) == list(device_suite.ROWS), proc.stdout[-2000:]
    failed = {k: r.get("error") for k, r in rows.items() if r["status"] != "ok"}
    assert not failed, failed
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out["dry_run"] is True
    assert out["machine"]["device_kind"] and out["machine"]["jax_version"]
    for r in rows.values():
        for field in ("compile_s", "run_s", "throughput"):
            assert math.isfinite(r[field]), (r["row"], field, r[field])
        assert r["compile_s"] >= 0 and r["run_s"] > 0, r
        assert r["unit"] and r["size"], r
    md = (tmp_path / "device_suite.md").read_text()
    assert out["machine"]["device_kind"] in md and out["machine"]["jax_version"] in md
    for name in device_suite.ROWS:
        assert f"| {name} |" in md


def test_failed_row_is_recorded_not_fatal(monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("out of memory, say")

    monkeypatch.setitem(
        device_suite.ROWS, "boom", device_suite.Row("a failing row", boom, {}, {"x": 1}, 5)
    )
    res = device_suite.run_row("boom", dry=True)
    assert res["status"] == "failed" and "RuntimeError: out of memory" in res["error"]
    md = device_suite.markdown(
        dict(
            machine=dict(
                device_kind="cpu",
                backend="cpu",
                jax_version="0",
                jaxsci_revision="x",
                cpu="c",
                cpu_count=1,
                load_average="0",
            ),
            dry_run=True,
            total_s=1.0,
            rows=[res],
        )
    )
    assert "| boom | a failing row | x=1 |" in md and "failed: RuntimeError" in md


def test_row_over_its_budget_is_killed_and_recorded():
    res = device_suite.run_row_isolated("nuts_lv", dry=True, timeout=0.5)
    assert res["status"] == "failed" and "timed out" in res["error"]


def test_full_budgets_fit_eight_minutes():
    assert sum(r.budget_s for r in device_suite.ROWS.values()) <= device_suite.TOTAL_BUDGET_S
    assert device_suite.TOTAL_BUDGET_S <= 8 * 60
    assert all(r.full.keys() == r.dry.keys() for r in device_suite.ROWS.values())


def test_exponent_recovers_a_power_law():
    x = np.array([1e2, 1e3, 1e4, 1e5])
    assert bench_scaling.exponent(x, 3e-6 * x**1.5) == pytest.approx(1.5)
    assert math.isnan(bench_scaling.exponent([10.0], [1.0]))


def test_letkf_memory_estimate_stops_it_before_the_global_filters():
    # d = 40: the ensemble-space LETKF holds d x N x N matrices, the global filters and the
    # default (observation-space for N > k = 25) LETKF N x d, d x d and d x k x k ones
    gib = 2.0**30
    assert bench_scaling.peak_bytes("LETKF-ens", 10_000, 40) / gib > 8
    assert bench_scaling.peak_bytes("LETKF", 1_000_000, 40) / gib < 1
    assert bench_scaling.peak_bytes("ETKF", 1_000_000, 40) / gib < 1
    assert bench_scaling.peak_bytes("EnKF", 1_000_000, 40) / gib < 1
