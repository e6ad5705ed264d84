"""Plot helpers of the pipelines (`jaxsci/pipelines/_plots.py`): what the figures show."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from matplotlib.colors import to_hex

from jaxsci.pipelines import _plots, load_config
from jaxsci.pipelines._diffusion import _gmm_figure

ROOT = Path(__file__).resolve().parents[2]


def _captured(monkeypatch):
    """Make `_plots._save` keep its figures (and write nothing); return the list they go to."""
    figures = []
    monkeypatch.setattr(_plots, "_save", lambda fig, path, dpi: figures.append(fig) or path)
    return figures


def test_lyapunov_plot_zooms_on_the_converged_part(monkeypatch, tmp_path):
    """Running estimates lambda_i + c_i / t + wiggle (a 1/t transient, as a running mean
    of a stationary sequence started off the average has): every exponent's axis holds the
    last half of its estimate, at most three times that half's range (its range padded by
    itself on each side), and clips the early transient, which spans a hundred times more."""
    figures = _captured(monkeypatch)
    times = 0.1 * np.arange(1, 5001)
    exponents = np.array([0.906, 0.0, -14.57])
    transient = np.array([-3.0, -6.0, 10.0])
    wiggle = 0.02 * np.sin(times)[:, None] / np.sqrt(times)[:, None]
    running = exponents + transient / times[:, None] + wiggle
    _plots.plot_lyapunov(times, running, "test", tmp_path, SimpleNamespace(dpi=50))
    (fig,) = figures
    for i in range(3):
        # the axes that draws exponent i's running estimate
        (ax,) = [
            ax
            for ax in fig.axes
            if any(np.array_equal(line.get_ydata(), running[:, i]) for line in ax.lines)
        ]
        lo, hi = ax.get_ylim()
        tail = running[len(times) // 2 :, i]
        assert lo <= tail.min() and tail.max() <= hi, (i, lo, hi)
        width = tail.max() - tail.min()
        assert hi - lo <= 3 * width * (1 + 1e-6), (i, hi - lo, width)
        assert not lo <= running[0, i] <= hi  # the first estimate is clipped
        assert np.ptp(running[:, i]) > 100 * (hi - lo)
    assert "zoomed" in fig.get_suptitle()  # the caption says so


def test_lyapunov_limits_of_a_settled_or_failed_estimate():
    """A constant tail still gets an axis around it; a tail of NaNs none (autoscale)."""
    lo, hi = _plots._converged_limits(np.full(10, -2.0))
    assert lo < -2.0 < hi and hi - lo < 0.01
    assert _plots._converged_limits(np.full(10, np.nan)) is None


def test_gmm_samplers_figure_gives_each_sampler_its_own_style():
    """The shipped gmm_samplers config compares 18 samplers: each line of the error plot has
    its own colour (matplotlib's default cycle has 10) and its own (colour, marker, linestyle)."""
    _, config = load_config(ROOT / "configs/gmm_samplers.yaml")
    assert len(config.samplers) == 18
    nfe = config.nfe
    rms = {s: {n: 1.0 / n ** (1 + i % 3) for n in nfe} for i, s in enumerate(config.samplers)}
    used = {s: {n: n for n in nfe} for s in config.samplers}
    fig = _gmm_figure(config, rms, rms, used)
    for ax in fig.axes:
        styles = [
            (to_hex(line.get_color()), line.get_marker(), line.get_linestyle()) for line in ax.lines
        ]
        assert len(styles) == 18
        assert len({c for c, _, _ in styles}) == 18, styles
        assert len(set(styles)) == 18, styles


def test_series_styles_distinct_and_stable_per_name():
    """20 names: 20 colours; a name keeps its style whatever else is plotted (its place in
    `known`); names outside `known` follow on."""
    known = [f"s{i}" for i in range(20)]
    styles = _plots.series_styles(known, known=known)
    assert len({tuple(v.values()) for v in styles.values()}) == 20
    assert len({v["color"] for v in styles.values()}) == 20
    subset = _plots.series_styles(["s7", "s3", "new"], known=known)
    assert subset["s7"] == styles["s7"] and subset["s3"] == styles["s3"]
    assert subset["new"] not in styles.values()
    many = _plots.series_styles([f"x{i}" for i in range(180)])
    assert len({tuple(v.values()) for v in many.values()}) == 180
