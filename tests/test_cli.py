"""The `jaxsci` command: every shipped config runs (fast settings), bad configs fail by name."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from _params import stem_params
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
# The `simulate` configs; tests/pipelines/test_assimilate.py runs the `assimilate` ones.
SIMULATE_CONFIGS = [
    p for p in CONFIGS if yaml.safe_load(p.read_text()).get("pipeline") == "simulate"
]

# Extra fast-setting overrides for models whose defaults are expensive to compile or run.
_MODEL_FAST = {
    "NavierStokes2D": ["model.params.num_points=16"],
    "Lorenz96TwoScale": ["model.params.j=4"],
    "TwoLayerQG": ["model.params.num_points=16"],
}


def fast_overrides(path: Path) -> list[str]:
    """Shrink a config to a few steps: short t1 and spin-up, a 3-interval Lyapunov run."""
    raw = yaml.safe_load(path.read_text())
    integ = raw.get("integrate", {})
    dt, t0 = float(integ.get("dt", 0.01)), float(integ.get("t0", 0.0))
    sets = [
        f"integrate.t1={t0 + 8 * dt!r}",
        f"integrate.save_every={2 * dt!r}",
        "integrate.spinup=0",  # spin-up is a second compile; tests/pipelines covers it
        "integrate.chunks=2",
        *_MODEL_FAST.get(raw["model"]["name"], []),
    ]
    if raw.get("lyapunov") is not None:
        sets += [
            "lyapunov.num_intervals=3",
            f"lyapunov.interval={2 * dt!r}",
            "lyapunov.transient=0",
        ]
    if raw.get("statistics") is not None:
        sets.append("statistics.start=null")  # average over the few saves there are
    return sets


def test_shipped_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"ks.yaml", "l96.yaml", "l63.yaml", "ns2d_kolmogorov.yaml", "quickstart.yaml"} <= names


@pytest.mark.parametrize(
    "config", stem_params(SIMULATE_CONFIGS, {"ks", "l96", "ns2d_kolmogorov", "qg_turbulence"})
)
def test_config_runs_and_writes_run_folder(config, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        capsys,
        "run",
        config,
        "--out",
        out,
        "--quiet",
        *[a for s in fast_overrides(config) for a in ("--set", s)],
    )
    assert code == 0, err
    for name in ("config.yaml", "metrics.json", "trajectory.npz", "run.log"):
        assert (out / name).is_file(), name
    assert list(out.glob("*.png")), "no plot written"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "n_steps",
        "wall_seconds",
        "compile_seconds",
        "run_seconds",
        "state_mean",
        "state_std",
    ):
        assert key in metrics, key
    assert metrics["finite"] and metrics["n_steps"] > 0
    raw = yaml.safe_load(config.read_text())
    lyap = raw.get("lyapunov")
    if lyap is not None:
        assert np.isfinite(metrics["lyapunov_max"])
        assert (out / "lyapunov.png").is_file()
        if lyap.get("num_exponents", 1) > 1:
            assert len(metrics["lyapunov"]) == lyap["num_exponents"]
            assert metrics["lyapunov"][0] == metrics["lyapunov_max"]
    else:
        assert "lyapunov_max" not in metrics
    data = np.load(out / "trajectory.npz")
    assert data["ys"].shape[0] == data["ts"].shape[0] == metrics["n_saves"]
    # The resolved config has every default filled in and is itself a valid config.
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["pipeline"] == "simulate" and "dpi" in resolved["plot"]
    code, stdout, err = run_cli(capsys, "run", out / "config.yaml", "--dry-run")
    assert code == 0, err
    assert yaml.safe_load(stdout) == resolved
    assert "integrated" in (out / "run.log").read_text()


def test_metrics_table_printed(tmp_path, capsys, monkeypatch):
    import jaxsci._progress

    asked = []  # the `disable` of every progress bar made (None: shown on a terminal)
    real = jaxsci._progress.tqdm
    monkeypatch.setattr(
        jaxsci._progress, "tqdm", lambda **kw: asked.append(kw["disable"]) or real(**kw)
    )
    code, out, err = run_cli(
        capsys,
        "run",
        ROOT / "configs/l63.yaml",
        "--out",
        tmp_path,
        "--quiet",
        "--set",
        "integrate.t1=0.1",
        "--set",
        "integrate.spinup=0",
        "--set",
        "lyapunov=null",
        "--set",
        "plot.enabled=false",
    )
    assert code == 0, err
    assert "n_steps" in out and "state_std" in out and str(tmp_path) in out
    assert asked == [True]  # --quiet: the simulation's progress bar is off even on a terminal
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "lyapunov.npz").exists()


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("integrate.dtt=0.1", "integrate.dtt", "did you mean 'integrate.dt'"),
        ("integrate.dt=-0.1", "integrate.dt", "> 0"),
        ("integrate.dt=abc", "integrate.dt", "expected float"),
        ("integrate.solver=RK5", "integrate.solver", "RK4"),
        ("integrate.solver=ETDRK4", "integrate.solver", "semilinear"),
        ("integrate.t1=-1", "integrate.t1", "t1 > t0"),
        ("model.name=Lorenz97", "model.name", "did you mean 'Lorenz96'"),
        ("model.params.sigmaa=3", "model.params.sigmaa", "did you mean 'model.params.sigma'"),
        ("model.params.rho=hot", "model.params.rho", "expected float"),
        ("lyapunov.num_exponents=4", "lyapunov.num_exponents", "state dimension 3"),
        ("lyapunov.interval=0", "lyapunov.interval", "> 0"),
        ("initial_condition.noise=-1", "initial_condition.noise", ">= 0"),
        ("plot.enabled=yes please", "plot.enabled", "expected bool"),
        ("integrate=3", "integrate", "mapping"),
        ("integrate.dt.x=1", "integrate.dt.x", "not a section"),
        ("pipeline=simulat", "pipeline", "did you mean 'simulate'"),
    ],
)
def test_bad_override_fails_naming_key(override, key, expected, tmp_path, capsys):
    out = tmp_path / "never"
    code, _, err = run_cli(
        capsys, "run", ROOT / "configs/l63.yaml", "--out", out, "--set", override
    )
    assert code == 2
    assert f"{key}:" in err and expected in err, err
    assert not out.exists(), "an invalid config must not create a run folder"


def test_bad_model_parameter_value_names_key(capsys):
    code, _, err = run_cli(
        capsys, "run", ROOT / "configs/ks.yaml", "--dry-run", "--set", "model.params.nu=-1"
    )
    assert code == 2 and "model.params.nu:" in err and "> 0" in err, err
    code, _, err = run_cli(
        capsys, "run", ROOT / "configs/ks.yaml", "--dry-run", "--set", "model.params.num_points=33"
    )
    assert code == 2 and "model.params.num_points:" in err and "even" in err, err


def test_misspelt_key_in_yaml_file(tmp_path, capsys):
    text = (ROOT / "configs/l63.yaml").read_text().replace("integrate:", "intgrate:")
    (tmp_path / "typo.yaml").write_text(text)
    code, _, err = run_cli(capsys, "run", tmp_path / "typo.yaml", "--out", tmp_path / "o")
    assert code == 2
    assert "intgrate: unknown key (did you mean 'integrate'?)" in err, err
    assert "valid keys: model, initial_condition, integrate, lyapunov, statistics, plot" in err

    text = (ROOT / "configs/l63.yaml").read_text().replace("save_every:", "save_evry:")
    (tmp_path / "typo2.yaml").write_text(text)
    code, _, err = run_cli(capsys, "run", tmp_path / "typo2.yaml", "--dry-run")
    assert (
        code == 2
        and "integrate.save_evry: unknown key (did you mean 'integrate.save_every'?)" in err
    )


def test_missing_file_and_missing_keys(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", tmp_path / "nope.yaml")
    assert code == 2 and "does not exist" in err
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    code, _, err = run_cli(capsys, "run", tmp_path / "empty.yaml")
    assert code == 2 and "pipeline:" in err
    (tmp_path / "nomodel.yaml").write_text("pipeline: simulate\n")
    code, _, err = run_cli(capsys, "run", tmp_path / "nomodel.yaml")
    assert code == 2 and "model:" in err and "missing" in err


def test_dry_run_applies_overrides_and_fills_defaults(capsys):
    code, out, err = run_cli(
        capsys,
        "run",
        ROOT / "configs/l96.yaml",
        "--dry-run",
        "--set",
        "model.params.forcing=10",
        "--set",
        "integrate.dt=1e-3",
        "--set",
        "model.name=lorenz96",
    )
    assert code == 0, err
    resolved = yaml.safe_load(out)
    assert resolved["model"] == {"name": "Lorenz96", "params": {"n": 40, "forcing": 10.0}}
    assert resolved["integrate"]["dt"] == 1e-3
    assert resolved["initial_condition"]["seed"] == 0 and resolved["plot"]["enabled"] is True


def test_list_shows_pipelines_and_configs(capsys):
    code, out, _ = run_cli(capsys, "list", "--configs", ROOT / "configs", "--schema")
    assert code == 0
    assert "simulate" in out and "KuramotoSivashinsky" in out
    for path in CONFIGS:
        first = path.read_text().splitlines()[0].lstrip("#").strip()
        assert path.name in out and first in out
    assert "save_every" in out  # --schema lists the keys


def test_usage_errors(capsys):
    assert run_cli(capsys, "frobnicate")[0] == 2
    assert run_cli(capsys)[0] == 2
    assert run_cli(capsys, "run", ROOT / "configs/l63.yaml", "--set", "noequals")[0] == 2


@pytest.mark.slow
def test_installed_entry_point(tmp_path):
    exe = shutil.which("jaxsci", path=str(Path(sys.executable).parent))
    assert exe is not None, "the `jaxsci` console script is not installed"
    listing = subprocess.run([exe, "list"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "quickstart.yaml" in listing.stdout
    out = tmp_path / "smoke"  # a run through the console script, log echoed to the terminal
    run = subprocess.run(
        [
            exe,
            "run",
            "configs/l63.yaml",
            "--out",
            str(out),
            "--set",
            "integrate.t1=0.2",
            "--set",
            "integrate.spinup=0",
            "--set",
            "lyapunov=null",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "state_std" in run.stdout and (out / "metrics.json").is_file()
    assert "integrated" in run.stderr  # the log is echoed to the terminal
    assert "integrated" in (out / "run.log").read_text()


def test_blow_up_fails_with_a_clear_message(tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        "run",
        ROOT / "configs/l63.yaml",
        "--out",
        tmp_path,
        "--quiet",
        "--set",
        "integrate.dt=0.5",
        "--set",
        "integrate.t1=5",
        "--set",
        "integrate.spinup=0",
        "--set",
        "lyapunov=null",
    )
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("jaxsci: run failed: EquinoxRuntimeError")
    assert "non-finite" in err and "non-finite" in (tmp_path / "run.log").read_text()
    assert (tmp_path / "config.yaml").is_file() and not (tmp_path / "metrics.json").exists()


def test_version(capsys):
    import jaxsci

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"jaxsci {jaxsci.__version__}"


def test_metrics_table_prints_nested_dicts_compactly():
    from jaxsci.pipelines import metrics_table

    table = metrics_table(
        {
            "error_rms": {"ddim": {5: 0.123456789, 10: 0.0123456}, "dpmpp_2m": {5: 0.1}},
            "order": {"ddim": 1.0123},
            "wall_seconds": 12.3456789,
        }
    )
    lines = table.splitlines()
    assert "error_rms.ddim      {5: 0.1235, 10: 0.01235}" in lines
    assert "error_rms.dpmpp_2m  {5: 0.1}" in lines
    assert "order.ddim          1.012" in lines and "wall_seconds        12.35" in lines
    assert "0.123456789" not in table


def test_progress_bars_are_silenced_as_a_block():
    import io

    from jaxsci._progress import progress_bar, progress_silenced

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert not progress_bar(True, total=3, file=Terminal()).disable
    assert progress_bar(False, total=3, file=Terminal()).disable
    with progress_silenced():
        assert progress_bar(True, total=3, file=Terminal()).disable
    assert not progress_bar(True, total=3, file=Terminal()).disable


_HEAVY = ("jax", "jaxlib", "equinox", "diffrax", "optax", "numpyro", "blackjax", "matplotlib")


def test_parsing_does_not_import_jax():
    """`--help`, `--version`, `run --help` and usage errors answer before JAX (or a jaxsci
    subpackage, which imports it) is imported: `jaxsci --help` takes a fraction of a second
    instead of the several seconds importing JAX and the library takes."""
    script = """
