"""Inspecting traced programs in tests."""


def callback_primitives(jaxpr) -> set[str]:
    """Names of the host-callback primitives (`pure_callback`, `debug_callback`, ...) anywhere
    in a (closed) jaxpr, sub-jaxprs included. JAX never writes a program holding one to its
    persistent compilation cache."""
    found = set()
    for eqn in jaxpr.jaxpr.eqns if hasattr(jaxpr, "jaxpr") else jaxpr.eqns:
        if "callback" in eqn.primitive.name:
            found.add(eqn.primitive.name)
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                if hasattr(sub, "eqns") or hasattr(sub, "jaxpr"):
                    found |= callback_primitives(sub)
    return found
