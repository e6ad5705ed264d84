r"""The `statistics:` section of `simulate`: is a turbulent flow statistically steady, and its
energy spectrum.

For a model of a (layered) 2-D flow, one that gives `energy(y)` (the total energy of a
state), `kinetic_energy(y)` (per layer) and `streamfunction(y)` (psi of shape
(*layers, n, n)), as `dynamics.TwoLayerQG` does: the energy time series of the whole run and
its statistics over the averaging window [start, t1], split in halves and quarters, the
time-mean isotropic kinetic-energy spectrum per layer over that window
(`spectral.kinetic_energy_spectrum`) and its log-log slope over a stated range of shells
(`metrics.fit_convergence_order`, a least-squares fit of log E against log k). Orchestration
only: the energies and the spectrum come from the library.

Steady-state metrics (all over the saves at t >= start):
  energy_mean_first_half, energy_std_first_half, energy_mean_second_half,
  energy_std_second_half    mean and standard deviation of the total energy in each half;
  energy_halves_change      (second - first) / second, the relative drift of the mean;
  energy_quarter_change     (last quarter - third quarter) / third quarter: a plateau is a
                            change within the quarters' own fluctuations (their std over
                            the mean divided by sqrt(number of independent samples));
  kinetic_energy_mean       the time mean of each layer's kinetic energy;
  spectral_slope            per layer, the slope of log E(k) against log k over the shells
                            slope_min <= k <= slope_max (mode numbers |m|, k = 2 pi |m| / L);
                            None where fewer than two shells of the range are on the grid.
"""

import dataclasses
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
from matplotlib.figure import Figure

from .. import metrics as jmetrics, spectral
from . import _plots
from ._schema import ConfigError, option

#: Saves evaluated per compiled call of the diagnostics (bounds the memory of a long run of
#: a large grid: 64 states of (2, 512, 512) float32 are 134 MB).
_CHUNK = 64


@dataclasses.dataclass(frozen=True)
class StatisticsSection:
    start: float | None = option(
        None,
        help="time label from which the time means are taken (the averaging window [start, "
        "t1]; default: t0, every save); the energy plot shows the whole run",
    )
    slope_min: float = option(
        3.0, gt=0.0, help="smallest mode number |m| of the shells the spectral slope is fit to"
    )
    slope_max: float = option(
        10.0, gt=0.0, help="largest mode number |m| of the shells the spectral slope is fit to"
    )
    time_scale: float = option(
        1.0, gt=0.0, help="plots show times divided by this (e.g. 31104000 s: 360-day years)"
    )
    time_label: str = option("t", help="the plots' time axis label")

    def __post_init__(self):
        if not self.slope_max > self.slope_min:
            raise ConfigError(
                "slope_max", f"expected > slope_min = {self.slope_min:g}, got {self.slope_max:g}"
            )


#: What a model must give for the statistics.
REQUIRED = ("energy", "kinetic_energy", "streamfunction")


def check_model(model: Any, name: str, key: str = "statistics") -> None:
    """A ConfigError on `key` unless `model` gives the diagnostics the statistics use."""
    missing = [m for m in REQUIRED if not callable(getattr(model, m, None))]
    if missing or not hasattr(model, "grid"):
        raise ConfigError(
            key,
            f"needs a model of a 2-D flow with a `grid` and {', '.join(REQUIRED)} methods "
            f"(e.g. TwoLayerQG); {name} lacks {', '.join(missing) or 'grid'}",
        )


