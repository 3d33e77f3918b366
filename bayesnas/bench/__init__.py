"""Ground truth for search quality: tables of every architecture of a space trained alone.

- :mod:`~bayesnas.bench.spec`: what a table is (space, architectures, protocol, seeds) and the
  built-in ones (:func:`table_specs`);
- :mod:`~bayesnas.bench.train`: one entry, an architecture trained alone;
- :mod:`~bayesnas.bench.table`: a built table, looked up (:class:`Table`).

``bayesnas bench build NAME`` builds a table (a resumable run, parallel over cores:
:mod:`bayesnas.methods.bench`), ``bayesnas bench list`` shows them and ``bayesnas bench check
NAME`` re-trains random entries against their recorded errors.
"""

from bayesnas.bench.spec import (
           Protocol,
           TableSpec,
           architecture_key,
           get_table_spec,
           register_table,
           table_specs,
)
from bayesnas.bench.table import Table, table_path

__all__ = ["Protocol", "Table", "TableSpec", "architecture_key", "get_table_spec", "register_table",
           "table_path", "table_specs"]
