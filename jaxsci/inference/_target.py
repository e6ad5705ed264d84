"""Targets: a posterior as a log-density on a flat unconstrained vector, whatever its source.

Samplers, MAP and Laplace see one interface, `AbstractTarget`: `logdensity(u)` on u in R^dim
(the Jacobian of the constraining bijections included), `constrain(u)` back to named parameter
arrays, and `init_position(key, strategy)` for chain starts. Two sources are supported:

- `LogDensity`: a user log-density on a dict of constrained parameter arrays, with a constraint
  per parameter (`Real`, `Positive`, `Interval`) and optionally a prior (numpyro
  distributions) used only to pick starting points;
- `NumpyroModel`: a numpyro model; its sample sites, supports and bijections come from
  numpyro (`biject_to`), its log-density from `numpyro.infer.util.potential_energy`.

`safe_logdensity` wraps either so that a failed evaluation (NaN or infinite value, or a
non-finite gradient, as from an ODE solve that blew up) is log-density -inf with gradient 0:
a rejected, divergent proposal, never an exception and never a NaN gradient.
"""

import abc
import math
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, Key
from ._constraints import AbstractConstraint, as_constraint, check_in_support

# numpyro's init_to_median takes the median of 15 prior draws per chain (a little dispersion
# between chains, which R-hat needs); the same number is used for `LogDensity` priors.
_MEDIAN_DRAWS = 15
# numpyro's init_to_uniform: U(-2, 2) in unconstrained space (also Stan's default).
_UNIFORM_RADIUS = 2


def _shape_of(prior_dist) -> tuple[int, ...]:
    return tuple(prior_dist.batch_shape) + tuple(prior_dist.event_shape)


class AbstractTarget(eqx.Module):
    """A posterior on R^dim (unconstrained), with named constrained parameters."""

    @property
    @abc.abstractmethod
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of each constrained parameter, in flattening order."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Length of the unconstrained vector."""

    @abc.abstractmethod
    def logdensity(self, u: Float[Array, " dim"]) -> Float[Array, ""]:
        """log p(u) up to a constant, Jacobian included (may be NaN/inf on failure)."""

    @abc.abstractmethod
    def constrain(self, u: Float[Array, " dim"]) -> dict[str, Array]:
        """The named parameter arrays (and numpyro deterministic sites) at `u`."""

    @abc.abstractmethod
    def unconstrain(self, params: Mapping[str, Any]) -> Float[Array, " dim"]:
        """The unconstrained vector of a dict of constrained parameter values."""

    @property
    def has_prior(self) -> bool:
        """Whether 'prior_median' / 'prior_draw' starts are available."""
        return True

    @abc.abstractmethod
    def init_position(self, key: Key, strategy: str) -> Float[Array, " dim"]:
        """One chain's start for `strategy`: 'prior_median', 'prior_draw' or 'uniform'
        (jit/vmap-able)."""

    def check_params(self, params: Mapping[str, Any], name: str) -> dict[str, np.ndarray]:
        """Concrete values of every parameter, shape-checked; errors name `name[key]`."""
        if not isinstance(params, Mapping):
            raise TypeError(
                f"`{name}` must be a dict of parameter values keyed by "
                f"{list(self.shapes)}, got {type(params).__name__}."
            )
        unknown = sorted(set(params) - set(self.shapes))
        missing = [k for k in self.shapes if k not in params]
        if unknown or missing:
            raise ValueError(
                f"`{name}` has unknown parameter name(s) {unknown} and lacks {missing}; "
                f"the parameters are {list(self.shapes)}."
            )
        out = {}
        for key, shape in self.shapes.items():
            arr = np.asarray(params[key], dtype=float)
            if arr.shape != shape:
                raise ValueError(f"`{name}[{key!r}]` has shape {arr.shape}, expected {shape}.")
            out[key] = arr
        return out


def _ravel(params: Mapping[str, Array], shapes: Mapping[str, tuple]) -> Array:
    parts = [jnp.reshape(jnp.asarray(params[k]), (-1,)) for k in shapes]
    return jnp.concatenate(parts) if parts else jnp.zeros((0,))


