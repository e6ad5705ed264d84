"""`FilterLikelihoodLoss`: the negative ensemble-filter log-likelihood of observation windows,
the loss that learns a model (a closure) from noisy, sparse observations alone."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int, check_positive, finite_float
from .._custom_types import Array, Float, Key, PyTree
from ..dynamics import AbstractDynamics
from ..filters import AbstractFilter, FilterResult, run_filter
from ..integrate import Flow
from ..observations import AbstractObservation
from ._base import AbstractLoss, example_keys


def _check_windows(batch) -> tuple[Array, Array]:
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise TypeError(
            "`batch` must be a pair (initial ensembles (B, N, dim), observations "
            f"(B, cycles, obs)), got {type(batch).__name__}."
        )
    ens, ys = (jnp.asarray(a) for a in batch)
    if ens.ndim != 3 or ys.ndim != 3 or ens.shape[0] != ys.shape[0]:
        raise ValueError(
            "`batch` must be (initial ensembles (B, N, dim), observations (B, cycles, obs)) "
            f"with a common B, got shapes {ens.shape} and {ys.shape}."
        )
    return ens, ys


class FilterLikelihoodLoss(AbstractLoss):
    r"""Minus the ensemble-filter log-likelihood of windows of observations, per cycle:

        loss(model) = -(1 / (B (L - L0))) sum_b sum_{k > L0} log p(y_{b,k} | y_{b,1:k-1}; model),

    each window b filtered by `filter` from its initial ensemble, forecasts by the model's
    `Flow` (one step of length `dt`, vmapped over members), L cycles of which the first
    L0 = `burn_in` only spin the filter up. For ensemble Kalman filters each term is the
    Gaussian log N(y_k; mean h(E_f), Y_f Y_f^T/(N-1) + R) of the forecast ensemble (the
    "EnKF likelihood"; `jaxsci.filters.log_likelihood`). Minimising it over the model's
    parameters (e.g. the weights of a `jaxsci.nn.HybridVectorField` closure) fits the model to
    the observations alone, gradients flowing through the forecasts and the analyses -- the
    differentiable-filter counterpart of learning a closure from data-assimilation analyses
    (Brajard et al. 2021, Phil. Trans. R. Soc. A 379; Bocquet et al. 2020, Found. Data Sci. 2).

    The interface is `jaxsci.losses.AbstractLoss`'s, so `jaxsci.train.fit(model, loss, windows,
    ...)` is the training driver: Adam (or any optax transformation) over minibatches of windows,
    a history of the loss, and a non-finite loss stops training (raised, or reported in
    `history["stopped"]` with `throw=False`). `batch` is (initial ensembles (B, N, dim),
    observations (B, L, obs)); `filter_windows` cuts them from one filtered record. `key`
    (required) feeds the filter (split per window). aux: `finite`, the fraction of windows whose
    analyses stayed finite, and `spread_a`, the mean analysis spread.

    Arguments:
        obs_op: the observation model of every cycle.
        filter: an ensemble filter with a smooth analysis (DEnKF, EnKF, ETKF, LETKF, with
            `Inflation`), see `jaxsci.filters.log_likelihood`.
        dt: time between observations.
        burn_in: L0 >= 0 cycles per window left out of the loss.
        step: the `Flow`'s solver step (default `dt`: one step per cycle).
        max_steps: the `Flow`'s solver step bound (a small one keeps the reverse pass of
            diffrax's checkpointed adjoint small).
        solver: the `Flow`'s diffrax solver (default: the model's default step solver).
    """

    obs_op: AbstractObservation
    filter: AbstractFilter
    solver: PyTree
    dt: float = eqx.field(static=True)
    step: float = eqx.field(static=True)
    burn_in: int = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        obs_op: AbstractObservation,
        filter: AbstractFilter,
        dt: float,
        *,
        burn_in: int = 0,
        step: float | None = None,
        max_steps: int = 4,
        solver: PyTree = None,
    ):
        if not isinstance(obs_op, AbstractObservation):
            raise TypeError(
                f"`obs_op` must be an AbstractObservation, got {type(obs_op).__name__}."
            )
        if not isinstance(filter, AbstractFilter):
            raise TypeError(f"`filter` must be an AbstractFilter, got {type(filter).__name__}.")
        self.dt = finite_float("dt", dt)
        check_positive("dt", self.dt)
        self.step = self.dt if step is None else finite_float("step", step)
        check_positive("step", self.step)
        self.burn_in = check_int("burn_in", burn_in, minimum=0)
        self.max_steps = check_int("max_steps", max_steps)
        self.obs_op = obs_op
        self.filter = filter
        self.solver = solver

    def flow(self, model: AbstractDynamics) -> Flow:
        """The model step the filter forecasts with."""
        return Flow(model, self.step, solver=self.solver, max_steps=self.max_steps)

    def run(self, model: AbstractDynamics, ensemble, observations, *, key: Key) -> FilterResult:
        """`run_filter` of one window with this loss's filter and the model's flow."""
        return run_filter(
            key, self.flow(model), self.obs_op, self.filter, ensemble, observations, dt=self.dt
        )

    def __call__(
        self, model: AbstractDynamics, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        if not isinstance(model, AbstractDynamics):
            raise TypeError(f"`model` must be an AbstractDynamics, got {type(model).__name__}.")
        ens, ys = _check_windows(batch)
        if ys.shape[1] <= self.burn_in:
            raise ValueError(
                f"`batch` windows have {ys.shape[1]} cycles; `burn_in` = {self.burn_in} leaves "
                "none for the loss."
            )
        keys = example_keys(key, ens.shape[0], "FilterLikelihoodLoss")
        res = jax.vmap(lambda k, e, y: self.run(model, e, y, key=k))(keys, ens, ys)
        ll = res.log_likelihood[:, self.burn_in :]
        aux = {
            "finite": jnp.mean(jnp.all(res.finite, axis=1).astype(ll.dtype)),
            "spread_a": jnp.mean(res.spread_a),
        }
        return -jnp.mean(ll), aux


def window_starts(num_cycles: int, length: int, stride: int) -> np.ndarray:
    """The 1-based cycles s_w = 1 + w `stride` whose analysis ensembles start the windows of
    `length` cycles that `filter_windows` cuts from a record of `num_cycles` cycles (window w
    holds the observations of cycles s_w + 1 .. s_w + `length` <= `num_cycles`); empty when
    none fits."""
    length, stride = check_int("length", length), check_int("stride", stride)
    num_cycles = check_int("num_cycles", num_cycles, minimum=0)
    # no window fits when length >= num_cycles (max: a huge length would overflow arange)
    return np.arange(1, max(1, num_cycles - length + 1), stride)


def filter_windows(
    result: FilterResult, observations: Float[Array, "time obs"], length: int, stride: int
) -> tuple[Float[Array, "window ens dim"], Float[Array, "window length obs"]]:
    """Training windows cut from one filtered record: (initial ensembles, observations).

    Window w starts from the analysis ensemble of cycle s_w = 1 + w `stride` (1-based cycles
    as `run_filter`'s, `window_starts`; `result` must store its ensembles) and holds the
    `length` observations of cycles s_w + 1 .. s_w + `length`: the batches of
    `FilterLikelihoodLoss`.

    Arguments:
        result: `run_filter(..., store_ensembles=True)` over `observations`.
        observations: the (K, obs) observations it filtered.
        length: cycles per window (>= 1).
        stride: cycles between window starts (>= 1).
    """
    if result.ensembles is None:
        raise ValueError("`result` must store its ensembles (run_filter(store_ensembles=True)).")
    n = observations.shape[0]
    starts = window_starts(n, length, stride).tolist()
    if not starts:
        raise ValueError(f"`length` {length} leaves no window in {n} cycles.")
    ens = jnp.stack([result.ensembles[s - 1] for s in starts])
    ys = jnp.stack([observations[s : s + length] for s in starts])
    return ens, ys
