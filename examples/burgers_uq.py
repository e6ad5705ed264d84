"""Uncertainty for a neural PDE surrogate: five ways to put error bars on an FNO of Burgers.

The library calls behind the `burgers_uq` pipeline (configs/burgers_uq.yaml), written out:
Burgers pairs u(0) -> u(1) from the simulator, then

* a deep ensemble (`train.fit_ensemble`),
* Monte Carlo dropout (`nn.FNO1d(..., dropout=p)` trained with
  `losses.StochasticRegressionLoss`, sampled with a key),
* last-layer Laplace (`inference.last_layer_laplace` on `FNO.features`, evidence-optimal
  prior precision and noise),
* last-layer NUTS (`inference.last_layer_logdensity` through `inference.posterior`),
* a fair-CRPS ensemble (`nn.NoiseInjected` trained with `losses.CRPSLoss`),

each scored in and out of distribution (initial fields of twice the amplitude) against the
simulator by the relative L2 error of the mean, the fair CRPS, the rank-based 90% coverage and the
spread-skill ratio (`jaxsci.metrics.ensemble_scores`, `interval_coverage`).

    .venv/bin/python examples/burgers_uq.py [--fast]

`--fast` is a smoke run (tiny networks, few epochs): its numbers are not meaningful.
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsci import data, inference, losses, metrics, nn, train


def main(fast: bool = False) -> dict:
    n_train, n_test, points, stride = (40, 6, 64, 2) if fast else (400, 50, 256, 4)
    width, epochs, members, draws = (8, 4, 2, 20) if fast else (32, 25, 5, 100)
    grf = data.GaussianRandomField(points, zero_mean=True)
    u0, u1 = data.burgers_dataset(jax.random.key(0), n_train + n_test, num_points=points, grf=grf)
    grf_ood = data.GaussianRandomField(points, sigma=50.0, zero_mean=True)  # 2x the amplitude
    v0, v1 = data.burgers_dataset(jax.random.key(1), n_test, num_points=points, grf=grf_ood)
    x, y = u0[:n_train, None, ::stride], u1[:n_train, None, ::stride]
    tests = {
        "id": (u0[n_train:, None, ::stride], u1[n_train:, ::stride]),
        "ood": (v0[:, None, ::stride], v1[:, ::stride]),
    }

    def fno(key, in_channels=1, dropout=0.0):
        return nn.FNO1d(
            in_channels, 1, width, 8, 2, key=key, projection_width=2 * width, dropout=dropout
        )

    kw = dict(optimizer=optax.adam(3e-3), batch_size=20, epochs=epochs, progress=False)
    deep, _ = train.fit_ensemble(
        fno, losses.MSELoss(), (x, y), num_members=members, key=jax.random.key(2), **kw
    )
    dropout, _ = train.fit(
        fno(jax.random.key(3), dropout=0.1),
        losses.StochasticRegressionLoss(losses.MSELoss()),
        (x, y),
        key=jax.random.key(4),
        **kw,
    )
    gen, _ = train.fit(
        nn.NoiseInjected(fno(jax.random.key(5), in_channels=3), 2),
        losses.CRPSLoss(4),
        (x, y),
        key=jax.random.key(6),
        **kw,
    )

    # the last layer of the first ensemble member: features (rows = example x point) + bias
    base = jax.tree.map(lambda a: a[0] if eqx.is_array(a) else a, deep)

    def design(inputs):
        f = jnp.moveaxis(jax.vmap(base.features)(jnp.asarray(inputs)), 1, -1)
        f = f.reshape(-1, f.shape[-1])
        return np.asarray(jnp.concatenate([f, jnp.ones((len(f), 1))], axis=1), np.float64)

    with jax.enable_x64(True):  # the features' Gram matrix is ill-conditioned in float32
        phi, target = design(x), np.asarray(y, np.float64).reshape(-1)
        refit = inference.last_layer_laplace(phi, target)  # evidence-optimal alpha, sigma
        # Laplace at the trained weights (Laplace Redux): the refit's precision, centred at
        # the network's own last layer
        trained = np.concatenate([base.projection[1].weight[0], base.projection[1].bias])
        laplace = inference.last_layer_laplace(
            phi,
            target,
            noise_std=float(refit.noise_std),
            prior_precision=float(refit.prior_precision),
            mean=trained.astype(np.float64),
        )
        # fully Bayesian last layer: NUTS over w, alpha (Gamma(1e-3, 1e-3)) and 1/sigma^2
        # (Jeffreys), the w block preconditioned by the refit's covariance
        logp = inference.last_layer_logdensity(
            phi, target, noise_std=None, prior_precision=None, precondition=refit
        )
        hyper = [np.log(float(refit.prior_precision)), -2 * np.log(float(refit.noise_std))]
        nuts = inference.posterior(
            logp,
            constraints={"w": "real", "prior_precision": "positive", "noise_precision": "positive"},
            shapes={"w": (phi.shape[1],), "prior_precision": (), "noise_precision": ()},
            key=jax.random.key(7),
            num_chains=2,
            num_warmup=50 if fast else 300,
            num_samples=draws,
            init=np.concatenate([np.zeros((2, phi.shape[1])), np.tile(hyper, (2, 1))], 1),
            progress_bar=False,
        )
        w_nuts = np.asarray(refit.unwhiten(nuts.draws["w"].reshape(-1, phi.shape[1])))
        sigma_nuts = np.asarray(nuts.draws["noise_precision"]).reshape(-1) ** -0.5
        print(f"NUTS: {nuts.divergences} divergences, R-hat max", end=" ")
        print(f"{max(r['rhat'] for r in nuts.summary().values()):.3f}")
        last_layer = {}
        for split, (inputs, truth) in tests.items():
            k1, k2 = jax.random.split(jax.random.key(8))
            phi_t = design(inputs)
            shape = (-1, *truth.shape)
            last_layer[split] = {
                "laplace": np.asarray(laplace.predictive(phi_t, key=k1, num_samples=draws)).reshape(
                    shape
                ),
                "nuts": np.asarray(
                    inference.predictive_samples(phi_t, w_nuts[:draws], sigma_nuts[:draws], key=k2)
                ).reshape(shape),
            }

    def members_of(model, inputs, key):
        keys = jax.random.split(key, len(inputs))
        ens = jax.vmap(lambda xi, k: nn.sample_ensemble(model, xi, draws, key=k))(inputs, keys)
        return np.moveaxis(np.asarray(ens)[:, :, 0], 1, 0)

    table = {}
    print(f"{'method':14s} {'split':5s} {'rel_l2':>8s} {'crps':>9s} {'cov90':>6s} {'ss':>6s}")
    for split, (inputs, truth) in tests.items():
        inputs = jnp.asarray(inputs)
        ensembles = {
            "deep_ensemble": np.asarray(
                eqx.filter_vmap(lambda m, u=inputs: jax.vmap(m)(u))(deep)[:, :, 0]
            ),
            "mc_dropout": members_of(dropout, inputs, jax.random.key(9)),
            **last_layer[split],
            "crps_ensemble": members_of(gen, inputs, jax.random.key(10)),
        }
        for method, ens in ensembles.items():
            cases = np.swapaxes(ens, 0, 1)  # (examples, members, points)
            scores = metrics.ensemble_scores(cases, truth)
            row = {
                "rel_l2": float(jnp.mean(jax.vmap(losses.relative_l2)(ens.mean(0), truth))),
                "crps": float(scores.crps),
                "coverage90": float(metrics.interval_coverage(cases, truth, 0.9)),
                "spread_skill": float(scores.spread_skill),
            }
            table[(method, split)] = row
            print(f"{method:14s} {split:5s} " + " ".join(f"{v:8.3g}" for v in row.values()))
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="smoke run: tiny networks")
    main(fast=parser.parse_args().fast)
