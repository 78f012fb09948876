"""observer's post-hoc side for pyarrow and Spark: the flow classifier and
the Azure flow-log import of the `observer` CLI, as a Python package.

- ``Classifier(topology_path, catalogs=[], dns=None)``: ``.classify(batch or
  table)`` returns a ``pyarrow.Table`` with the classification columns
  filled (the Rust code of ``observer classify``, GIL released).
- ``import_flow_logs(kind, inputs, out, ...)``: ``observer import`` of some
  inputs (local or ``az://``), its summary as a dict.
- ``observer_py.spark``: the same on Spark DataFrames (``classify``,
  ``import_flow_logs``), for Databricks, Fabric and Synapse.
"""

from ._native import (
    SCHEMA_VERSION,
    Classifier,
    ObserverError,
    __version__,
    flow_schema,
)

__all__ = [
    "SCHEMA_VERSION",
    "Classifier",
    "ObserverError",
    "__version__",
    "flow_schema",
]
