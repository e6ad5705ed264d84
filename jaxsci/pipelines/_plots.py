"""Plots for the `simulate` pipeline: one kind per model family, written as PNGs.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state, no GUI backend).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from .. import dynamics

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


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _field_norm(values: np.ndarray):
    """A diverging colour scale centred on zero when the field takes both signs."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo < 0 < hi:
        m = max(-lo, hi)
        return "RdBu_r", TwoSlopeNorm(0.0, -m, m)
    return "viridis", None


def _hovmoller(ax, ts, xs, field, xlabel, cbar_label, fig):
    cmap, norm = _field_norm(field)
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
    if ys.ndim == 2 and ys.shape[1] > 3:
        return [_save(_field_1d(model, ts, ys, heading), run_dir / "hovmoller.png", dpi)]
    labels = _LABELS.get(name, tuple(f"y[{i}]" for i in range(ys.shape[1])))
    return [_save(_ode(name, ts, ys, labels, heading), run_dir / "timeseries.png", dpi)]


def _field_1d(model, ts, ys, heading) -> Figure:
    grid = getattr(model, "grid", None)
    if grid is not None:
        xs, xlabel = np.asarray(grid), "x"
    else:
        xs, xlabel = np.arange(ys.shape[1]), "site i"
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.add_subplot()
    _hovmoller(ax, ts, xs, ys, xlabel, "$u(x, t)$" if grid is not None else "$x_i(t)$", fig)
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


def plot_lyapunov(times, running, heading, run_dir: Path, options) -> Path:
    """Running Lyapunov estimates against averaging time."""
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for i in range(running.shape[1]):
        ax.plot(times, running[:, i], lw=1, label=f"$\\lambda_{i + 1}$ = {running[-1, i]:.4g}")
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("averaging time")
    ax.set_ylabel("running estimate (per unit time)")
    ax.set_title(f"{heading}\nLyapunov exponents", fontsize=10)
    ax.legend(fontsize=8, ncol=1 + running.shape[1] // 6)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, run_dir / "lyapunov.png", options.dpi)
