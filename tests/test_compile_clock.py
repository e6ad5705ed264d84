"""CompileClock: JAX's own lowering/compile events, summed over a block."""

import jax
import jax.numpy as jnp

from jaxsci._compile_clock import CompileClock


def test_compile_clock_counts_a_compilation_and_not_a_cached_call():
    f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + x.sum())  # a new program: compiles
    x = jnp.ones((8, 8))
    with CompileClock() as outer:
        with CompileClock() as first:
            f(x).block_until_ready()
        with CompileClock() as again:
            f(x).block_until_ready()  # the in-memory executable: nothing compiled
    assert first.seconds > 0 and again.seconds == 0
    assert outer.seconds == first.seconds  # nested clocks see the same events
