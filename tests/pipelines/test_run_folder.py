"""Run folders of `jaxsci run`: a COMPLETE marker written last, an existing --out refused
unless --overwrite (cleared) or --resume (same config, unfinished run), interruptions
recorded in run.log with exit code 130."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from cli_helpers import L63_FAST, run_cli

from jaxsci.pipelines import (
    COMPLETE,
    PIPELINES,
    RunFolderError,
    is_complete,
    prepare_run_folder,
)

ROOT = Path(__file__).resolve().parents[2]
L63 = ROOT / "configs" / "l63.yaml"
# A few RK4 steps (the folder logic is what is tested)
FAST = L63_FAST
NO_PLOTS = ["--set", "plot.enabled=false"]


def _run(capsys, out, *extra):
    return run_cli(capsys, "run", L63, "--out", out, "--quiet", *FAST, *NO_PLOTS, *extra)


def test_complete_marker_and_existing_folder_refused(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _run(capsys, out)
    assert code == 0, err
    assert is_complete(out) and (out / COMPLETE).is_file()
    first = (out / "metrics.json").read_text()

    # A second run into the same folder is refused before anything is written.
    code, _, err = _run(capsys, out, "--set", "model.params.rho=20.0")
    assert code == 2
    assert "already exists and holds a complete run" in err and "--overwrite" in err
    assert (out / "metrics.json").read_text() == first
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["params"]["rho"] == 28.0

    # --resume of a complete run is refused too; --overwrite clears and runs again.
    code, _, err = _run(capsys, out, "--resume")
    assert code == 2 and "is complete" in err
    (out / "stale.txt").write_text("from run A")
    code, _, err = _run(capsys, out, "--set", "model.params.rho=20.0", "--overwrite")
    assert code == 0, err
    assert not (out / "stale.txt").exists() and is_complete(out)
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["params"]["rho"] == 20.0


def test_overwrite_never_clears_a_foreign_folder(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, _, err = _run(capsys, out)
    assert code == 2 and "holds files" in err
    code, _, err = _run(capsys, out, "--overwrite")
    assert code == 2 and "not a jaxsci run folder" in err
    assert (out / "thesis.tex").read_text() == "precious"
    code, _, err = _run(capsys, out, "--overwrite", "--resume")
    assert code == 2  # argparse: mutually exclusive
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, empty)  # an empty folder is used as is
    assert code == 0, err


def test_interrupt_is_recorded_and_resume_continues(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    pipeline = PIPELINES["simulate"]

    def interrupted(config, run_dir):
        raise KeyboardInterrupt

    monkeypatch.setitem(PIPELINES, "simulate", dataclasses.replace(pipeline, run=interrupted))
    code, _, err = _run(capsys, out)
    assert code == 130 and "interrupted" in err
    assert not is_complete(out) and not (out / "metrics.json").exists()
    assert "interrupted; the run is incomplete" in (out / "run.log").read_text()
    monkeypatch.undo()

    code, _, err = _run(capsys, out)  # no flag: the unfinished run is not overwritten
    assert code == 2 and "holds an unfinished run" in err and "--resume" in err
    code, _, err = _run(capsys, out, "--resume", "--set", "model.params.rho=20.0")
    assert code == 2 and "model.params.rho" in err  # a different config is not a resume
    code, _, err = _run(capsys, out, "--resume")
    assert code == 0, err
    log = (out / "run.log").read_text()
    assert "interrupted" in log and "resuming" in log  # the log keeps both attempts
    assert is_complete(out) and (out / "metrics.json").is_file()


def test_prepare_run_folder_errors(tmp_path):
    file = tmp_path / "f"
    file.write_text("x")
    with pytest.raises(RunFolderError, match="is not a folder"):
        prepare_run_folder(file, {})
    with pytest.raises(RunFolderError, match="no run to resume"):
        prepare_run_folder(tmp_path / "none", {}, resume=True)
    with pytest.raises(RunFolderError, match="exclude each other"):
        prepare_run_folder(tmp_path / "none", {}, resume=True, overwrite=True)
    assert prepare_run_folder(tmp_path / "new" / "deep", {}) is False
    assert (tmp_path / "new" / "deep").is_dir()


def test_a_failing_plot_costs_no_metrics(tmp_path, capsys, monkeypatch):
    """A plotting error is logged to run.log and the run still completes with its metrics."""
    from jaxsci.pipelines import _plots

    def broken(*args, **kwargs):
        raise RuntimeError("no display, no fonts, whatever")

    monkeypatch.setattr(_plots, "plot_trajectory", broken)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "run", L63, "--out", out, "--quiet", *FAST)  # plots on
    assert code == 0, err
    assert is_complete(out)
    assert (out / "metrics.json").is_file()
    log = (out / "run.log").read_text()
    assert "plotting failed; the metrics and arrays are unaffected" in log
    assert "no display, no fonts" in log
