"""DAPPER's batched LETKF analysis on fixed inputs: the reference for
tests/filters/test_letkf.py::test_batched_analysis_matches_dapper.

One analysis step of DAPPER 1.7.1's `local_analyses` (the LETKF's core, no inflation,
no rotation) with the localiser `nd_Id_localization((dim,), (batch_size,), obs_inds)` (DAPPER's
batches and its mean-distance taper), on a fixed random ensemble and observation, for a few
(batch_size, loc_rad) cases, written to tests/filters/data/dapper_letkf_batches.json. With
`--check` it also runs jaxsci's LETKF(batch_size=...) on the same inputs (float64) and prints
the largest difference. Run in the DAPPER venv with this tree on the path:

    PYTHONPATH=$PWD /work/venvs/dapper312/bin/python benchmarks/dapper_letkf_batches.py --check
"""

import argparse
import json
from pathlib import Path

import numpy as np

DIM, N, NOISE_VAR = 20, 6, 0.5
# (batch_size, loc_rad, every k-th variable observed): sizes 2 (divides 20), 3 (7 batches
# of 3,3,3,3,3,3,2), 4 and 7 (3 batches of 7,7,6)
CASES = [(2, 2.0, 2), (3, 3.0, 2), (4, 1.0, 1), (7, 1.5, 1), (1, 2.0, 2)]
OUT = Path(__file__).resolve().parents[1] / "tests/filters/data/dapper_letkf_batches.json"


def dapper_analysis(ens, y, obs_inds, batch_size, loc_rad):
    from dapper.da_methods.ensemble import local_analyses
    from dapper.tools.localization import nd_Id_localization
    from dapper.tools.matrices import CovMat

    localizer = nd_Id_localization((DIM,), (batch_size,), obs_inds, periodic=True)
    batches, taperer = localizer(loc_rad, "x2y", "GC")
    R = CovMat(NOISE_VAR * np.eye(len(obs_inds)))
    out, _ = local_analyses(ens.copy(), ens[:, obs_inds], R, y, batches, taperer)
    return out, [list(map(int, b)) for b in batches]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with jaxsci's LETKF")
    args = parser.parse_args()
    rng = np.random.default_rng(13)
    ens = 2.0 + 1.5 * rng.standard_normal((N, DIM))
    y_full = 2.0 + rng.standard_normal(DIM)
    ref = {"dim": DIM, "n": N, "noise_var": NOISE_VAR, "ensemble": ens.tolist(), "cases": []}
    for batch_size, loc_rad, every in CASES:
        obs_inds = np.arange(0, DIM, every)
        y = y_full[obs_inds]
        out, batches = dapper_analysis(ens, y, obs_inds, batch_size, loc_rad)
        ref["cases"].append(
            {
                "batch_size": batch_size,
                "loc_rad": loc_rad,
                "obs_indices": obs_inds.tolist(),
                "y": y.tolist(),
                "batches": batches,
                "analysis": out.tolist(),
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(ref))
    print(f"wrote {OUT}")
    if args.check:
        import jax

        jax.config.update("jax_enable_x64", True)
        from jaxsci import filters as F

        for case in ref["cases"]:
            obs_op = F.IndexObservation(
                DIM, indices=np.array(case["obs_indices"]), noise_cov=NOISE_VAR
            )
            letkf = F.LETKF(case["loc_rad"], obs_op, batch_size=case["batch_size"])
            ours = letkf.update(
                jax.random.key(0), jax.numpy.asarray(ens), jax.numpy.asarray(case["y"]), obs_op
            )
            diff = np.max(np.abs(np.asarray(ours) - np.asarray(case["analysis"])))
            moved = np.max(np.abs(np.asarray(case["analysis"]) - ens))
            path = "dense" if letkf.local_obs is None else "gathered"
            print(
                f"batch_size {case['batch_size']} loc_rad {case['loc_rad']}: "
                f"{len(case['batches'])} batches, {path} taper, max |jaxsci - DAPPER| "
                f"{diff:.2e} (analysis moved the members by up to {moved:.2f})"
            )


if __name__ == "__main__":
    main()
