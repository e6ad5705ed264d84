r"""DPM-Solver-v3: empirical model statistics and the multistep predictor-corrector.

Zheng, Lu, Bao & Zhu (2023), "DPM-Solver-v3: Improved Diffusion ODE Solver with Empirical
Model Statistics" (NeurIPS 2023, arXiv:2310.13268).

With x^ = x/alpha and lambda = log(alpha/sigma), the probability-flow ODE in lambda is
dx^/dlambda = -e^{-lambda} eps(x, lambda). DPM-Solver-v3 splits its right-hand side with
three per-coordinate functions of lambda, the empirical model statistics (EMS) l, s, b:

    e^{-lambda} eps = l x^ + f,   f = (sigma eps - l x)/alpha,
    df/dlambda ~ s f + b  (along the ODE),

and Taylor-expands, instead of eps or x0, the function

    g(lambda) = e^{-(S_lambda - S_s)} f(lambda) - int_{lambda_s}^{lambda} e^{-(S_r - S_s)} b_r dr,

(S = int s, L = int l), which is constant when the model is exactly linear in the sense of
the statistics. Variation of constants gives the exact step from lambda_s to lambda_t
(paper, eq. 9):

    x_t = alpha_t e^{-(L_t - L_s)} [ x_s/alpha_s
          - sum_k J_k g^{(k)}(lambda_s) - int_s^t e^{(L+S)-(L_s+S_s)} B~(lambda) dlambda ],
    J_k = int_s^t e^{(L_lambda + S_lambda) - (L_s + S_s)} (lambda - lambda_s)^k / k! dlambda,

with B~(lambda) = int_s^lambda e^{-(S_r - S_s)} b_r dr. l = 1, s = b = 0 makes f = -x0 and
g = -x0: the method is then DPM-Solver++ in its Taylor form (paper, appendix A.2); with
l = s = b = 0 it expands e^{-lambda} eps, a noise-prediction method.

The statistics minimise (paper, eqs. 7 and 8, appendix C.1.1):

* l_lambda = argmin E ||grad_x N(x_lambda, lambda)||_F^2 with N = sigma eps - l x: the
  diagonal of the Jacobian, l = E[sigma diag(grad_x eps)];
* (s_lambda, b_lambda) = argmin E ||f^{(1)} - s f - b||^2, f^{(1)} the total derivative of f
  along the ODE: the per-coordinate least-squares line, s = Cov(f^{(1)}, f)/Var(f),
  b = E f^{(1)} - s E f,

expectations over x_lambda = alpha x0 + sigma n (x0 from data, n ~ N(0, I)).
"""

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int, check_key
from .._custom_types import Array, Float, Int, Key
from ._base import check_schedule
from ._exponential import AbstractWarmup, LowerOrderWarmup, _check_structure, _effective_order
from ._parameterization import Denoiser
from ._sampler import (
    AbstractMultistepSampler,
    GridArrays,
    SamplerState,
    StepInfo,
    grid_arrays,
    lower_order_final_below_field,
    lower_order_final_field,
    lower_order_final_ratio_field,
    step_info,
)

# Uniform sub-steps of the RK4 quadrature of the statistics' integrals (L, S, B~, J_k, ...)
# over one sampler step; the table's lambda nodes inside the step are added as further
# sub-step ends, so every sub-step lies where the (spline-interpolated) statistics are one
# cubic and the quadrature error is O((h/64)^4) with h the step (smooth integrands).
_QUADRATURE_SUBSTEPS = 64


