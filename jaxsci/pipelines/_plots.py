"""Plots for the pipelines: one kind per model family and the Lyapunov running estimates
(simulate), error curves and truth/analysis/error panels (assimilate), written as PNGs; the
shared helpers (`guard`, `series_styles`, `_save`) of the other pipelines' plots.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state, no GUI backend).
"""

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from .. import dynamics
from ._schema import option

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Run a pipeline's plotting: an error there is logged to run.log with its traceback
    and swallowed, so that a plot can never cost a run its metrics and arrays (computed
    before the plots and written by the runner)."""
    try:
        yield
    except Exception:
        logger.exception("plotting failed; the metrics and arrays are unaffected")


@dataclasses.dataclass(frozen=True)
class PlotSection:
    """The `plot:` section of pipelines whose plots take no options beyond these two."""

    enabled: bool = option(True, help="write PNG plots")
    dpi: int = option(120, ge=50, le=600)


_LABELS = {
    "Lorenz63": ("x", "y", "z"),
    "LotkaVolterra": ("prey (hare)", "predator (lynx)"),
    "SIR": ("S (susceptible)", "I (infected)", "R (recovered)"),
}
_NICE = {
    "Lorenz63": "Lorenz-63",
    "Lorenz96": "Lorenz-96",
    "Lorenz96TwoScale": "Two-scale Lorenz-96",
    "KuramotoSivashinsky": "Kuramoto-Sivashinsky",
    "Burgers": "Viscous Burgers",
    "NavierStokes2D": "2-D Navier-Stokes (vorticity)",
    "TwoLayerQG": "Two-layer quasi-geostrophic",
    "LotkaVolterra": "Lotka-Volterra",
    "SIR": "SIR epidemic",
}


def title(name: str, params: Mapping[str, Any], solver: str, dt: float) -> str:
    """'Model  p1=.., p2=..  |  solver, dt=..' (booleans and zero-valued terms left out)."""
    shown = [
        f"{k}={v:.4g}"
        for k, v in params.items()
        if not isinstance(v, bool) and isinstance(v, int | float) and v != 0
    ]
    return f"{_NICE.get(name, name)}   {', '.join(shown)}\n{solver}, dt={dt:g}"


# Styles of many series on one axes (e.g. the 15 samplers of gmm_samplers): 20 colours
# (matplotlib's tab10, then ten darker or brighter ones unlike them), 9 markers and 4 line
# styles. The i-th style differs in colour from every other of the first 20, and in the
# (colour, marker, line style) combination from every other of the first lcm(20, 9, 4) = 180.
_SERIES_COLOURS = (
    *(f"tab:{c}" for c in ("blue orange green red purple brown pink gray olive cyan".split())),
    "#000000",
    "#000080",
    "#e7298a",
    "#e6ab02",
    "#1b9e77",
    "#8b0000",
    "#6a3d9a",
    "#b15928",
    "#66a61e",
    "#00bfff",
    "#008080",
    "#ff1493",
    "#2f4f4f",
    "#9acd32",
    "#4682b4",
    "#d2691e",
)
_SERIES_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", "*")
_SERIES_LINESTYLES = ("-", "--", "-.", ":")


def series_styles(names: Sequence[str], known: Sequence[str] = ()) -> dict[str, dict[str, str]]:
    """A distinct (colour, marker, linestyle) per name, as `Axes.plot` keywords.

    A name's style is fixed by its position in `known` (a registry's names, so that a sampler
    looks the same in every run whatever else is plotted); names not in `known` follow on in
    their order in `names`.
    """
    extra = [n for n in dict.fromkeys(names) if n not in known]
    index = {n: i for i, n in enumerate([*known, *extra])}
    return {
        n: {
            "color": _SERIES_COLOURS[index[n] % len(_SERIES_COLOURS)],
            "marker": _SERIES_MARKERS[index[n] % len(_SERIES_MARKERS)],
            "linestyle": _SERIES_LINESTYLES[index[n] % len(_SERIES_LINESTYLES)],
        }
        for n in names
    }


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    """Write `fig` to `path`. Not logged here: the runner logs every file of the run folder
    once, in its closing `wrote ...` line."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _field_norm(values: np.ndarray):
    """A diverging colour scale centred on zero when the field takes both signs."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo < 0 < hi:
        m = max(-lo, hi)
        return "RdBu_r", TwoSlopeNorm(0.0, -m, m)
    return "viridis", None


def _hovmoller(ax, ts, xs, field, xlabel, cbar_label, fig, scale=None):
    cmap, norm = _field_norm(field) if scale is None else scale
    dx = (xs[1] - xs[0]) if len(xs) > 1 else 1.0
    extent = (ts[0], ts[-1], xs[0] - dx / 2, xs[-1] + dx / 2)
    im = ax.imshow(
        field.T,
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap=cmap,
        norm=norm,
        interpolation="nearest",
    )
    ax.set_xlabel("time t")
    ax.set_ylabel(xlabel)
    fig.colorbar(im, ax=ax, label=cbar_label, pad=0.015)


def plot_trajectory(
    model, ts: np.ndarray, ys: np.ndarray, heading: str, run_dir: Path, options
) -> list[Path]:
    """Write the plot(s) suited to `model`; return their paths."""
    name = type(model).__name__
    dpi = options.dpi
    if isinstance(model, dynamics.NavierStokes2D):
        return [
            _save(
                _ns_snapshots(model, ts, ys, heading, options.snapshots),
                run_dir / "vorticity.png",
                dpi,
            )
        ]
    if isinstance(model, dynamics.Lorenz96TwoScale):
        return [_save(_two_scale(model, ts, ys, heading), run_dir / "hovmoller.png", dpi)]
    if ys.ndim == 4:  # a layered 2-D field (layer, y, x), e.g. TwoLayerQG's PV
        return [
            _save(_layer_snapshots(ts, ys, heading, options.snapshots), run_dir / "layers.png", dpi)
        ]
    if ys.ndim == 2 and is_field(model, ys.shape[1]):
        return [_save(_field_1d(model, ts, ys, heading), run_dir / "hovmoller.png", dpi)]
    labels = _LABELS.get(name, tuple(f"y[{i}]" for i in range(ys.shape[1])))
    return [_save(_ode(name, ts, ys, labels, heading), run_dir / "timeseries.png", dpi)]


#: Vector states longer than this are drawn as fields (Hovmöller diagrams), shorter ones as
#: one time series per component (an epidemic or food-web ODE of 4-8 states).
_MAX_SERIES = 8


def is_field(model, dim: int) -> bool:
    """Whether a vector state of `dim` values is drawn as a field: a spectral PDE, a
    Lorenz-96 ring, or any state of more than `_MAX_SERIES` values."""
    spatial = isinstance(model, dynamics.AbstractSemilinear | dynamics.Lorenz96)
    return spatial or dim > _MAX_SERIES


def _space_axis(model, size: int) -> tuple[np.ndarray, str, bool]:
    """(positions, label, is a field): the grid of a 1-D spectral model, else site numbers."""
    if isinstance(model, dynamics.AbstractSemilinear) and model.grid.ndim == 1:
        return model.grid.coordinates()[0], "x", True
    return np.arange(size), "site i", False


def _field_1d(model, ts, ys, heading) -> Figure:
    xs, xlabel, field = _space_axis(model, ys.shape[1])
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.add_subplot()
    _hovmoller(ax, ts, xs, ys, xlabel, "$u(x, t)$" if field else "$x_i(t)$", fig)
    ax.set_title(f"{heading}  (Hovmöller diagram)", fontsize=10)
    return fig


def _two_scale(model, ts, ys, heading) -> Figure:
    k, j = model.k, model.j
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    _hovmoller(ax1, ts, np.arange(1, k + 1), ys[:, :k], "slow site k", "$X_k(t)$", fig)
    ax1.set_title(f"{heading}\nslow variables $X_k$", fontsize=10)
    ax1.set_xlabel("")
    fast_x = np.arange(k * j) / j + 1
    _hovmoller(ax2, ts, fast_x, ys[:, k:], "fast site (in units of k)", "$Y_{j,k}(t)$", fig)
    ax2.set_title(f"fast variables $Y_{{j,k}}$  (J={j} per slow site)", fontsize=10)
    return fig


def _ode(name, ts, ys, labels, heading) -> Figure:
    d = ys.shape[1]
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    grid = fig.add_gridspec(d, 2, width_ratios=(1.8, 1))
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for i in range(d):
        ax = fig.add_subplot(grid[i, 0])
        ax.plot(ts, ys[:, i], lw=0.8, color=colors[i % 4])
        ax.set_ylabel(labels[i], fontsize=9)
        ax.grid(alpha=0.3)
        if i < d - 1:
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("time t")
        if i == 0:
            ax.set_title("time series", fontsize=10)
    ax = fig.add_subplot(grid[:, 1])
    a, b = (0, 2) if name == "Lorenz63" else (0, 1)
    ax.plot(ys[:, a], ys[:, b], lw=0.5, color="0.25")
    ax.plot(ys[0, a], ys[0, b], "o", color="tab:green", label="start")
    ax.plot(ys[-1, a], ys[-1, b], "s", color="tab:red", label="end")
    ax.set_xlabel(labels[a])
    ax.set_ylabel(labels[b])
    ax.set_title("phase portrait", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.suptitle(heading, fontsize=10)
    return fig


def _ns_snapshots(model, ts, ys, heading, count) -> Figure:
    count = min(count, len(ts))
    idx = np.unique(np.linspace(0, len(ts) - 1, count).round().astype(int))
    m = float(np.max(np.abs(ys[idx]))) or 1.0
    fig = Figure(figsize=(3.1 * len(idx) + 1.2, 6.2), layout="constrained")
    grid = fig.add_gridspec(2, len(idx), height_ratios=(1.35, 0.65))
    length = model.length
    for col, i in enumerate(idx):
        ax = fig.add_subplot(grid[0, col])
        # State is indexed [x, y]; imshow wants [row=y, col=x].
        ax.imshow(
            ys[i].T,
            origin="lower",
            extent=(0, length, 0, length),
            cmap="RdBu_r",
            vmin=-m,
            vmax=m,
            interpolation="bilinear",
        )
        ax.set_title(f"t = {ts[i]:.4g}", fontsize=9)
        ax.set_xlabel("x")
        if col == 0:
            ax.set_ylabel("y")
        else:
            ax.tick_params(labelleft=False)
    shared = ScalarMappable(norm=Normalize(-m, m), cmap="RdBu_r")
    fig.colorbar(shared, ax=fig.axes, label="vorticity ω", shrink=0.9, pad=0.01)
    ax = fig.add_subplot(grid[1, :])
    enstrophy = 0.5 * np.mean(ys.reshape(len(ts), -1) ** 2, axis=1)
    ax.plot(ts, enstrophy, color="tab:purple", lw=1)
    ax.set_xlabel("time t")
    ax.set_ylabel("enstrophy ½⟨ω²⟩")
    ax.grid(alpha=0.3)
    fig.suptitle(heading, fontsize=10)
    return fig


def _layer_snapshots(ts, ys, heading, count) -> Figure:
    """Snapshots of every layer of states (time, layer, y, x), one colour scale per layer."""
    count = min(count, len(ts))
    idx = np.unique(np.linspace(0, len(ts) - 1, count).round().astype(int))
    layers = ys.shape[1]
    fig = Figure(figsize=(2.8 * len(idx) + 1.4, 2.7 * layers + 0.6), layout="constrained")
    axes = np.asarray(fig.subplots(layers, len(idx), squeeze=False))
    for layer in range(layers):
        m = float(np.max(np.abs(ys[idx, layer]))) or 1.0
        for col, i in enumerate(idx):
            ax = axes[layer, col]
            # State is indexed [y, x] (pyqg's layout): rows are y, as imshow wants.
            ax.imshow(ys[i, layer], origin="lower", cmap="RdBu_r", vmin=-m, vmax=m)
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"t = {ts[i]:.4g}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"layer {layer + 1}")
        shared = ScalarMappable(norm=Normalize(-m, m), cmap="RdBu_r")
        fig.colorbar(shared, ax=list(axes[layer]), shrink=0.9, pad=0.01, format="%.1e")
    fig.suptitle(f"{heading}\nstate per layer (e.g. potential vorticity)", fontsize=10)
    return fig


def plot_lyapunov(times, running, heading, run_dir: Path, options) -> Path:
    """Running Lyapunov estimates against averaging time, one panel per exponent."""
    return _save(_lyapunov_figure(times, running, heading), run_dir / "lyapunov.png", options.dpi)


def _converged_limits(values: np.ndarray) -> tuple[float, float] | None:
    """y-limits around the last half of a running estimate: its range, padded by that range
    on each side (at least 1e-3 of the value's scale, so that an estimate that has settled to
    a constant still gets an axis), or None if that half holds no finite value. The early
    transient (often orders of magnitude wider than the final fluctuations) falls outside."""
    tail = values[len(values) // 2 :]
    tail = tail[np.isfinite(tail)]
    if tail.size == 0:
        return None
    lo, hi = float(tail.min()), float(tail.max())
    pad = max(hi - lo, 1e-3 * max(1.0, abs(lo), abs(hi)))
    return lo - pad, hi + pad


def _lyapunov_figure(times, running, heading) -> Figure:
    k = running.shape[1]
    rows = min(k, 4)
    cols = math.ceil(k / rows)
    fig = Figure(figsize=(7 if cols == 1 else 4 * cols, 1.8 + 1.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False).T.ravel()
    for i, ax in enumerate(axes):
        if i >= k:
            ax.set_visible(False)
            continue
        final = running[-1, i]
        ax.plot(times, running[:, i], lw=1, color="tab:blue")
        ax.axhline(final, color="tab:red", lw=0.8, ls="--")
        ax.axhline(0.0, color="0.5", lw=0.6)
        limits = _converged_limits(running[:, i])
        if limits is not None:
            ax.set_ylim(*limits)
        ax.set_xscale("log")
        ax.set_title(f"$\\lambda_{{{i + 1}}}$ = {final:.4g} (dashed)", fontsize=9, loc="left")
        ax.set_ylabel(f"$\\lambda_{{{i + 1}}}$ estimate", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        if i % rows == rows - 1 or i == k - 1:  # the lowest panel of its column
            ax.set_xlabel("averaging time")
            ax.tick_params(labelbottom=True)
    fig.suptitle(
        f"{heading}\nLyapunov exponents (per unit time), running estimates\n"
        "each y-axis zoomed on the last half of the run: the early transient is clipped",
        fontsize=10,
    )
    return fig


# ---------------------------------------------------------------------------- assimilate


def assimilation_title(name: str, params: Mapping[str, Any], filt: str, obs: str) -> str:
    """'Model  p1=.., p2=..' over 'filter settings  |  observation settings'."""
    shown = [
        f"{k}={v:.4g}"
        for k, v in params.items()
        if not isinstance(v, bool) and isinstance(v, int | float) and v != 0
    ]
    return f"{_NICE.get(name, name)}   {', '.join(shown)}\n{filt}   |   {obs}"


def plot_assimilation(
    model,
    series: Mapping[str, np.ndarray],
    metrics: Mapping[str, Any],
    burn_in: float,
    noise_std: float,
    heading: str,
    run_dir: Path,
    options,
) -> list[Path]:
    """rmse/spread against time, and truth vs analysis (Hovmöller panels or time series).

    `series` holds `times` (K,), `rmse_a` and `spread_a` (seeds, K), and for the first seed
    `truth`, `mean_a` (K, dim), `observations` (K, obs) and `observed_indices` (obs,).
    """
    dpi = options.dpi
    paths = [
        _save(_rmse_spread(series, metrics, burn_in, noise_std, heading), run_dir / "rmse.png", dpi)
    ]
    k = min(options.window, len(series["times"]))
    window = {key: series[key][-k:] for key in ("times", "truth", "mean_a", "observations")}
    if is_field(model, series["truth"].shape[1]):
        fig = _assimilation_hovmoller(model, window, heading)
        paths.append(_save(fig, run_dir / "hovmoller.png", dpi))
    else:
        name = type(model).__name__
        labels = _LABELS.get(name, tuple(f"y[{i}]" for i in range(series["truth"].shape[1])))
        fig = _assimilation_series(window, series["observed_indices"], labels, heading)
        paths.append(_save(fig, run_dir / "timeseries.png", dpi))
    return paths


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average (NaN where the window reaches past either end)."""
    if width <= 1:
        return x
    out = np.full_like(x, np.nan)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    half = width // 2
    out[half : half + len(x) - width + 1] = (csum[width:] - csum[:-width]) / width
    return out


