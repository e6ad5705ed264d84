"""Compatibility path for the resampling schemes, which live in `jaxsci.smc`.

`RESAMPLING_SCHEMES` (name -> scheme) is kept for `jaxsci.diffusion`'s TDS and the
`inverse_gmm` pipeline until they take scheme functions; new code passes the functions
(`jaxsci.smc.systematic`, ...) and pipelines keep their own name tables.
"""

from ..smc import (
    ResamplingScheme,
    effective_sample_size as effective_sample_size,
    multinomial as multinomial,
    residual as residual,
    stratified as stratified,
    systematic as systematic,
)

RESAMPLING_SCHEMES: dict[str, ResamplingScheme] = {
    fn.__name__: fn for fn in (multinomial, stratified, systematic, residual)
}
