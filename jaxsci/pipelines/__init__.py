"""Config-driven experiments run by `jaxsci run`: a schema system, the registry, the runner.

A pipeline is a schema (a dataclass of `option`/`section` fields) plus
`run(config, run_dir) -> metrics`; `PIPELINES` maps the config's top-level `pipeline:`
key to it. See `_registry.py` for how to add one.
"""

from ._registry import PIPELINES as PIPELINES, Pipeline as Pipeline
from ._runner import (
    COMPLETE as COMPLETE,
    RunFolderError as RunFolderError,
    apply_overrides as apply_overrides,
    description as description,
    is_complete as is_complete,
    load_config as load_config,
    metrics_table as metrics_table,
    prepare_run_folder as prepare_run_folder,
    resolve as resolve,
    resolved_dict as resolved_dict,
    run_config as run_config,
)
from ._schema import (
    ConfigError as ConfigError,
    SchemaRow as SchemaRow,
    describe as describe,
    option as option,
    schema_rows as schema_rows,
    section as section,
    to_dict as to_dict,
    validate as validate,
)
