"""`FlowMap`: a flow over a fixed interval as a one-argument step u -> u(interval)."""

import equinox as eqx

from .._checks import check_positive, finite_float
from .._custom_types import Array, Float
from ._flow import Flow


class FlowMap(eqx.Module):
    """The time-`interval` map of an autonomous model, u(0) -> u(interval), as `step(u)`.

    A `Flow` advances a state between two given times, `flow(y, t0, t1)`; autoregressive
    consumers (`jaxsci.integrate.rollout` without `dt`, `jaxsci.losses.RolloutLoss`,
    `jaxsci.train.fit`) call a one-argument step. `FlowMap(flow, interval)(u)` is
    `flow.window(interval)(u, 0)`: the flow's fixed steps over one window from t = 0, which
    is the map over any window for a model that does not read the time (its array fields
    -- e.g. a `jaxsci.nn.SemilinearOperator`'s learned symbol and network -- are leaves of
    this module, so `eqx.filter_grad` trains them through the integrator).

    Arguments:
        flow: a `jaxsci.integrate.Flow` (its `dt` the integrator's step; `interval` should
            be a whole number of them, else the last step is shortened).
        interval: the time between consecutive states (> 0).
    """

    flow: Flow
    interval: float = eqx.field(static=True)

    def __init__(self, flow: Flow, interval: float):
        if not isinstance(flow, Flow):
            raise TypeError(f"`flow` must be a jaxsci.integrate.Flow, got {type(flow).__name__}.")
        interval = finite_float("interval", interval)
        check_positive("interval", interval)
        self.interval = interval
        self.flow = flow

    def __call__(self, u: Float[Array, " *state"]) -> Float[Array, " *state"]:
        """The state `interval` after `u`."""
        return self.flow.window(self.interval)(u, 0.0)
