"""LETKF: the ETKF done independently for each local domain, with tapered observations."""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, check_int, check_positive, concrete_numbers, finite_float
from .._custom_types import Array, Float, Int, Key
from ..observations import AbstractObservation
from ._base import AbstractEnsembleFilter, Ensemble, ObsVector
from ._domains import as_domains
from ._ensemble_filters import (
    inv_sqrt_shifted,
    random_mean_preserving_rotation,
    symmetric_sqrt_transform,
)
from ._localization import contiguous_batches, local_observations
from ._statistics import ensemble_stats


class LETKF(AbstractEnsembleFilter):
    """Local ensemble transform Kalman filter (Hunt et al. 2007) with DAPPER's conventions.

    The state is split into local domains: single state variables (`batch_size` 1),
    contiguous batches of about `batch_size` variables (DAPPER's `nd_Id_localization(shape,
    batch_shape)`, see `contiguous_batches`: round(dim / batch_size) batches whose sizes
    differ by at most one when `batch_size` does not divide dim), or any explicit grouping
    `domains` (e.g. the layers of one grid column of a layered model, `grid_domains`). For
    domain b the whitened observation anomalies and innovation are multiplied by
    sqrt(rho_bj), rho the Gaspari-Cohn taper with half-width 1.82 * `loc_rad` (taper < 1e-3
    counts as outside) of the distance between the domain and observation j; for a domain of
    several variables that distance is the mean of the distances from its points to the
    observation (DAPPER's rule for batches, not the distance from the batch's centre: the two
    agree for an observation outside the batch's span and differ inside it; for the layers
    of one column, all at one position, it is that position's distance). The
    symmetric-square-root ETKF update (w_b, T_b) is then applied to the domain's columns of
    the ensemble. All domains are one `vmap` (a batch of N x N inverse square roots by
    Newton-Schulz iteration, see `inv_sqrt_shifted`), not a Python loop.

    Ensemble or observation space (`space`): with k local observations per domain, the
    ensemble-space form costs N^2 k + N^3 per domain and holds a domain x N x N batch, which
    ends the LETKF near N = 10^3 members. For N > k the same update is done in observation
    space (as the global ETKF switches, and DAPPER's global `EnKF('Sqrt')`; DAPPER's LETKF
    itself is ensemble space only): with Yw_b the domain's tapered whitened observation
    anomalies (N x k), c = N - 1 and R_b = (Yw_b^T Yw_b + c I)^{-1/2} (a k x k Newton-Schulz
    root),
    mean_b += dw_b^T R_b^2 Yw_b^T A_b and A_b <- A_b + Yw_b G_b Yw_b^T A_b,
    G_b = -R_b (sqrt(c) R_b + I)^{-1} R_b, which is T_b A_b with T_b = (I + Yw_b Yw_b^T / c)^{-1/2}
    the ensemble-space transform (push-through identity), never formed. This form always
    works from the gathered lists (`obs_space_lists`, k = the largest local count, e.g. 25
    of L96's 40 observations at loc_rad 4, where the ensemble-space form takes the dense
    taper). When the state has few observations (P (P + 2 dim) <= domains x k (k + 2 size))
    the products are global, Yw^T Yw and Yw^T A once and one N x P x dim product back, so the
    cost is O(N P (P + dim) + domains k^3) and no per-domain N-length array exists (a
    10^6-member L96 analysis in seconds); otherwise each domain gathers its columns. Either
    way the domains go `obs_chunk` at a time (memory obs_chunk x k x k for the roots, and
    obs_chunk x N x k for the per-domain gathers). `space=None` picks observation
    space when N > k (benchmarks/bench_letkf_space.py: the crossover on L96 and 2-D QG).

    Positions are 1-D (`state_locations` (dim,), observation `locations` (obs,): a line or
    a ring) or d-dimensional ((dim, d) and (obs, d), e.g. (y, x) on a doubly periodic
    square); distances are Euclidean, each axis' difference wrapped to the shortest one on a
    periodic domain of length `domain_length` (one number, or one per axis).

    Each domain gathers only the observations inside its taper (`local_obs`, padded to the
    largest count with zero taper), precomputed here from the observation locations, so an
    analysis costs O(domains x local obs), not O(domains x obs): sparse observations of a
    2-D field are this path. When a domain sees more than half of all observations the dense
    (domains, obs) taper is used instead (`local_obs` is None): the gather would cost more
    than it saves. `gather` overrides that choice (both give the same analysis).

    With `rotate=True` the analysis anomalies of the whole state are multiplied on the left
    by one Haar-random mean-preserving rotation drawn from `key`
    (`random_mean_preserving_rotation`, as the ETKF's `rotate`). This is DAPPER's `rot=True`
    for the LETKF, which rotates the assembled ensemble once after the local analyses
    (`post_process`), not each domain apart: one rotation keeps the analysis mean and the
    full covariance, cross-domain covariances included, while a rotation per domain would
    not. The rotation is an N x N matrix (N^2 memory, an N^3 QR per analysis): it suits
    ensembles up to ~10^4 members, not the 10^6 the observation-space form reaches.

    Arguments:
        loc_rad: localisation radius in the units of the locations (grid units for
            `IndexObservation`s; DAPPER's `loc_rad`); `inf` gives the ETKF.
        obs_op: the observation operator, for its `locations` ((obs,) or (obs, d)) and
            dimensions.
        state_locations: positions of the state variables, (dim,) or (dim, d) with d the
            observations' (default: 0, 1, ..., dim-1).
        domain_length: the periodic length: a number (every axis) or (d,) (one per axis);
            default dim for 1-D positions (the L96 ring), required for d > 1.
        periodic: whether distances wrap around (False: a line, or open d-dim space).
        batch_size: state variables per local domain, an integer in [1, dim] (1: one domain
            per variable; DAPPER's L96 `sakov2008` setup uses 2, its KS setup 4).
        domains: instead of `batch_size`, the state indices of each local domain: a
            (domains, size) integer array or a list of index lists; every state index in
            exactly one domain (`grid_domains(...).domains` for a layered grid).
        gather: force the gathered (True) or the dense (False) local-observation path
            (None: gathered unless a domain sees more than half of the observations).
        rotate: apply a random mean-preserving rotation to the analysis anomalies.
        space: "ensemble", "observation", or None (observation space when the ensemble is
            larger than the local observation count k, a static choice on shapes); both
            give the same analysis to rounding.
        obs_chunk: domains per step of the observation-space form (bounds its per-domain
            memory to obs_chunk x k x k numbers, and obs_chunk x N x k for per-domain
            gathers), a positive integer.
    """

    local_obs: Int[Array, "domain k"] | None
    local_sqrt_taper: Float[Array, "domain k"]
    obs_space_lists: Int[Array, "domain kl"]
    obs_space_sqrt_taper: Float[Array, "domain kl"]
    domain_points: Int[Array, "domain size"]
    point_domain: Int[Array, " dim"]
    point_slot: Int[Array, " dim"]
    loc_rad: float = eqx.field(static=True)
    obs_dim: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    grouped: bool = eqx.field(static=True)
    rotate: bool = eqx.field(static=True)
    space: str | None = eqx.field(static=True)
    obs_chunk: int = eqx.field(static=True)

    def __init__(
        self,
        loc_rad: float,
        obs_op: AbstractObservation,
        state_locations=None,
        domain_length: Any = None,
        periodic: bool = True,
        *,
        batch_size: int = 1,
        domains: Any = None,
        gather: bool | None = None,
        rotate: bool = False,
        space: str | None = None,
        obs_chunk: int = 256,
    ):
        radius = concrete_numbers("loc_rad", loc_rad)
        if radius is None or radius.shape != () or not radius > 0:
            raise ValueError(f"`loc_rad` must be a positive number (inf: the ETKF), got {loc_rad}.")
        if obs_op.locations is None:
            raise ValueError(
                "`obs_op` has no `locations`; LETKF needs the position of every observation."
            )
        dim = obs_op.state_dim
        self.batch_size = check_int("batch_size", batch_size, 1, dim)
        if not isinstance(rotate, (bool, np.bool_)):
            raise TypeError(f"`rotate` must be a bool, got {rotate!r}.")
        self.rotate = bool(rotate)
        if space not in (None, "ensemble", "observation"):
            raise ValueError(f"`space` must be None, 'ensemble' or 'observation', got {space!r}.")
        self.space = space
        self.obs_chunk = check_int("obs_chunk", obs_chunk, 1)
        locs, obs_locs = _locations(state_locations, np.asarray(obs_op.locations), dim)
        length = None
        if periodic:
            length = _domain_length(domain_length, dim, locs)
        self.loc_rad = float(radius)  # an int beyond float64 is inf (the ETKF)
        self.obs_dim = obs_op.obs_dim
        if domains is not None:
            if self.batch_size != 1:
                raise ValueError(
                    f"give `domains` or `batch_size` (got {batch_size}), not both: `domains` "
                    "already groups the state variables."
                )
            points, sizes = as_domains(domains, dim)
            self.grouped = True
        else:
            points, sizes = contiguous_batches(dim, self.batch_size)
            self.grouped = self.batch_size != 1
        batches = (points, sizes) if self.grouped else None
        idx, taper = local_observations(locs, obs_locs, self.loc_rad, length, batches=batches)
        n_domains = points.shape[0]
        if gather is not None and not isinstance(gather, (bool, np.bool_)):
            raise TypeError(f"`gather` must be None (automatic) or a bool, got {gather!r}.")
        dense = 2 * idx.shape[1] > obs_op.obs_dim if gather is None else not gather
        # the observation-space form always gathers (from global products, cheaply)
        self.obs_space_lists = jnp.asarray(idx)
        self.obs_space_sqrt_taper = jnp.asarray(taper, dtype=jnp.result_type(float))
        if dense:
            # most observations are local to every domain: the dense taper is cheaper than a
            # gather (L96 with loc_rad 4 sees 25 of 40: 66 vs 80 us per cycle on one core,
            # benchmarks/bench_filters_ablation.py --only gather).
            # Scatter-add the lists into it (padding adds 0 at index 0).
            full = np.zeros((n_domains, obs_op.obs_dim))
            np.add.at(full, (np.arange(n_domains)[:, None], idx), taper)
            self.local_obs, taper = None, full
        else:
            self.local_obs = jnp.asarray(idx)
        self.local_sqrt_taper = jnp.asarray(taper, dtype=jnp.result_type(float))
        # where each state variable's analysis comes from: (domain, slot in the domain)
        domain, slot = np.nonzero(np.arange(points.shape[1])[None, :] < sizes[:, None])
        order = np.argsort(points[domain, slot], kind="stable")
        self.domain_points = jnp.asarray(points)
        self.point_domain = jnp.asarray(domain[order], dtype=jnp.int32)
        self.point_slot = jnp.asarray(slot[order], dtype=jnp.int32)

    def update(
        self, key: Key, ensemble: Ensemble, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> Ensemble:
        self._check_obs_op(obs_op)
        s = ensemble_stats(ensemble, y_obs, obs_op)
        n = ensemble.shape[0]
        if self._in_observation_space(n):
            mean, anomalies = self._observation_space(s)
            if not self.rotate:
                return mean + anomalies
            q = random_mean_preserving_rotation(key, n, ensemble.dtype)
            return mean + q @ anomalies

        def local(idx, sqrt_rho, mean_b, a_b):
            yw, dw = s.obs_anomalies, s.innovation
            if idx is not None:
                yw, dw = yw[:, idx], dw[idx]
            w, t = symmetric_sqrt_transform(yw * sqrt_rho, dw * sqrt_rho)
            if self.rotate:  # the mean and the anomalies apart, to rotate the anomalies
                return mean_b + w @ a_b, t @ a_b
            return mean_b + (w + t) @ a_b, None  # the analysis members

        taper = self.local_sqrt_taper.astype(ensemble.dtype)
        idx_axis = None if self.local_obs is None else 0
        local = jax.vmap(local, in_axes=(idx_axis, 0, 0, 1))
        if not self.grouped:  # one variable per domain: the columns themselves
            out = local(self.local_obs, taper, s.mean, s.anomalies)
        else:  # gather each domain's columns, then put each variable's result back
            pts = self.domain_points
            out = local(self.local_obs, taper, s.mean[pts], s.anomalies[:, pts])
            out = jax.tree_util.tree_map(lambda x: x[self.point_domain, ..., self.point_slot], out)
        members_or_mean, anomalies = out  # columns: (dim, N), or (dim,) and (dim, N)
        if anomalies is None:
            return members_or_mean.T
        q = random_mean_preserving_rotation(key, ensemble.shape[0], ensemble.dtype)
        return members_or_mean + q @ anomalies.T

    def averaged_transform(
        self,
        ensemble: Ensemble,
        y_obs: ObsVector,
        obs_op: AbstractObservation,
        domains: Any = None,
        obs_mask: Any = None,
    ) -> tuple[Float[Array, " ens"], Float[Array, "ens ens"]]:
        r"""The local ETKF transforms averaged over domains, for global parameters.

        Members may carry global parameters theta (e.g. a model's coefficients, estimated in
        an augmented state). Domain b's analysis would update them by its own transform,
        theta_b^a = mean(theta) + A_theta^T w_b and A_theta^a = T_b A_theta (A_theta the (N, p)
        anomalies); a global parameter takes the average of those local analyses over the
        domains (the spatially averaged parameter update of Aksoy, Zhang & Nielsen-Gammon
        2006, "Ensemble-based simultaneous state and parameter estimation in a
        two-dimensional sea-breeze model", MWR 134), i.e. theta^a = mean(theta) +
        A_theta^T w-bar and A_theta^a = T-bar A_theta with

        w-bar = mean_b w_b and T-bar = mean_b T_b,

        (w_b, T_b) the symmetric-square-root ETKF weights of the domain's tapered whitened
        observations (the same as `update`'s, in ensemble space for N <= k local observations,
        else by the push-through form T_b = I + Yw_b G_b Yw_b^T, w_b = Yw_b (Yw_b^T Yw_b + c
        I)^{-1} dw_b). The domains go `obs_chunk` at a time and are summed, so memory is
        obs_chunk x N x N.

        Arguments:
            ensemble: the forecast members of the state this LETKF was built for, (N, dim).
            y_obs: the observations, (obs,).
            obs_op: their observation operator.
            domains: indices of the domains to average over (concrete integers), or None:
                every domain with at least one local observation.
            obs_mask: which observations the transforms use, (obs,) booleans (None: all):
                variable localisation (Kang et al. 2011, JGR 116), e.g. a layer's
                coefficients updated from that layer's observations only.

        Returns:
            (w-bar (N,), T-bar (N, N)).
        """
        self._check_obs_op(obs_op)
        s = ensemble_stats(ensemble, y_obs, obs_op)
        yw, dw = s.obs_anomalies, s.innovation
        n = ensemble.shape[0]
        ids, taper = self.obs_space_lists, self.obs_space_sqrt_taper.astype(yw.dtype)
        n_domains, k = taper.shape
        if obs_mask is not None:
            mask = np.asarray(obs_mask)
            if mask.shape != (self.obs_dim,) or mask.dtype != bool or not mask.any():
                raise ValueError(
                    f"`obs_mask` must be ({self.obs_dim},) booleans, not all False, got "
                    f"{mask.dtype} {mask.shape}."
                )
            taper = taper * jnp.asarray(mask, yw.dtype)[ids]
        if domains is None:
            weight = jnp.any(taper > 0, axis=1).astype(yw.dtype)
        else:
            sel = np.asarray(domains)
            if sel.ndim != 1 or sel.size == 0 or not np.issubdtype(sel.dtype, np.integer):
                raise ValueError(
                    f"`domains` must be a non-empty 1-D array of domain indices, got {domains!r}."
                )
            if sel.min() < 0 or sel.max() >= n_domains:
                raise ValueError(
                    f"`domains` must index the {n_domains} domains, got values in "
                    f"[{sel.min()}, {sel.max()}]."
                )
            if np.unique(sel).size != sel.size:
                raise ValueError("`domains` has repeated indices: give each domain once.")
            weight = jnp.zeros(n_domains, yw.dtype).at[sel].set(1.0)
        c = n - 1.0
        in_obs_space = self._in_observation_space(n)
        eye_n = jnp.eye(n, dtype=yw.dtype)

        def one(idx, sqrt_rho):
            yw_b, dw_b = yw[:, idx] * sqrt_rho, dw[idx] * sqrt_rho
            if not in_obs_space:
                return symmetric_sqrt_transform(yw_b, dw_b)
            eye_k = jnp.eye(k, dtype=yw.dtype)
            root = inv_sqrt_shifted(yw_b.T @ yw_b + c * eye_k, c)
            w = yw_b @ (root @ (root @ dw_b))
            g = -root @ jnp.linalg.solve(math.sqrt(c) * root + eye_k, root)
            return w, eye_n + yw_b @ g @ yw_b.T

        chunk = min(self.obs_chunk, n_domains)
        pad = -n_domains % chunk
        ids_p = jnp.concatenate([ids, jnp.zeros((pad, k), ids.dtype)])
        taper_p = jnp.concatenate([taper, jnp.zeros((pad, k), taper.dtype)])
        weight_p = jnp.concatenate([weight, jnp.zeros(pad, weight.dtype)])

        def add(total, args):
            idx, sqrt_rho, wt = args
            w, t = jax.vmap(one)(idx, sqrt_rho)
            return (total[0] + wt @ w, total[1] + jnp.tensordot(wt, t, 1)), None

        blocks = (
            ids_p.reshape(-1, chunk, k),
            taper_p.reshape(-1, chunk, k),
            weight_p.reshape(-1, chunk),
        )
        zero = (jnp.zeros(n, yw.dtype), jnp.zeros((n, n), yw.dtype))
        (w_sum, t_sum), _ = jax.lax.scan(add, zero, blocks)
        total = jnp.sum(weight)
        return w_sum / total, t_sum / total

    def _check_obs_op(self, obs_op: AbstractObservation) -> None:
        """`obs_op` must have the dimensions this LETKF was built for."""
        built = (self.point_domain.shape[0], self.obs_dim)
        if built != (obs_op.state_dim, obs_op.obs_dim):
            raise ValueError(
                f"`obs_op` has dims (state {obs_op.state_dim}, obs {obs_op.obs_dim}) but this "
                f"LETKF was built for {built}."
            )

    def _in_observation_space(self, n_members: int) -> bool:
        """Whether an ensemble of `n_members` is analysed in observation space."""
        if self.space is None:
            return n_members > self.obs_space_lists.shape[1]
        return self.space == "observation"

    def _global_products(self) -> bool:
        """Whether the observation-space form uses global products (else per-domain
        gathers): P (P + 2 dim) <= domains x k (k + 2 size) multiply-adds per member."""
        p, dim = self.obs_dim, self.point_domain.shape[0]
        domains, k = self.obs_space_lists.shape
        return p * (p + 2 * dim) <= domains * k * (k + 2 * self.domain_points.shape[1])

    def _observation_space(self, s):
        """The analysis mean (dim,) and anomalies (N, dim) by the observation-space form
        (see the class docstring): global products or per-domain gathers by flop count."""
        yw, dw, a = s.obs_anomalies, s.innovation, s.anomalies
        n, p = yw.shape
        dim = a.shape[1]
        ids, taper = self.obs_space_lists, self.obs_space_sqrt_taper.astype(yw.dtype)
        domains, k = taper.shape
        c = n - 1.0
        eye = jnp.eye(k, dtype=yw.dtype)

        def coefficients(gram, dw_b, u_b):
            """k x k algebra of one domain: the mean increment (size,) and G_b u_b (k, size)."""
            root = inv_sqrt_shifted(gram + c * eye, c)
            mean_inc = (root @ (root @ dw_b)) @ u_b
            g_u = -root @ jnp.linalg.solve(math.sqrt(c) * root + eye, root @ u_b)
            return mean_inc, g_u

        def per_variable(x):  # (domains, ..., size) -> (dim, ...): each variable's slot
            return x[self.point_domain, ..., self.point_slot]

        if self._global_products():
            # global products: Yw^T Yw and Yw^T A once, one N x P x dim product back
            gram_all, b_all = yw.T @ yw, yw.T @ a  # (P, P), (P, dim)

            def from_products(args):  # one domain's k x k algebra from the global products
                idx, sqrt_rho, pts = args
                gram = gram_all[idx[:, None], idx[None, :]] * (sqrt_rho[:, None] * sqrt_rho)
                u_b = sqrt_rho[:, None] * b_all[idx[:, None], pts[None, :]]
                return coefficients(gram, dw[idx] * sqrt_rho, u_b)

            # `obs_chunk` domains at a time (memory obs_chunk x k x k)
            mean_inc, g_u = jax.lax.map(
                from_products,
                (ids, taper, self.domain_points),
                batch_size=min(self.obs_chunk, domains),
            )
            coef = per_variable(taper[:, :, None] * g_u)  # (dim, k): Yw_b's weights
            rows = ids[self.point_domain]  # (dim, k); padding has zero taper
            cols = jnp.broadcast_to(jnp.arange(dim)[:, None], rows.shape)
            q = jnp.zeros((p, dim), yw.dtype).at[rows, cols].add(coef)
            return s.mean + per_variable(mean_inc), a + yw @ q

        # per-domain gathers, obs_chunk domains at a time (memory obs_chunk x N x k)
        def local(args):
            idx, sqrt_rho, pts = args
            yw_b = yw[:, idx] * sqrt_rho
            a_b = a[:, pts]
            mean_inc, g_u = coefficients(yw_b.T @ yw_b, dw[idx] * sqrt_rho, yw_b.T @ a_b)
            return mean_inc, a_b + yw_b @ g_u

        mean_inc, anomalies = jax.lax.map(
            local, (ids, taper, self.domain_points), batch_size=min(self.obs_chunk, domains)
        )  # (domains, size), (domains, N, size)
        return s.mean + per_variable(mean_inc), per_variable(anomalies).T


def _locations(state_locations: Any, obs_locations: np.ndarray, dim: int):
    """(state, obs) locations as float arrays with the same number of coordinates: (dim,)
    and (obs,) on a line or ring, else (dim, d) and (obs, d) (a 1-D array counts as d = 1)."""
    locs: np.ndarray = np.asarray(np.arange(dim) if state_locations is None else state_locations)
    if locs.ndim not in (1, 2) or locs.shape[0] != dim or 0 in locs.shape:
        raise ValueError(
            f"`state_locations` has shape {locs.shape}, wanted ({dim},) or ({dim}, d): one "
            "position (of d coordinates) per state variable."
        )
    check_finite("state_locations", locs)
    d_state = 1 if locs.ndim == 1 else locs.shape[-1]
    d_obs = 1 if obs_locations.ndim == 1 else obs_locations.shape[1]
    if d_state != d_obs:
        raise ValueError(
            f"`obs_op.locations` has shape {obs_locations.shape} ({d_obs} coordinate(s) per "
            f"observation) but `state_locations` has shape {locs.shape} ({d_state}): they "
            "must be positions in the same space."
        )
    return locs.astype(np.float64), obs_locations.astype(np.float64)


def _domain_length(domain_length: Any, dim: int, locs: np.ndarray):
    """The periodic length: a positive float, or a (d,) vector for d-coordinate locations."""
    d = 1 if locs.ndim == 1 else locs.shape[1]
    if domain_length is None:
        if d != 1:
            raise ValueError(
                f"`domain_length` is required with {d}-coordinate `state_locations` (the "
                "periodic length of each axis, e.g. `grid_domains(...).domain_length`), or "
                "pass periodic=False."
            )
        return float(dim)
    if np.ndim(domain_length) == 0:
        length = np.asarray(finite_float("domain_length", domain_length))
    else:
        length = np.asarray(domain_length, dtype=np.float64)
    if length.shape not in ((), (d,)):
        want = f"a number or shape ({d},): one length per axis"
        raise ValueError(f"`domain_length` has shape {length.shape}, expected {want}.")
    check_finite("domain_length", length)
    check_positive("domain_length", length)
    return float(length) if length.shape == () else length
