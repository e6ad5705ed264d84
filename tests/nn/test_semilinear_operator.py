"""`nn.SemilinearOperator` (learned symbol + network nonlinearity) and `integrate.FlowMap`.

(Training through rollouts from the true symbol, the bound kept, and the learned model inside
an ensemble filter: tests/pipelines/test_ks_semilinear_operator.py.)
References: our Kuramoto-Sivashinsky ETDRK4 solver (the true split plugged in must give its
trajectories), the symbol's parameterisation written out by hand, `Flow` itself for
`FlowMap`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import dynamics, integrate, nn, spectral


class TrueKSNonlinear(eqx.Module):
    """KS's own nonlinear term -u u_x (de-aliased) in grid space: the 'network' that makes
    the operator exactly KS."""

    model: dynamics.KuramotoSivashinsky

    def __call__(self, u):
        return self.model.from_spectral(self.model.nonlinear(0.0, self.model.to_spectral(u)))


def _fno(n, key, width=8, modes=8):
    return nn.FNO1d(1, 1, width, modes, 1, key=key, projection_width=8, grid=False)


def test_the_true_split_reproduces_kuramoto_sivashinsky():
    ks = dynamics.KuramotoSivashinsky(num_points=32)
    sno = nn.SemilinearOperator(ks.grid, TrueKSNonlinear(ks), ks.linear_operator(), max_real=0.25)
    # the symbol through max_real - s^2: float32 rounding of |L| <~ 450
    np.testing.assert_allclose(sno.linear_operator(), ks.linear_operator(), atol=1e-4, rtol=0)
    u0 = ks.default_initial_state()
    # the reference: KS's own flow over windows of one time unit; ours: the operator's
    # one-argument `FlowMap` step (so this also checks FlowMap against the flow it wraps)
    truth = integrate.rollout(integrate.Flow(ks, 0.25), u0, 20, dt=1.0)
    ours = integrate.rollout(integrate.FlowMap(integrate.Flow(sno, 0.25), 1.0), u0, 20)
    # 80 ETDRK4 steps of the same scheme: differences are float32 rounding (|L| <~ 450 on 32
    # points), amplified by the chaos (Lyapunov exponent 0.048 at L = 22) over 20 time units
    assert float(jnp.max(jnp.abs(ours - truth))) < 1e-4 * float(jnp.max(jnp.abs(truth)))


def test_symbol_parameterisation_and_its_bound():
    grid = dynamics.KuramotoSivashinsky(num_points=16).grid
    lin = np.linspace(-3.0, 0.2, 9) + 1j * np.linspace(1.0, 2.0, 9)
    sno = nn.SemilinearOperator(
        grid, _fno(16, jax.random.key(0)), lin, max_real=0.5, network_shape=(1, 16)
    )
    sym = np.asarray(sno.linear_operator())
    np.testing.assert_allclose(sym.real, lin.real, atol=1e-6)
    # m = 0 and the Nyquist mode m = 8 of a real field carry no imaginary symbol
    np.testing.assert_allclose(sym.imag, np.r_[0.0, lin.imag[1:8], 0.0], atol=1e-6)
    # whatever the parameters become, no mode grows faster than max_real
    wild = eqx.tree_at(
        lambda m: m.linear_real, sno, 100.0 * jax.random.normal(jax.random.key(1), (9,))
    )
    assert float(jnp.max(wild.linear_operator().real)) <= 0.5
    # the bound is frozen: no gradient reaches it
    grad = eqx.filter_grad(lambda m: jnp.sum(jnp.abs(m.linear_operator()) ** 2))(sno)
    assert float(jnp.abs(grad.max_real)) == 0.0 and float(jnp.max(jnp.abs(grad.linear_real))) > 0
    # a mode started at the bound (default zero symbol, max_real = 0) is not stuck there:
    # Re L = max_real - s^2 starts 1e-4 below it, where d Re L / ds = -2 s is not zero
    at_bound = nn.SemilinearOperator(grid, _fno(16, jax.random.key(0)), max_real=0.0,
                                     network_shape=(1, 16))  # fmt: skip
    np.testing.assert_allclose(np.asarray(at_bound.linear_operator().real), -1e-4, rtol=1e-3)
    g = eqx.filter_grad(lambda m: jnp.sum(m.linear_operator().real))(at_bound)
    assert float(jnp.min(jnp.abs(g.linear_real))) > 1e-3


def test_bad_arguments_are_named():
    grid = dynamics.KuramotoSivashinsky(num_points=16).grid
    net = _fno(16, jax.random.key(0))
    with pytest.raises(ValueError, match="`linear` has shape \\(16,\\)"):
        nn.SemilinearOperator(grid, net, np.zeros(16), network_shape=(1, 16))
    with pytest.raises(ValueError, match="`max_real` must be at least Re\\(linear\\)"):
        nn.SemilinearOperator(grid, net, np.full(9, 1.0), max_real=0.5, network_shape=(1, 16))
    with pytest.raises(ValueError, match="`max_real` has shape \\(3,\\)"):
        nn.SemilinearOperator(grid, net, max_real=np.zeros(3), network_shape=(1, 16))
    with pytest.raises(ValueError, match="`network`"):
        nn.SemilinearOperator(
            grid, nn.FNO1d(1, 2, 4, 4, 1, key=jax.random.key(0)), network_shape=(1, 16)
        )
    with pytest.raises(ValueError, match="`network_shape`"):
        nn.SemilinearOperator(grid, net, network_shape=(1, 15))
    with pytest.raises(TypeError, match="grid"):
        nn.SemilinearOperator(16, net)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="`grid` must be a 1-D PeriodicGrid"):
        nn.SemilinearOperator(spectral.PeriodicGrid((8, 8)), net)
    flow = integrate.Flow(dynamics.KuramotoSivashinsky(num_points=16), 0.25)
    with pytest.raises(ValueError, match="`interval`"):
        integrate.FlowMap(flow, 0.0)
    with pytest.raises(TypeError, match="flow"):
        integrate.FlowMap(lambda y, a, b: y, 1.0)  # pyright: ignore[reportArgumentType]