class LogDensity(AbstractTarget):
    r"""A log-density on named, constrained parameters.

    The sampler works on u in R^dim; parameter `k` is x_k = f_k(u_k) with the bijection of
    `constraints[k]`, and the target is log p(x(u)) + \sum_k log |det J_{f_k}(u_k)|.

    Arguments:
        logdensity_fn: `params -> scalar`, the log posterior density (prior + likelihood, up to
            a constant) of a dict of constrained parameter arrays.
        constraints: name -> constraint: an `AbstractConstraint`, 'real', 'positive', or a
            `(lower, upper)` tuple.
        shapes: name -> shape (default: the prior's shapes, else scalars).
        prior: optional name -> numpyro distribution. Used only to pick starting points
            ('prior_median', 'prior_draw'); `logdensity_fn` must contain the prior term itself.
    """

    logdensity_fn: Callable = eqx.field(static=True)
    constraints: dict[str, AbstractConstraint]
    prior: dict[str, Any] | None
    _shapes: tuple[tuple[str, tuple[int, ...]], ...] = eqx.field(static=True)

    def __init__(
        self,
        logdensity_fn: Callable[[dict[str, Array]], Float[Array, ""]],
        constraints: Mapping[str, AbstractConstraint | str | tuple],
        *,
        shapes: Mapping[str, tuple[int, ...]] | None = None,
        prior: Mapping[str, Any] | None = None,
    ):
        if not callable(logdensity_fn):
            raise TypeError(
                f"`logdensity_fn` must be callable, got {type(logdensity_fn).__name__}."
            )
        if not isinstance(constraints, Mapping) or not constraints:
            raise TypeError(
                "`constraints` must be a non-empty dict of parameter name -> constraint, "
                f"got {constraints!r}."
            )
        names = list(constraints)
        for label, other in (("shapes", shapes), ("prior", prior)):
            if other is None:
                continue
            if not isinstance(other, Mapping):
                raise TypeError(f"`{label}` must be a dict keyed by {names}, got {other!r}.")
            unknown = sorted(set(other) - set(names))
            missing = [k for k in names if k not in other]
            if unknown or missing:
                raise ValueError(
                    f"`{label}` has unknown parameter name(s) {unknown} and lacks {missing}; "
                    f"`constraints` names the parameters {names}."
                )
        self.logdensity_fn = logdensity_fn
        self.constraints = {
            k: as_constraint(v, f"constraints[{k!r}]") for k, v in constraints.items()
        }
        self.prior = None if prior is None else dict(prior)
        resolved = {}
        for k in names:
            if shapes is not None:
                shape = shapes[k]
                if not (
                    isinstance(shape, tuple | list)
                    and all(isinstance(s, int) and s >= 1 for s in shape)
                ):
                    raise ValueError(
                        f"`shapes[{k!r}]` must be a tuple of positive ints, got {shape!r}."
                    )
                resolved[k] = tuple(shape)
            elif prior is not None:
                resolved[k] = _shape_of(prior[k])
            else:
                resolved[k] = ()
        if shapes is not None and prior is not None:
            for k in names:
                if _shape_of(prior[k]) not in ((), resolved[k]):
                    raise ValueError(
                        f"`prior[{k!r}]` has shape {_shape_of(prior[k])} but `shapes[{k!r}]` "
                        f"is {resolved[k]}."
                    )
        self._shapes = tuple(resolved.items())

    @property
    def shapes(self):
        return dict(self._shapes)

    @property
    def dim(self):
        return sum(math.prod(s) for _, s in self._shapes)

    @property
    def has_prior(self):
        return self.prior is not None

    def _split(self, u):
        out, i = {}, 0
        for k, shape in self._shapes:
            n = math.prod(shape)
            out[k] = jnp.reshape(u[i : i + n], shape)
            i += n
        return out

    def constrain(self, u):
        return {k: self.constraints[k].forward(v) for k, v in self._split(u).items()}

    def unconstrain(self, params):
        return _ravel(
            {k: self.constraints[k].inverse(jnp.asarray(params[k], dtype=float)) for k in params},
            self.shapes,
        )

    def logdensity(self, u):
        parts = self._split(u)
        log_jac = sum(self.constraints[k].log_abs_det_jacobian(v) for k, v in parts.items())
        x = {k: self.constraints[k].forward(v) for k, v in parts.items()}
        return jnp.asarray(self.logdensity_fn(x)) + log_jac

    def init_position(self, key, strategy):
        if strategy == "uniform":
            return jax.random.uniform(
                key, (self.dim,), minval=-_UNIFORM_RADIUS, maxval=_UNIFORM_RADIUS
            )
        if self.prior is None:
            raise ValueError(
                f"`init={strategy!r}` needs a prior: pass `prior=` (numpyro distributions) to "
                "LogDensity, or use init='uniform' or a dict of starting values."
            )
        parts = {}
        for (k, shape), subkey in zip(
            self._shapes, jax.random.split(key, len(self._shapes)), strict=True
        ):
            d = self.prior[k]
            if strategy == "prior_draw":
                x = jnp.broadcast_to(d.sample(subkey), shape)
                parts[k] = self.constraints[k].inverse(x)
            else:  # prior_median: median of draws in unconstrained space (numpyro's rule)
                draws = jnp.broadcast_to(
                    d.sample(subkey, (_MEDIAN_DRAWS,)), (_MEDIAN_DRAWS, *shape)
                )
                parts[k] = jnp.median(self.constraints[k].inverse(draws), axis=0)
        return _ravel(parts, self.shapes)

    def check_params(self, params, name):
        values = super().check_params(params, name)
        for k, v in values.items():
            check_in_support(self.constraints[k], v, f"{name}[{k!r}]")
        return values