def _rmse_spread(series, metrics, burn_in, noise_std, heading) -> Figure:
    ts, rmse, spread = series["times"], series["rmse_a"], series["spread_a"]
    # Thousands of cycles: the raw per-cycle values faint, a moving average over ~1% of the
    # run on top, so that the level and any drift stay readable.
    width = max(1, len(ts) // 100) if len(ts) >= 500 else 1
    smooth = f" ({width}-cycle moving average)" if width > 1 else ""
    raw_alpha = 0.35 if width > 1 else 1.0
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for s in range(1, rmse.shape[0]):
        label = f"rmse, other seeds{smooth}" if s == 1 else None
        ax.plot(ts, _moving_average(rmse[s], width), lw=0.8, color="0.6", label=label, zorder=1)
    for values, color, name in ((rmse[0], "tab:blue", "rmse"), (spread[0], "tab:orange", "spread")):
        if width > 1:
            ax.plot(ts, values, lw=0.4, color=color, alpha=raw_alpha, zorder=2)
        ax.plot(
            ts,
            _moving_average(values, width),
            lw=1.3,
            color=color,
            zorder=3,
            label=f"analysis {name}{smooth}",
        )
    ax.axhline(noise_std, color="0.3", lw=0.9, ls="--", label="observation noise std")
    threshold = metrics.get("divergence_threshold", math.nan)
    if math.isfinite(threshold) and threshold > 0:
        ax.axhline(threshold, color="tab:red", lw=0.9, ls="-.", label="divergence threshold")
    if math.isfinite(metrics["rmse_a"]):
        ax.axhline(
            metrics["rmse_a"],
            color="k",
            lw=1.0,
            ls=":",
            label=f"rmse_a = {metrics['rmse_a']:.3g} (mean after burn-in)",
        )
    if burn_in > 0:
        ax.axvspan(0.0, burn_in, color="0.92", lw=0, zorder=0)
        ax.text(
            burn_in / 2,
            0.03,
            "burn-in",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
            color="0.35",
        )
    ax.set_yscale("log")
    ax.set_xlim(0, ts[-1])
    ax.set_xlabel("time t")
    ax.set_ylabel("RMS over state components")
    seeds = f" (medians of {metrics['n_seeds']} seeds)" if "n_seeds" in metrics else ""
    diverged = "   DIVERGED" if metrics["diverged"] else ""
    ax.set_title(
        f"{heading}\nrmse_a = {metrics['rmse_a']:.4g}, spread_a = {metrics['spread_a']:.4g}"
        f"{seeds}{diverged}",
        fontsize=10,
    )
    fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    ax.grid(alpha=0.3, which="both")
    return fig


def _assimilation_hovmoller(model, window, heading) -> Figure:
    ts, truth, mean = window["times"], window["truth"], window["mean_a"]
    xs, xlabel, field = _space_axis(model, truth.shape[1])
    symbol = "u" if field else "x_i"
    finite = np.isfinite(mean)
    both = np.concatenate([truth.ravel(), mean[finite]])
    scale = _field_norm(both)
    error = np.where(finite, mean - truth, np.nan)
    m = float(np.nanmax(np.abs(error))) if finite.any() else 1.0
    error_scale = ("RdBu_r", TwoSlopeNorm(0.0, -(m or 1.0), m or 1.0))
    fig = Figure(figsize=(10, 7.6), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    panels = (
        (truth, "truth", f"${symbol}$", scale),
        (mean, "analysis mean", f"${symbol}$", scale),
        (error, "error (analysis - truth)", "error", error_scale),
    )
    for ax, (field, name, label, sc) in zip(axes, panels, strict=True):
        _hovmoller(ax, ts, xs, field, xlabel, label, fig, scale=sc)
        ax.set_title(name, fontsize=10, loc="left")
        if ax is not axes[-1]:
            ax.set_xlabel("")
    fig.suptitle(heading, fontsize=10)
    return fig


def _assimilation_series(window, observed, labels, heading) -> Figure:
    ts, truth, mean, obs = (window[k] for k in ("times", "truth", "mean_a", "observations"))
    d = truth.shape[1]
    fig = Figure(figsize=(10, 1.2 + 1.9 * d), layout="constrained")
    axes = fig.subplots(d, 1, sharex=True, squeeze=False)[:, 0]
    for i, ax in enumerate(axes):
        ax.plot(ts, truth[:, i], lw=1.0, color="k", label="truth")
        ax.plot(ts, mean[:, i], lw=1.0, color="tab:red", ls="--", label="analysis mean")
        where = np.flatnonzero(np.asarray(observed) == i)
        if where.size:
            ax.plot(
                ts, obs[:, where[0]], ".", ms=3, color="tab:blue", alpha=0.6, label="observations"
            )
        ax.set_ylabel(labels[i])
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    axes[-1].set_xlabel("time t")
    axes[-1].set_xlim(ts[0], ts[-1])
    fig.suptitle(f"{heading}\ntruth and analysis at the analysis times", fontsize=10)
    return fig
