"""Jitter rules: which resampled particles a regularisation jitter moves.

After resampling, a particle drawn k >= 2 times sits k times at the same point; on a
deterministic model the copies never separate again unless noise (a "jitter", the kernel
of a regularised particle filter, Musso, Oudjane & Le Gland 2001) moves them. A rule maps the
ancestor vector of a draw to the particles that receive the jitter:

* `NoUniqueJitter`: every copy of a particle drawn twice or more; particles drawn once stay.
  DAPPER's rule, `PartFilt(nuj=True)` (its default; "nuj" = "no unique jitter").
* `KeepFirstCopyJitter`: the second and later copies of a particle drawn twice or more; one
  copy of every drawn particle stays in place. Not DAPPER's rule.
* `JitterAll`: every resampled particle. DAPPER's `PartFilt(nuj=False)`.
"""

import abc

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Bool, Int


class AbstractJitterRule(eqx.Module):
    """`rule(ancestors) -> mask`: True for the resampled particles that the jitter moves.

    `ancestors` (n,) int: the parent of each resampled particle (any order). The rules look
    only at how often each parent was drawn, so they carry no gradient.
    """

    @abc.abstractmethod
    def __call__(self, ancestors: Int[Array, " n"]) -> Bool[Array, " n"]:
        """The (n,) mask of particles to jitter."""


def _multiplicity(ancestors: Int[Array, " n"]) -> Int[Array, " n"]:
    """How often the parent of each resampled particle was drawn."""
    counts = jnp.zeros(ancestors.shape, jnp.int32).at[ancestors].add(1)
    return counts[ancestors]


class NoUniqueJitter(AbstractJitterRule):
    """Jitter every copy of a particle that was drawn twice or more; a particle drawn once
    keeps its place (DAPPER's `nuj=True`, the default of its `PartFilt`).

    DAPPER (1.7.1, `da_methods/particle.py`, `regularize` with `mask_unique_of_sorted`)
    marks particle i when its ancestor equals that of particle i - 1 or i + 1 (cyclically),
    which is this rule when the ancestor vector is sorted, as DAPPER's default systematic
    resampling (and `systematic`, `stratified` here) produce it. For an unsorted vector (its
    multinomial and residual draws) DAPPER's comparison of neighbours misses copies that are
    not adjacent; here the multiplicity decides whatever the order.
    """

    def __call__(self, ancestors: Int[Array, " n"]) -> Bool[Array, " n"]:
        return _multiplicity(ancestors) >= 2


class KeepFirstCopyJitter(AbstractJitterRule):
    """Jitter the second and later copies of a particle drawn twice or more, keeping its
    first copy (the lowest position in the ancestor vector) in place, so that every drawn
    particle keeps one unperturbed copy. Not DAPPER's rule (see `NoUniqueJitter`)."""

    def __call__(self, ancestors: Int[Array, " n"]) -> Bool[Array, " n"]:
        order = jnp.argsort(ancestors, stable=True)
        sorted_idx = ancestors[order]
        later = jnp.concatenate([jnp.zeros((1,), bool), sorted_idx[1:] == sorted_idx[:-1]])
        return jnp.zeros_like(later).at[order].set(later)


class JitterAll(AbstractJitterRule):
    """Jitter every resampled particle (DAPPER's `nuj=False`)."""

    def __call__(self, ancestors: Int[Array, " n"]) -> Bool[Array, " n"]:
        return jnp.ones(ancestors.shape, bool)