class NumpyroModel(AbstractTarget):
    """A numpyro model as a target: its latent continuous sample sites are the parameters.

    Each site is mapped to unconstrained space by numpyro's `biject_to(site.support)`
    (exp for positive supports, as Stan), and the log-density is minus numpyro's
    `potential_energy` (log joint in unconstrained space, Jacobians included).

    Arguments:
        model: a callable with numpyro primitives.
        model_args, model_kwargs: passed to `model` (arrays among them are traced inputs).
    """

    model: Callable = eqx.field(static=True)
    model_args: tuple
    model_kwargs: dict
    _shapes: tuple[tuple[str, tuple[int, ...]], ...] = eqx.field(static=True)
    _unconstrained_shapes: tuple[tuple[str, tuple[int, ...]], ...] = eqx.field(static=True)

    def __init__(self, model: Callable, model_args: tuple = (), model_kwargs: dict | None = None):
        if not callable(model):
            raise TypeError(
                f"`model` must be a callable numpyro model, got {type(model).__name__}."
            )
        if not isinstance(model_args, tuple):
            raise TypeError(f"`model_args` must be a tuple, got {type(model_args).__name__}.")
        if model_kwargs is not None and not isinstance(model_kwargs, Mapping):
            raise TypeError(f"`model_kwargs` must be a dict, got {type(model_kwargs).__name__}.")
        self.model = model
        # NumPy data become device arrays (traced inputs of the compiled sampler, not constants).
        as_jax = lambda x: jnp.asarray(x) if isinstance(x, np.ndarray) else x
        self.model_args = jax.tree_util.tree_map(as_jax, model_args)
        self.model_kwargs = jax.tree_util.tree_map(
            as_jax, {} if model_kwargs is None else dict(model_kwargs)
        )
        sites = _model_sites(self.model, self.model_args, self.model_kwargs)
        discrete = [k for k, (_, _, is_discrete) in sites.items() if is_discrete]
        if discrete:
            raise ValueError(
                f"`model` has discrete latent site(s) {discrete}; the samplers here need "
                "continuous parameters (marginalise them out)."
            )
        if not sites:
            raise ValueError("`model` has no latent sample sites to infer.")
        self._shapes = tuple((k, shape) for k, (shape, _, _) in sites.items())
        self._unconstrained_shapes = tuple((k, ushape) for k, (_, ushape, _) in sites.items())

    @property
    def shapes(self):
        return dict(self._shapes)

    @property
    def dim(self):
        return sum(math.prod(s) for _, s in self._unconstrained_shapes)

    def _split(self, u):
        out, i = {}, 0
        for k, shape in self._unconstrained_shapes:
            n = math.prod(shape)
            out[k] = jnp.reshape(u[i : i + n], shape)
            i += n
        return out

    def logdensity(self, u):
        from numpyro.infer.util import potential_energy

        return -potential_energy(self.model, self.model_args, self.model_kwargs, self._split(u))

    def constrain(self, u):
        from numpyro.infer.util import constrain_fn

        return constrain_fn(
            self.model,
            self.model_args,
            self.model_kwargs,
            self._split(u),
            return_deterministic=True,
        )

    def unconstrain(self, params):
        from numpyro.infer.util import unconstrain_fn

        values = unconstrain_fn(
            self.model,
            self.model_args,
            self.model_kwargs,
            {k: jnp.asarray(params[k], dtype=float) for k in self.shapes},
        )
        return _ravel(values, dict(self._unconstrained_shapes))

    def init_position(self, key, strategy):
        from numpyro import handlers
        from numpyro.infer.initialization import init_to_median, init_to_sample, init_to_uniform

        init = {
            "prior_median": init_to_median(num_samples=_MEDIAN_DRAWS),
            "prior_draw": init_to_sample(),
            "uniform": init_to_uniform(radius=_UNIFORM_RADIUS),
        }[strategy]
        seeded = handlers.substitute(handlers.seed(self.model, key), substitute_fn=init)
        tr = handlers.trace(seeded).get_trace(*self.model_args, **self.model_kwargs)
        return self.unconstrain({k: tr[k]["value"] for k in self.shapes})