def _batched(fn, ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """`fn` (returning a tuple of arrays) over the leading axis of `ys`, compiled once, in
    chunks of `_CHUNK` saves."""
    f = eqx.filter_jit(jax.vmap(fn))
    parts = []
    for i in range(0, len(ys), _CHUNK):
        chunk = ys[i : i + _CHUNK]
        pad = _CHUNK - len(chunk) if len(ys) > _CHUNK else 0  # one shape: one compile
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        parts.append([np.asarray(x)[: len(x) - pad] for x in f(chunk)])
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def _diagnostics(model, ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """(kappa, energy, kinetic energy per layer, KE spectrum per layer) of every state in
    `ys` (one compiled program)."""
    length = model.grid.length

    def one(y):
        psi = model.streamfunction(y)
        spectrum = spectral.kinetic_energy_spectrum(psi, length=length)[1]
        return model.energy(y), model.kinetic_energy(y), spectrum

    kappa = spectral.kinetic_energy_spectrum(np.zeros(model.grid.shape), length=length)[0]
    return (kappa, *_batched(one, ys))


def _slope(kappa: np.ndarray, spectrum: np.ndarray, lo: float, hi: float, length: float):
    m = kappa * length / (2 * np.pi)
    keep = (m >= lo - 1e-9) & (m <= hi + 1e-9)
    if keep.sum() < 2:
        return None
    order = jmetrics.fit_convergence_order(kappa[keep], spectrum[keep])
    return None if not np.isfinite(order) else -order


def flow_statistics(
    model, ts: np.ndarray, ys: np.ndarray, section: StatisticsSection
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metrics, arrays) of a trajectory: see the module docstring."""
    start = float(ts[0]) if section.start is None else section.start
    window = np.flatnonzero(ts >= start - 1e-9 * max(1.0, abs(start)))
    if window.size == 0:
        raise ValueError(f"statistics.start = {start:g} is after the last save t = {ts[-1]:g}")
    kappa, energy, kinetic, spectra = _diagnostics(model, ys)
    spectrum = spectra[window].mean(axis=0)
    e = energy[window]
    halves = np.array_split(e, 2)
    quarters = np.array_split(e, 4)
    length = model.grid.length
    spectrum_2d = spectrum.reshape(-1, spectrum.shape[-1])  # (layers, shells)
    slopes = [_slope(kappa, s, section.slope_min, section.slope_max, length) for s in spectrum_2d]

    def mean(x):
        return float(np.mean(x)) if len(x) else None

    def std(x):
        return float(np.std(x)) if len(x) else None

    def change(new, old):
        if not (len(new) and len(old)) or np.mean(old) == 0:
            return None
        return float((np.mean(new) - np.mean(old)) / np.mean(old))

    out: dict[str, Any] = {
        "statistics_start": start,
        "statistics_saves": int(window.size),
        "energy_mean": float(e.mean()),
        "energy_std": float(e.std()),
        "energy_mean_first_half": mean(halves[0]),
        "energy_std_first_half": std(halves[0]),
        "energy_mean_second_half": mean(halves[1]),
        "energy_std_second_half": std(halves[1]),
        "energy_halves_change": change(halves[1], halves[0]),
        "energy_quarter_change": change(quarters[3], quarters[2]),
        "kinetic_energy_mean": kinetic[window].mean(axis=0).tolist(),
        "spectral_slope": slopes,
        "spectral_slope_range": [section.slope_min, section.slope_max],
    }
    arrays = {
        "ts": ts,
        "energy": energy,
        "kinetic_energy": kinetic,
        "kappa": kappa,
        "spectrum_mean": spectrum,
        "window": window,
    }
    return out, arrays


def summary(metrics: dict[str, Any]) -> str:
    """One log line of the steady-state metrics."""

    def g(key, spec=".4g"):
        value = metrics[key]
        return "n/a" if value is None else format(value, spec)

    slopes = ", ".join("n/a" if s is None else f"{s:.2f}" for s in metrics["spectral_slope"])
    lo, hi = metrics["spectral_slope_range"]
    return (
        f"energy over t >= {metrics['statistics_start']:g} ({metrics['statistics_saves']} "
        f"saves): first half {g('energy_mean_first_half')} +- {g('energy_std_first_half', '.2g')}"
        f", second half {g('energy_mean_second_half')} +- {g('energy_std_second_half', '.2g')}; "
        f"last quarter vs third {g('energy_quarter_change', '+.3f')}; KE spectrum slope per "
        f"layer {slopes} over |m| in [{lo:g}, {hi:g}]"
    )


def plot_statistics(
    arrays: dict[str, np.ndarray],
    metrics: dict[str, Any],
    section: StatisticsSection,
    model,
    heading: str,
    run_dir: Path,
    dpi: int,
) -> list[Path]:
    """`energy.png` (the energy time series, the averaging window and its halves' means) and
    `spectrum.png` (the time-mean KE spectrum per layer, log-log, with the fitted slopes)."""
    return [
        _plots._save(
            _energy_figure(arrays, metrics, section, heading), run_dir / "energy.png", dpi
        ),
        _plots._save(
            _spectrum_figure(arrays, metrics, section, model, heading),
            run_dir / "spectrum.png",
            dpi,
        ),
    ]


def _energy_figure(arrays, metrics, section: StatisticsSection, heading: str) -> Figure:
    ts = arrays["ts"] / section.time_scale
    window = arrays["window"]
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(ts, arrays["energy"], color="0.15", lw=1.0, label="total energy")
    kinetic = arrays["kinetic_energy"].reshape(len(ts), -1)
    for i in range(kinetic.shape[1]):
        ax.plot(ts, kinetic[:, i], lw=0.8, alpha=0.8, label=f"kinetic energy, layer {i + 1}")
    tw = ts[window]
    ax.axvspan(tw[0], tw[-1], color="tab:green", alpha=0.08, label="averaging window")
    halves = np.array_split(tw, 2)
    for part, key in zip(halves, ("first_half", "second_half"), strict=True):
        m = metrics[f"energy_mean_{key}"]
        if len(part) and m is not None:
            sd = metrics[f"energy_std_{key}"]
            ax.hlines(m, part[0], part[-1], color="tab:red", lw=1.6)
            ax.text(part[0], m, f" {m:.3g} ± {sd:.2g}", va="bottom", fontsize=8, color="tab:red")
    ax.set_xlabel(section.time_label)
    ax.set_ylabel("energy per unit mass")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{heading}\nenergy; red: mean ± std over each half of the window", fontsize=10)
    return fig


def _spectrum_figure(arrays, metrics, section: StatisticsSection, model, heading) -> Figure:
    kappa, spec = arrays["kappa"], arrays["spectrum_mean"].reshape(-1, len(arrays["kappa"]))
    n = min(model.grid.shape)
    m = kappa * model.grid.length / (2 * np.pi)
    shown = (m >= 1) & (m <= n // 2)  # beyond n/2 the shells are only partly on the grid
    fig = Figure(figsize=(6.5, 5), layout="constrained")
    ax = fig.add_subplot()
    lo, hi = section.slope_min, section.slope_max
    fit = shown & (m >= lo - 1e-9) & (m <= hi + 1e-9)
    for i, (s, slope) in enumerate(zip(spec, metrics["spectral_slope"], strict=True)):
        label = f"layer {i + 1}" + (f"  (slope {slope:.2f})" if slope is not None else "")
        (line,) = ax.loglog(kappa[shown], s[shown], "o-", ms=3, lw=1, label=label)
        if slope is not None and fit.sum() >= 2:
            k = kappa[fit]
            anchor = np.exp(np.mean(np.log(s[fit])) - slope * np.mean(np.log(k)))
            ax.loglog(k, anchor * k**slope, "--", color=line.get_color(), lw=1.5)
    if fit.any():
        ax.axvspan(kappa[fit][0], kappa[fit][-1], color="0.5", alpha=0.1, label="fit range")
    top = float(np.max(spec[:, shown])) if shown.any() else 0.0
    if top > 0:  # the filtered shells fall by many decades: show eight below the peak
        ax.set_ylim(top * 1e-8, top * 3)
    ax.set_xlabel("wavenumber κ = 2π|m|/L")
    ax.set_ylabel("kinetic energy spectrum E(κ) (shell sum)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"{heading}\ntime-mean kinetic energy spectrum per layer", fontsize=10)
    return fig
