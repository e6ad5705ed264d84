"""Config-driven experiments run by `jaxsci run`: a schema system, the registry, the runner.

A pipeline is a schema (a dataclass of `option`/`section` fields) plus
`run(config, run_dir) -> metrics`; `PIPELINES` maps the config's top-level `pipeline:`
key to it. See `_registry.py` for how to add one.
"""

from ._registry import PIPELINES as PIPELINES
from ._registry import Pipeline as Pipeline
from ._runner import apply_overrides as apply_overrides
from ._runner import description as description
from ._runner import load_config as load_config
from ._runner import metrics_table as metrics_table
from ._runner import resolve as resolve
from ._runner import resolved_dict as resolved_dict
from ._runner import run_config as run_config
from ._schema import ConfigError as ConfigError
from ._schema import describe as describe
from ._schema import option as option
from ._schema import section as section
from ._schema import to_dict as to_dict
from ._schema import validate as validate