class ModelStatistics(eqx.Module):
    r"""Empirical model statistics (EMS) of DPM-Solver-v3 on a table of lambdas.

    `lam` (num_lambdas,) strictly increasing log-SNRs lambda = log(alpha/sigma); `l`, `s`,
    `b` (num_lambdas, *shape): the statistics l_lambda, s_lambda, b_lambda at each of them,
    per coordinate of one example (see the module doc). The sampler interpolates them with
    natural cubic splines in lambda. Built by `model_statistics`; `l = 1, s = b = 0` on any
    table gives DPM-Solver++ (Taylor form).
    """

    lam: Float[Array, " k"]
    l: Float[Array, " k *shape"]  # noqa: E741 (the paper's name)
    s: Float[Array, " k *shape"]
    b: Float[Array, " k *shape"]

    def __check_init__(self):
        lam = self.lam
        if jnp.ndim(lam) != 1 or jnp.shape(lam)[0] < 2:
            raise ValueError(
                f"`lam` must be a 1-D table of at least 2 log-SNRs, got shape {jnp.shape(lam)}."
            )
        k = jnp.shape(lam)[0]
        shape = jnp.shape(self.l)
        for name, arr in (("l", self.l), ("s", self.s), ("b", self.b)):
            got = jnp.shape(arr)
            if len(got) < 1 or got[0] != k or got != shape:
                raise ValueError(
                    f"`{name}` must have shape (num_lambdas, *example_shape) = ({k}, ...) like "
                    f"`l` {shape}; got {got}."
                )
        try:
            increasing = bool(jnp.all(jnp.diff(lam) > 0))
        except jax.errors.ConcretizationTypeError:
            increasing = True  # traced: not checkable here
        if not increasing:
            raise ValueError("`lam` must be strictly increasing (noise end first).")

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example."""
        return tuple(jnp.shape(self.l)[1:])


def model_statistics(
    denoiser: Denoiser,
    x0: Float[Array, " batch *shape"],
    key: Key,
    *,
    num_lambdas: int = 201,
    lambda_range: tuple[float, float] | None = None,
) -> ModelStatistics:
    r"""The empirical model statistics (EMS) l, s, b of `denoiser` (Zheng et al. 2023, C.1.1).

    For every lambda of a uniform table, each data sample x0_j is noised to
    x_j = alpha x0_j + sigma n_j (n_j ~ N(0, I), the same n_j, and the same probe v_j, at
    every lambda, so the tables are smooth in lambda). Then, per coordinate:

    * l = mean_j sigma v_j * (J_j v_j), with J_j v_j the JVP of eps along x at x_j and
      v_j a Rademacher probe (Hutchinson's estimator of diag(sigma grad_x eps); exact when the
      Jacobian is diagonal);
    * dl/dlambda, the derivative of the same mean, by a JVP along the noising path
      (d/dlambda E[.] = E[d/dlambda .] for the fixed x0_j, n_j, v_j);
    * f_j = e^{-lambda} eps_j - l x^_j (x^ = x/alpha) and its total derivative along the ODE
      dx^/dlambda = -e^{-lambda} eps: f'_j = d(e^{-lambda} eps)/dlambda (a JVP along
      (dx^/dlambda, 1)) - l' x^_j + l e^{-lambda} eps_j;
    * s = Cov(f', f)/(Var(f) + kappa mean(f^2)), b = mean f' - s mean f: the least-squares
      line of f' on f. kappa = sqrt(machine epsilon) regularises coordinates where f does
      not vary (f is exactly constant for Gaussian data: then s = 0 and b = mean f').

    Cost: 3 forward-mode passes per sample and lambda (num_lambdas * batch model JVPs).

    Arguments:
        denoiser: the model (`Denoiser`, with its schedule).
        x0: a batch of data-like samples (a few hundred to a few thousand in the paper).
        key: PRNG key of the noises and probes.
        num_lambdas: table size (uniform in lambda, >= 2).
        lambda_range: (lambda_min, lambda_max) of the table; default the schedule's range
            [lambda(t_max), lambda(t_min)].

    Returns:
        A `ModelStatistics`.
    """
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"`denoiser` must be a Denoiser, got {type(denoiser).__name__}.")
    sch = check_schedule(denoiser.schedule)
    num_lambdas = check_int("num_lambdas", num_lambdas, minimum=2)
    key = check_key("key", key)
    x0 = jnp.asarray(x0)
    if x0.ndim < 2 or x0.shape[0] < 2:
        raise ValueError(
            f"`x0` must be a batch (batch >= 2, *example_shape) of data samples, got shape "
            f"{x0.shape}."
        )
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        raise TypeError(f"`x0` must be a floating array, got dtype {x0.dtype}.")
    dtype = x0.dtype
    if lambda_range is None:
        lo = sch.lambda_(jnp.asarray(sch.t_max, dtype))
        hi = sch.lambda_(jnp.asarray(sch.t_min, dtype))
    else:
        if len(lambda_range) != 2 or not lambda_range[0] < lambda_range[1]:
            raise ValueError(
                f"`lambda_range` must be (lambda_min, lambda_max) with lambda_min < lambda_max, "
                f"got {lambda_range!r}."
            )
        lo, hi = lambda_range
    lam = jnp.linspace(lo, hi, num_lambdas, dtype=dtype)
    k_noise, k_probe = jax.random.split(key)
    noise = jax.random.normal(k_noise, x0.shape, dtype)
    probe = jax.random.rademacher(k_probe, x0.shape, dtype)
    return _statistics(denoiser, lam, x0, noise, probe)


@eqx.filter_jit
def _statistics(denoiser, lam, x0, noise, probe):
    sch = denoiser.schedule
    dtype = x0.dtype
    kappa = jnp.sqrt(jnp.finfo(dtype).eps)

    def coeffs(la):
        t = sch.t_from_lambda(la)
        return t, sch.alpha(t), sch.sigma(t)

    def l_sample(la, x0_j, n_j, v_j):
        t, a, s = coeffs(la)
        x = a * x0_j + s * n_j
        _, jv = jax.jvp(lambda x: denoiser.eps(t, x), (x,), (v_j,))
        return s * v_j * jv

    def l_mean(la):
        return jnp.mean(jax.vmap(l_sample, (None, 0, 0, 0))(la, x0, noise, probe), axis=0)

    def at(la):
        lv, dl = jax.jvp(l_mean, (la,), (jnp.ones_like(la),))

        def per_sample(x0_j, n_j):
            _, a, s = coeffs(la)
            xh = (a * x0_j + s * n_j) / a

            def scaled_eps(xh, la):
                t, a, _ = coeffs(la)
                return jnp.exp(-la) * denoiser.eps(t, a * xh)

            e = scaled_eps(xh, la)
            _, de = jax.jvp(scaled_eps, (xh, la), (-e, jnp.ones_like(la)))
            f = e - lv * xh
            df = de - dl * xh + lv * e
            return f, df

        f, df = jax.vmap(per_sample)(x0, noise)
        mf, mdf = jnp.mean(f, axis=0), jnp.mean(df, axis=0)
        var = jnp.mean((f - mf) ** 2, axis=0)
        cov = jnp.mean((f - mf) * (df - mdf), axis=0)
        s = cov / (var + kappa * jnp.mean(f**2, axis=0))
        return lv, s, mdf - s * mf

    lv, s, b = jax.lax.map(at, lam)
    return ModelStatistics(lam, lv, s, b)


# ---------------------------------------------------------------------------------------
# Per-step coefficients


class _Spline(eqx.Module):
    """The natural cubic spline through the rows of `y` (k, *shape) at the nodes `x` (k,).

    The sampler interpolates the statistics with it rather than linearly: along a trajectory
    f = e^{-lambda} eps - l x^ and g inherit the smoothness of l(lambda), s(lambda), and a
    multistep step estimates derivatives of g from its values at the grid points. With
    linear interpolation g has kinks at every table node and, once the steps are about as
    short as the table spacing, the predictor-corrector falls to order 2; with the C^2
    spline the third order is kept (see the order test).
    """

    x: Array
    y: Array
    m: Array  # second derivatives at the nodes

    def __init__(self, x, y):
        k = x.shape[0]
        self.x, self.y = x, y
        flat = y.reshape(k, -1)
        if k < 3:
            self.m = jnp.zeros_like(y)
            return
        h = jnp.diff(x)
        slope = jnp.diff(flat, axis=0) / h[:, None]
        rhs = jnp.zeros_like(flat).at[1:-1].set(6.0 * jnp.diff(slope, axis=0))
        diag = jnp.ones(k, x.dtype).at[1:-1].set(2.0 * (h[:-1] + h[1:]))
        lower = jnp.zeros(k, x.dtype).at[1:-1].set(h[:-1])  # A[i, i-1]
        upper = jnp.zeros(k, x.dtype).at[1:-1].set(h[1:])  # A[i, i+1]
        mat = jnp.diag(diag) + jnp.diag(lower[1:], -1) + jnp.diag(upper[:-1], 1)
        self.m = jnp.linalg.solve(mat, rhs).reshape(y.shape)

    def __call__(self, la):
        x, y, m = self.x, self.y, self.m
        j = jnp.clip(jnp.searchsorted(x, la, side="right") - 1, 0, x.shape[0] - 2)
        h = x[j + 1] - x[j]
        a, b = x[j + 1] - la, la - x[j]
        return (
            m[j] * a**3 / (6 * h)
            + m[j + 1] * b**3 / (6 * h)
            + (y[j] / h - m[j] * h / 6) * a
            + (y[j + 1] / h - m[j + 1] * h / 6) * b
        )


def _step_integrals(stats: ModelStatistics, splines, lam_s, lam_t, k_max: int):
    """The integrals of one step from lam_s to lam_t, all relative to lam_s (L_s = S_s = 0):
    (L_t, S_t, B~_t, J_0..J_{k_max}, C_t) with J_k as in the module doc and
    C_t = int_s^t e^{L+S} B~ dlambda, by RK4 over `_QUADRATURE_SUBSTEPS` uniform sub-steps
    split further at the table's nodes (zero-length sub-steps from the nodes outside the
    step contribute nothing)."""
    uniform = jnp.linspace(lam_s, lam_t, _QUADRATURE_SUBSTEPS + 1)
    ends = jnp.sort(jnp.concatenate([uniform, jnp.clip(stats.lam, lam_s, lam_t)]))
    fact = [float(math.factorial(k)) for k in range(k_max + 1)]

    def rhs(la, y):
        big_l, big_s, bt = y[0], y[1], y[2]
        lv, sv, bv = (sp(la) for sp in splines)
        e = jnp.exp(big_l + big_s)
        u = la - lam_s
        js = [e * u**k / fact[k] for k in range(k_max + 1)]
        return jnp.stack([lv, sv, jnp.exp(-big_s) * bv, *js, e * bt])

    def body(n, y):
        la, dl = ends[n], ends[n + 1] - ends[n]
        k1 = rhs(la, y)
        k2 = rhs(la + dl / 2, y + dl / 2 * k1)
        k3 = rhs(la + dl / 2, y + dl / 2 * k2)
        k4 = rhs(la + dl, y + dl * k3)
        return y + dl / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    y0 = jnp.zeros((k_max + 5,) + stats.shape, stats.l.dtype)
    return jax.lax.fori_loop(0, ends.shape[0] - 1, body, y0)


def _derivative_matrix(lams, pseudo: bool):
    """M (q x q): Taylor derivatives g^{(k)}(lams[0]) ~ sum_j M[k, j] g(lams[j]).

    Full: k! times the coefficients of the interpolating polynomial through all q nodes
    (inverse Vandermonde). Pseudo (the paper's pseudo-order, section 3.3): k! times the
    divided difference g[lams_0, ..., lams_k] (the lowest-order estimate of each derivative).
    """
    q = lams.shape[0]
    u = lams - lams[0]
    fact = jnp.asarray([math.factorial(k) for k in range(q)], lams.dtype)
    if not pseudo:
        vand = u[:, None] ** jnp.arange(q)[None, :]
        return fact[:, None] * jnp.linalg.inv(vand)
    rows = []
    for k in range(q):
        row = []
        for j in range(q):
            if j > k:
                row.append(jnp.zeros((), lams.dtype))
            else:
                den = jnp.ones((), lams.dtype)
                for m in range(k + 1):
                    if m != j:
                        den = den * (lams[j] - lams[m])
                row.append(1.0 / den)
        rows.append(jnp.stack(row))
    return fact[:, None] * jnp.stack(rows)


class _Tables(eqx.Module):
    """Per-step coefficients: x_{i+1} = cx[i] x_i + sum_m w[i, m] F[m] + c[i], F the pushed
    history [f_i, f_{i-1}, ...] (predictor) or [f_{i+1}, f_i, f_{i-1}, ...] (corrector)."""

    pred_x: Array
    pred_w: Array
    pred_c: Array
    corr_x: Array
    corr_w: Array
    corr_c: Array
    corr_on: Array
    l_grid: Array


def _row(stats, g, ints, s_abs, b_abs, base, nodes, slots, q, pseudo, n_slots):
    """One update from grid point `base` to base + 1 through the q grid points `nodes`
    (base first), with weights placed at history positions `slots`."""
    alpha_s, alpha_t = g.alpha[base], g.alpha[base + 1]
    lams = g.lam[nodes]
    big_l, js, big_c = ints[0][base], ints[1][base], ints[2][base]  # js: (k_max + 1, *shape)
    e = jnp.exp(-big_l)
    m = _derivative_matrix(lams, pseudo)  # (q, q)
    # coefficient of g_j: sum_k e J_k M[k, j]
    coef = jnp.tensordot(m.T, js[:q], axes=1)  # (q, *shape)
    a = jnp.exp(s_abs[base] - s_abs[nodes])  # g_j = a_j f_j - c_j
    c = jnp.exp(s_abs[base]) * (b_abs[nodes] - b_abs[base])
    shape = stats.shape
    w = -alpha_t * e * coef * a
    const = alpha_t * e * (jnp.sum(coef * c, axis=0) - big_c)
    w_full = jnp.zeros((n_slots,) + shape, w.dtype).at[jnp.asarray(slots)].set(w)
    cx = alpha_t / alpha_s * e
    ok = jnp.all(jnp.isfinite(w_full)) & jnp.all(jnp.isfinite(const))
    return cx, jnp.where(ok, w_full, 0.0), jnp.where(ok, const, 0.0)


def _tables(sampler: "DPMSolverV3", stats: ModelStatistics, g: GridArrays) -> _Tables:
    n = g.t.shape[0] - 1
    p = sampler.order
    k_max = p  # the corrector's pseudo order p + 1 uses Taylor powers up to p
    dtype = stats.l.dtype
    lam = g.lam.astype(dtype)
    g = GridArrays(g.t.astype(dtype), lam, g.alpha.astype(dtype), g.sigma.astype(dtype))
    splines = tuple(_Spline(stats.lam, tab) for tab in (stats.l, stats.s, stats.b))
    y = jax.vmap(lambda i: _step_integrals(stats, splines, lam[i], lam[i + 1], k_max))(
        jnp.arange(n)
    )
    big_l, big_s, bt = y[:, 0], y[:, 1], y[:, 2]
    js = y[:, 3 : 4 + k_max]
    big_c = y[:, 4 + k_max]
    zero = jnp.zeros((1,) + stats.shape, dtype)
    s_abs = jnp.concatenate([zero, jnp.cumsum(big_s, axis=0)])
    b_abs = jnp.concatenate([zero, jnp.cumsum(jnp.exp(-s_abs[:-1]) * bt, axis=0)])
    ints = (big_l, js, big_c)
    n_slots = p + 1
    q_pred = sampler._orders(g)

    def pred_row(i):
        def branch(q):
            def f():
                nodes = jnp.maximum(i - jnp.arange(q), 0)
                return _row(
                    stats, g, ints, s_abs, b_abs, i, nodes, list(range(q)), q,
                    sampler.pseudo_predictor, n_slots,
                )  # fmt: skip

            return f

        return jax.lax.switch(q_pred[i] - 1, [branch(q) for q in range(1, p + 1)])

    def corr_row(i):
        # corrects point i + 1 from base i through [i, i + 1, i - 1, ...]
        def branch(q):
            def f():
                earlier = jnp.maximum(i - 1 - jnp.arange(max(q - 2, 0)), 0)
                nodes = jnp.concatenate([jnp.stack([i, i + 1]), earlier])[:q]
                slots = [1, 0] + list(range(2, q))
                return _row(
                    stats, g, ints, s_abs, b_abs, i, nodes, slots[:q], q,
                    sampler.pseudo_corrector, n_slots,
                )  # fmt: skip

            return f

        qc = q_pred[i] + (1 if sampler.pseudo_corrector else 0)
        qc = jnp.clip(qc, 2, p + 1)
        return jax.lax.switch(qc - 2, [branch(q) for q in range(2, p + 2)])

    idx = jnp.arange(n)
    pred_x, pred_w, pred_c = jax.vmap(pred_row)(idx)
    corr_x, corr_w, corr_c = jax.vmap(corr_row)(idx)
    q_corr = q_pred + (1 if sampler.pseudo_corrector else 0)
    corr_on = (q_corr > 1) & jnp.asarray(sampler.corrector)
    if sampler.half:
        corr_on = corr_on & (g.t[1:] > 0.5 * g.t[0])
    l_grid = jax.vmap(splines[0])(lam)
    return _Tables(pred_x, pred_w, pred_c, corr_x, corr_w, corr_c, corr_on, l_grid)


class DPMSolverV3(AbstractMultistepSampler):
    r"""DPM-Solver-v3 (Zheng et al. 2023): multistep predictor-corrector on the EMS.

    Predictor of order q (q outputs: the current and q - 1 previous): the exact step of the
    module doc with g^{(k)} estimated from g at the q grid points, full (the Taylor
    coefficients of the interpolating polynomial, local error O(h^{q+1})) or, with
    `pseudo_predictor=True`, pseudo-order (divided differences, paper section 3.3: more
    stable at very small NFE, at most second order). Corrector (UniPC-style, in the v3
    parameterisation, paper section 3.4): once the model output at the predicted point
    x~_{i+1} is known, the step from x_i is redone with it as an extra node (nodes i, i+1,
    i-1, ...); `pseudo_corrector=False` (default; the official EDM setting) uses q nodes with
    full derivatives, True (the official code's default `c_pseudo`) q + 1 nodes with
    pseudo-order ones. On the exact-score mixture of the `gmm_samplers` config the full
    corrector was the more accurate at 5-20 steps (and keeps the order). The model output
    at x~_{i+1} serves as the next step's output with the nonlinear part
    N = sigma eps - l x kept (so f is unchanged by the correction): one model evaluation
    per step; the last point is not corrected. `half=True` corrects only points with
    t > t_0/2 (t_0 the grid's start; the official code's `half` is t > 0.5 on [0, 1]).

    `convergence_order`: `order` with full derivatives and no corrector or a full
    corrector; 2 (at most `order`) when any pseudo-order update is used (a divided
    difference estimates a derivative to O(h) only). `warmup` and `lower_order_final` as
    the other multistep samplers (see `AbstractSampler`): the default
    `LowerOrderWarmup()` (orders 1, 2, ... on the first steps); with `SinglestepWarmup()`
    the warm-up steps are DPM-Solver-3 steps and are not corrected.

    `statistics` (a `ModelStatistics` from `model_statistics`, or None): the sampler needs
    them to run (None lets a config build the sampler before the statistics exist).
    Their lambda table must cover the grid's log-SNRs. The per-step coefficients (integrals
    of the statistics, derivative estimates) are computed once in `init`; a step is a
    weighted sum of the stored outputs.
    """

    statistics: ModelStatistics | None = None
    order: int = eqx.field(default=3, static=True)
    corrector: bool = eqx.field(default=True, static=True)
    pseudo_predictor: bool = eqx.field(default=False, static=True)
    pseudo_corrector: bool = eqx.field(default=False, static=True)
    half: bool = eqx.field(default=False, static=True)
    lower_order_final: bool = lower_order_final_field()
    warmup: AbstractWarmup = LowerOrderWarmup()
    lower_order_final_below: float = lower_order_final_below_field()
    lower_order_final_ratio: float = lower_order_final_ratio_field()

    stochastic: ClassVar[bool] = False

    def __check_init__(self):
        _check_structure(self.order, (1, 2, 3), self.warmup)
        for name in ("corrector", "pseudo_predictor", "pseudo_corrector", "half"):
            value = getattr(self, name)
            if not (value is True or value is False):
                raise ValueError(f"`{name}` must be True or False, got {value!r}.")
        if self.statistics is not None and not isinstance(self.statistics, ModelStatistics):
            raise TypeError(
                "`statistics` must be a ModelStatistics (jaxsci.diffusion.model_statistics) "
                f"or None, got {type(self.statistics).__name__}."
            )

    @property
    def convergence_order(self) -> int:
        pseudo = self.pseudo_predictor or (self.corrector and self.pseudo_corrector)
        return min(self.order, 2) if pseudo else self.order

    def _orders(self, g: GridArrays) -> Int[Array, " n"]:
        n = g.t.shape[0] - 1
        return jax.vmap(
            lambda i: _effective_order(
                self.order,
                i,
                g,
                self.lower_order_final,
                self.lower_order_final_below,
                self.lower_order_final_ratio,
                True,
            )
        )(jnp.arange(n))

    def _stats(self) -> ModelStatistics:
        if self.statistics is None:
            raise ValueError(
                "DPMSolverV3 needs `statistics`: build them with "
                "jaxsci.diffusion.model_statistics(denoiser, x0, key) and pass "
                "DPMSolverV3(statistics=...)."
            )
        return self.statistics

    def check_x_T(self, x_T: Float[Array, "*shape"]) -> None:
        stats = self._stats()
        if tuple(jnp.shape(x_T)) != stats.shape:
            raise ValueError(
                f"`x_T` must have the example shape of the statistics {stats.shape}, got "
                f"{tuple(jnp.shape(x_T))}."
            )

    def init(
        self, denoiser: Denoiser, ts: Float[Array, " n1"], x_T: Float[Array, "*shape"]
    ) -> SamplerState:
        stats = self._stats()
        self.check_x_T(x_T)
        g = grid_arrays(denoiser.schedule, ts)
        lo, hi = stats.lam[0], stats.lam[-1]
        tol = 1e-6 * (1.0 + jnp.maximum(jnp.abs(lo), jnp.abs(hi)))
        lam = eqx.error_if(
            g.lam,
            (jnp.min(g.lam) < lo - tol) | (jnp.max(g.lam) > hi + tol),
            "DPMSolverV3: the grid's log-SNRs leave the statistics' lambda table; compute "
            "the statistics over the sampling range (model_statistics' lambda_range).",
        )
        g = g._replace(lam=lam)
        tables = _tables(self, stats, g)
        fs = jnp.zeros((self.order + 1,) + jnp.shape(x_T), x_T.dtype)
        return SamplerState(x_T, jnp.asarray(0), g, (fs, x_T, tables, jnp.asarray(False)))

    def step(
        self, key: Key | None, state: SamplerState, denoiser: Denoiser
    ) -> tuple[SamplerState, StepInfo]:
        del key
        g, i, x_pred = state.grid, state.i, state.x
        fs, x_base, tb, replaced = state.history
        dt = x_pred.dtype
        eps = denoiser.eps(g.t[i], x_pred)
        f_new = (g.sigma[i] * eps - tb.l_grid[i].astype(dt) * x_pred) / g.alpha[i]
        fs = jnp.concatenate([f_new[None], fs[:-1]], axis=0)
        j = jnp.maximum(i - 1, 0)

        def combine(cx, w, c, x):
            return cx.astype(dt) * x + jnp.sum(w.astype(dt) * fs, axis=0) + c.astype(dt)

        corrected = combine(tb.corr_x[j], tb.corr_w[j], tb.corr_c[j], x_base)
        # a step taken by the warm-up (not the multistep update) is not corrected
        x_cur = jnp.where((i > 0) & tb.corr_on[j] & ~replaced, corrected, x_pred)
        # `eps` is the output at x_cur whenever the warm-up uses it: a warm-up step's
        # end point is never corrected
        x_next, nfe, replaced = self.warmup(
            denoiser,
            g,
            i,
            x_cur,
            eps,
            lambda x: combine(tb.pred_x[i], tb.pred_w[i], tb.pred_c[i], x),
            self.order,
        )
        return SamplerState(x_next, i + 1, g, (fs, x_cur, tb, replaced)), step_info(nfe)
