import gc
import os
import shutil
import tempfile

import jax
import pytest

_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def pytest_configure(config):
    """Share compiled XLA programs within the test session.

    Tests build many programs that are the same HLO under different Python closures (each
    test jits its own lambda; jit == no-jit checks run op by op) and the two xdist workers
    compile the same programs twice. JAX's persistent compilation cache, pointed at one
    session folder (inherited by the workers through the environment), compiles each program
    once per session. Compiled programs are the same code whichever process built them, so
    results do not change. `JAXSCI_TEST_CACHE=0` turns this off; a `JAX_COMPILATION_CACHE_DIR`
    set outside is used as is (and kept).
    """
    if not hasattr(config, "workerinput"):
        # arviz writes a once-a-day stamp file when first imported (tmp file + rename): two
        # xdist workers importing it at once on a new day race on the rename and one fails
        # collection. Importing it here, in the controller before the workers start, writes
        # the day's stamp first.
        import arviz  # noqa: F401
    # The `jaxsci` command keeps its own cache (~/.cache/jaxsci/xla by default): CLI runs in
    # the tests, in-process or in a subprocess, use the session's folder (a JAX cache folder
    # is the command's choice when no JAXSCI_CACHE_DIR is set) or none, never the user's.
    os.environ.pop("JAXSCI_CACHE_DIR", None)
    if os.environ.get("JAXSCI_TEST_CACHE", "1") == "0":
        os.environ["JAXSCI_NO_COMPILE_CACHE"] = "1"
        return
    if _CACHE_ENV not in os.environ:  # the controller (or a plain run): a fresh folder
        os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="jaxsci-xla-cache-")
        config._jaxsci_cache_owner = os.environ[_CACHE_ENV]
    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    owned = getattr(config, "_jaxsci_cache_owner", None)
    if owned is not None and not hasattr(config, "workerinput"):
        shutil.rmtree(owned, ignore_errors=True)
        os.environ.pop(_CACHE_ENV, None)


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
    """Drop JAX's in-memory caches of compiled programs and traces after each test module, so
    that a worker's memory does not grow with every program the suite ever compiled; a
    program needed again comes back from the session's persistent compilation cache."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def x64():
    """Run a test in float64 (reference comparisons that need it say so by using this)."""
    with jax.enable_x64(True):
        yield


def pytest_runtest_logreport(report):
    """With `JAXSCI_TEST_TIMINGS=path`, append each phase's duration as it ends (for profiling
    a suite that may be stopped before pytest's own `--durations` summary)."""
    path = os.environ.get("JAXSCI_TEST_TIMINGS")
    # under xdist the controller sees every worker's reports: log there only, once each
    if path and "PYTEST_XDIST_WORKER" not in os.environ:
        with open(path, "a") as f:
            f.write(f"{report.duration:.3f} {report.when} {report.nodeid}\n")


@pytest.fixture
def own_checks():
    """Turn the jaxtyping import hook's checks off for one test.

    `make test` runs under the hook (beartype + jaxtyping on every annotated function of
    jaxsci), whose TypeCheckError naming the parameter comes before the library's own
    argument check. A test of that check (its exception type and message, which a user
    without the hook sees) asks for this fixture.
    """
    import jaxtyping

    old = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", old)