def _model_sites(model, model_args, model_kwargs) -> dict[str, tuple]:
    """name -> (shape, unconstrained shape, is_discrete) of the latent sample sites.

    Traced abstractly (`jax.eval_shape`), so no solver inside the model runs.
    """
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to

    found: dict[str, tuple] = {}

    def run(args, kwargs):
        tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kwargs)
        for k, v in tr.items():
            if v["type"] == "sample" and not v["is_observed"]:
                shape = tuple(jnp.shape(v["value"]))
                support = v["fn"].support
                ushape = () if support.is_discrete else biject_to(support).inverse_shape(shape)
                found[k] = (shape, tuple(ushape), bool(support.is_discrete))
        return 0

    eqx.filter_eval_shape(run, model_args, model_kwargs)
    return found


@eqx.filter_custom_vjp
def _safe(u, target):
    value = target.logdensity(u)
    return jnp.where(jnp.isfinite(value), value, -jnp.inf)


@_safe.def_fwd
def _safe_fwd(perturbed, u, target):
    del perturbed
    value, grad = jax.value_and_grad(target.logdensity)(u)
    ok = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
    return jnp.where(ok, value, -jnp.inf), jnp.where(ok, grad, 0.0)


@_safe.def_bwd
def _safe_bwd(grad, g_out, perturbed, u, target):
    del perturbed, u, target
    return g_out * grad


def safe_logdensity(target: AbstractTarget, u: Float[Array, " dim"]) -> Float[Array, ""]:
    """`target.logdensity(u)`, with a failed evaluation turned into a rejected proposal.

    The value is -inf where the log-density or any component of its gradient is NaN or
    infinite, and the gradient there is 0 (so `jax.grad` never returns NaN). Differentiating
    computes value and gradient together (the forward pass of a custom VJP), as every
    gradient-based sampler does anyway; forward-over-reverse (`jax.jacfwd(jax.grad(...))`)
    works through it for Hessians.
    """
    return _safe(u, target)


def make_target(
    model: AbstractTarget | Callable,
    constraints: Mapping[str, Any] | None = None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    prior: Mapping[str, Any] | None = None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
) -> AbstractTarget:
    """A target from a target, a log-density (with `constraints`) or a numpyro model."""
    if isinstance(model, AbstractTarget):
        extra = {
            "constraints": constraints,
            "shapes": shapes,
            "prior": prior,
            "model_kwargs": model_kwargs,
        }
        given = [k for k, v in extra.items() if v is not None] + (
            ["model_args"] if model_args else []
        )
        if given:
            raise ValueError(
                f"{given} cannot be combined with a ready-made target "
                f"({type(model).__name__}); set them on the target instead."
            )
        return model
    if not callable(model):
        raise TypeError(
            "`model` must be a log-density function (with `constraints=`), a numpyro model, "
            f"or an AbstractTarget, got {type(model).__name__}."
        )
    if constraints is not None:
        if model_args or model_kwargs:
            raise ValueError(
                "`model_args`/`model_kwargs` are for numpyro models; a log-density takes only "
                "the parameter dict (close over your data)."
            )
        return LogDensity(model, constraints, shapes=shapes, prior=prior)
    if shapes is not None or prior is not None:
        raise ValueError(
            "`shapes`/`prior` describe a log-density's parameters and need `constraints=`; "
            "a numpyro model declares its own."
        )
    return NumpyroModel(model, model_args, model_kwargs)