import contextlib, io, json, sys
from jaxsci.cli import main
codes = []
for argv in (["--help"], ["--version"], ["run", "--help"], ["frobnicate"], ["run"],
             ["run", "c.yaml", "--overwrite", "--resume"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(main(argv))
print(json.dumps([codes, sorted(sys.modules)]))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    codes, modules = json.loads(proc.stdout)
    assert codes == [0, 0, 0, 2, 2, 2]
    heavy = [m for m in modules if m.split(".")[0] in _HEAVY]
    ours = [m for m in modules if m.startswith("jaxsci.") and m != "jaxsci.cli"]
    assert not heavy and not ours, (heavy[:5], ours)


@pytest.mark.slow
def test_lazy_package_attributes():
    """`import jaxsci` imports no subpackage until one is used; `jaxsci.filters`,
    `jaxsci.simulate`, `from jaxsci import ...` and `from jaxsci import *` still work."""
    script = """
import sys
import jaxsci
assert "jax" not in sys.modules, "import jaxsci imported jax"
from jaxsci import simulate, Trajectory
import jaxsci.integrate
assert jaxsci.simulate is simulate is jaxsci.integrate.simulate
assert jaxsci.Trajectory is Trajectory and jaxsci.filters.run_filter is jaxsci.run_filter
assert jaxsci.metrics.mmd2 is not None and "dynamics" in dir(jaxsci)
namespace = {}
exec("from jaxsci import *", namespace)
assert namespace["Flow"] is jaxsci.integrate.Flow and namespace["smc"] is jaxsci.smc
assert "importlib" not in namespace
try:
    jaxsci.no_such_name
except AttributeError as err:
    assert "no_such_name" in str(err)
else:
    raise AssertionError("no AttributeError")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "flag, no_cache, env, jax_dir, expected",
    [
        (None, False, {}, None, ("HOME/.cache/jaxsci/xla", True)),
        (None, False, {"XDG_CACHE_HOME": "/x"}, None, ("/x/jaxsci/xla", True)),
        (None, False, {"XDG_CACHE_HOME": "/x"}, "/j", ("/j", False)),
        (None, False, {"JAXSCI_CACHE_DIR": "/e"}, "/j", ("/e", True)),
        ("/f", False, {"JAXSCI_CACHE_DIR": "/e"}, "/j", ("/f", True)),
        ("/f", True, {}, "/j", (None, True)),
        (
            None,
            False,
            {"JAXSCI_NO_COMPILE_CACHE": "1", "JAXSCI_CACHE_DIR": "/e"},
            None,
            (None, True),
        ),
        (None, False, {"JAXSCI_NO_COMPILE_CACHE": "0"}, "/j", ("/j", False)),
    ],
)
def test_compile_cache_folder_precedence(flag, no_cache, env, jax_dir, expected):
    """--no-compile-cache / JAXSCI_NO_COMPILE_CACHE > --cache-dir > JAXSCI_CACHE_DIR > a
    folder configured for JAX > $XDG_CACHE_HOME/jaxsci/xla > ~/.cache/jaxsci/xla."""
    from jaxsci.cli import cache_dir

    folder, ours = cache_dir(flag, no_cache, env, jax_dir)
    want = expected[0] and Path(expected[0].replace("HOME", str(Path.home())))
    assert (folder, ours) == (want, expected[1])


def test_run_log_records_the_compile_cache(tmp_path, capsys):
    """run.log says whether the persistent compilation cache was on and where; an
    in-process run leaves JAX's cache settings as it found them."""
    import jax

    before = dict(jax.config.values)
    short = ["--set", "integrate.t1=0.05", "--set", "integrate.spinup=0", "--set", "lyapunov=null"]
    config = ROOT / "configs/l63.yaml"
    code, _, err = run_cli(capsys, "run", config, "--out", tmp_path / "a", "--quiet", *short)
    assert code == 0, err
    session = jax.config.values["jax_compilation_cache_dir"]  # conftest's, or none
    line = f"XLA compilation cache: {session or 'off'}"
    assert line in (tmp_path / "a/run.log").read_text()
    code, _, err = run_cli(
        capsys, "run", config, "--out", tmp_path / "b", "--quiet", "--no-compile-cache", *short
    )
    assert code == 0, err
    assert "XLA compilation cache: off" in (tmp_path / "b/run.log").read_text()
    assert dict(jax.config.values) == before


@pytest.mark.slow
def test_compile_cache_persists_between_runs(tmp_path):
    """Two `jaxsci run`s of a tiny config in fresh processes: the first fills the default
    cache folder ($XDG_CACHE_HOME/jaxsci/xla), the second finds every program there (it
    adds no entry) and gives the same metrics; --no-compile-cache writes nothing."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JAX_COMPILATION_CACHE_DIR", "JAXSCI_CACHE_DIR", "JAXSCI_NO_COMPILE_CACHE")
    }
    short = ["--set", "integrate.t1=0.2", "--set", "integrate.spinup=0", "--set", "lyapunov=null"]

    def run(out, *extra, **more_env):
        proc = subprocess.run(
            [sys.executable, "-m", "jaxsci.cli", "run", "configs/l63.yaml", "--out", str(out)]
            + ["--quiet", *short, *extra],
            cwd=ROOT,
            env={**env, **more_env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        return {k: metrics[k] for k in ("state_mean", "state_std", "n_steps")}

    cache = tmp_path / "xdg/jaxsci/xla"
    cold = run(tmp_path / "cold", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    entries = sorted(p.name for p in cache.iterdir())
    assert entries, "the first run wrote nothing to the cache"
    assert f"XLA compilation cache: {cache}" in (tmp_path / "cold/run.log").read_text()
    warm = run(tmp_path / "warm", "--cache-dir", str(cache))
    assert warm == cold
    assert sorted(p.name for p in cache.iterdir()) == entries  # every program was a hit
    unused = tmp_path / "unused"
    off = run(tmp_path / "off", "--no-compile-cache", JAXSCI_CACHE_DIR=str(unused))
    assert off == cold and not unused.exists()
    assert "XLA compilation cache: off" in (tmp_path / "off/run.log").read_text()
