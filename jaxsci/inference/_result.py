"""`PosteriorResult`: draws per chain, sampler statistics, diagnostics, ArviZ export."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Key
from ._advice import Advice, diagnose as _diagnose
from ._diagnostics import summary as _summary
from ._samplers import AbstractSampler
from ._target import AbstractTarget, NumpyroModel


class PosteriorResult(eqx.Module):
    """The output of `posterior`.

    Attributes:
        draws: name -> constrained draws, shape (chains, draws, *shape): every parameter and,
            for numpyro models, every deterministic site.
        unconstrained: (chains, draws, dim) the sampler's positions.
        sample_stats: name -> (chains, draws) statistics of the post-warmup transitions:
            lp, diverging, tree_depth, step_size, acceptance_rate, n_steps, energy (ArviZ's
            names; see `StepInfo`).
        warmup_stats: the same over the warmup transitions, (chains, num_warmup).
        step_size: (chains,) adapted step size; inverse_mass_matrix: (chains, dim[, dim]).
        init: (chains, dim) unconstrained starting points.
        compile_seconds: lowering and compiling, as JAX reports them (`CompileClock`);
        warmup_seconds, sampling_seconds: wall time of the two phases, compilation excluded
            (tracing, which JAX does not report apart from nested traces, stays in the
            phase of the chunk that traced: the warmup's first).
        target, sampler: what was sampled, and how.
    """

    draws: dict[str, np.ndarray]
    unconstrained: np.ndarray
    sample_stats: dict[str, np.ndarray]
    warmup_stats: dict[str, np.ndarray]
    step_size: np.ndarray
    inverse_mass_matrix: np.ndarray
    init: np.ndarray
    compile_seconds: float
    warmup_seconds: float
    sampling_seconds: float
    target: AbstractTarget
    sampler: AbstractSampler

    @property
    def num_chains(self) -> int:
        return int(self.unconstrained.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.unconstrained.shape[1])

    @property
    def parameter_names(self) -> list[str]:
        """The sampled parameters (deterministic sites excluded)."""
        return list(self.target.shapes)

    @property
    def divergences(self) -> int:
        """Divergent post-warmup transitions, over all chains (Stan's count)."""
        return int(np.sum(self.sample_stats["diverging"]))

    @property
    def grad_evals(self) -> int:
        """Gradient evaluations (leapfrog steps) over all chains, warmup included."""
        return int(np.sum(self.sample_stats["n_steps"]) + np.sum(self.warmup_stats["n_steps"]))

    @property
    def seconds(self) -> float:
        """Wall time of warmup plus sampling, compilation excluded."""
        return float(self.warmup_seconds + self.sampling_seconds)

    def summary(self, var_names: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
        """Per-element summary (mean, sd, q5, q50, q95, mcse_mean, mcse_sd, ess_bulk,
        ess_tail, rhat), keyed `theta[1]`-style, from `jaxsci.inference.summary`.

        Arguments:
            var_names: which entries of `draws` (default: the parameters).
        """
        names = self.parameter_names if var_names is None else list(var_names)
        unknown = [n for n in names if n not in self.draws]
        if unknown:
            raise ValueError(
                f"`var_names` has unknown name(s) {unknown}; available: {list(self.draws)}."
            )
        return _summary({n: self.draws[n] for n in names})

    def diagnose(
        self, summary: Mapping[str, Mapping[str, float]] | None = None
    ) -> tuple[Advice, ...]:
        """What to change when the run failed a check: one `Advice` per failed check
        (divergences, R-hat > 1.01, ESS < 100 per chain, NUTS tree depth at its cap, E-BFMI
        < 0.3, and then a dense-mass hint for a correlated posterior sampled with a diagonal
        mass matrix), each naming the numbers and a setting to try (e.g. target_accept 0.8
        -> 0.95, `dense_mass=True`, a non-centred reparameterisation); empty for a clean run.
        `str(advice)` is one readable sentence pair. See `jaxsci.inference._advice`.

        Arguments:
            summary: `self.summary()` if already computed (else it is computed here).
        """
        return _diagnose(self, summary)

    def posterior_predictive(
        self,
        key: Key,
        fn: Callable[[Key, dict[str, Any]], Any] | None = None,
        *model_args: Any,
        **model_kwargs: Any,
    ) -> dict[str, np.ndarray]:
        """Simulate from the posterior predictive, one simulation per draw.

        Arguments:
            key: PRNG key.
            fn: `(key, params) -> dict of arrays` for one draw (vmapped over chains and
                draws). Required for log-density targets; for numpyro models leave it None
                to run the model (via `numpyro.infer.Predictive`) with `model_args` /
                `model_kwargs` (pass the observations as None to simulate them).

        Returns:
            name -> array (chains, draws, ...).
        """
        params = {n: jnp.asarray(self.draws[n]) for n in self.parameter_names}
        c, s = self.num_chains, self.num_samples
        if fn is None:
            if not isinstance(self.target, NumpyroModel):
                raise ValueError(
                    "`fn` is required for a log-density target: a function (key, params) -> "
                    "dict of simulated arrays."
                )
            from numpyro.infer import Predictive

            pred = Predictive(self.target.model, posterior_samples=params, batch_ndims=2)
            out = pred(key, *model_args, **model_kwargs)
            skip = set(params) | _factor_sites(
                self.target.model,
                {n: v[0, 0] for n, v in params.items()},
                key,
                model_args,
                model_kwargs,
            )
            return {k: np.asarray(v) for k, v in out.items() if k not in skip}
        if model_args or model_kwargs:
            raise ValueError(
                "`model_args`/`model_kwargs` are only for numpyro models with fn=None."
            )
        keys = jax.random.split(key, c * s).reshape(c, s)
        out = jax.jit(jax.vmap(jax.vmap(fn)))(keys, params)
        if not isinstance(out, Mapping):
            raise TypeError(f"`fn` must return a dict of arrays, got {type(out).__name__}.")
        return {k: np.asarray(v) for k, v in out.items()}

    def to_arviz(
        self,
        *,
        posterior_predictive: Mapping[str, Any] | None = None,
        observed_data: Mapping[str, Any] | None = None,
        include_warmup: bool = False,
    ):
        """An `arviz.InferenceData` with groups posterior, sample_stats (ArviZ's names:
        lp, diverging, tree_depth, step_size, acceptance_rate, n_steps, energy), and optionally
        posterior_predictive, observed_data and warmup_sample_stats."""
        import arviz as az

        stats = {k: v for k, v in self.sample_stats.items() if k in self.sampler.stat_names}
        kwargs: dict[str, Any] = {
            "posterior": dict(self.draws),
            "sample_stats": stats,
            "attrs": {
                "sampler": type(self.sampler).__name__,
                "num_warmup": int(self.warmup_stats["n_steps"].shape[1]),
                "compile_seconds": float(self.compile_seconds),
                "sampling_time": float(self.seconds),
            },
        }
        if posterior_predictive is not None:
            kwargs["posterior_predictive"] = dict(posterior_predictive)
        if observed_data is not None:
            kwargs["observed_data"] = {k: np.asarray(v) for k, v in observed_data.items()}
        if include_warmup:
            kwargs["warmup_sample_stats"] = {
                k: v for k, v in self.warmup_stats.items() if k in self.sampler.stat_names
            }
            kwargs["save_warmup"] = True
        return az.from_dict(**kwargs)


def _factor_sites(model, params, key, args, kwargs) -> set[str]:
    """The names of the `numpyro.factor` sites of `model` (e.g. the `<site>_solver_ok` guard
    of `observe`): log-density terms, not simulated quantities, which `Predictive` returns
    beside the sites. Found from one abstract trace of the model at one draw (`eval_shape`:
    nothing is computed, e.g. no ODE is solved)."""
    from numpyro import handlers
    from numpyro.distributions.distribution import Unit

    found: set[str] = set()

    def probe():
        traced = handlers.trace(handlers.seed(handlers.substitute(model, data=params), key))
        sites = traced.get_trace(*args, **kwargs)
        found.update(
            name
            for name, site in sites.items()
            if site["type"] == "sample" and isinstance(site["fn"], Unit)
        )
        return 0.0

    jax.eval_shape(probe)
    return found
