"""The Parquet dataset: its schema, the rows chosen for a run, and reading them. Where the
file lives (a path, ``s3://...``) is ``perfgate.data.storage``'s business.

Reading streams record batches and keeps only the chosen rows of the columns that feed a
model, so a file larger than memory works with ``--rows``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from perfgate.errors import DataError, UsageError, first_line
from perfgate.backends.paths import shown
from perfgate.data.storage import open_parquet

_READ_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class RowSelection:
    """Which rows of the file a run uses, in file order."""

    total_rows: int
    indices: np.ndarray | None  # None: every row
    seed: int

    @property
    def count(self) -> int:
        return self.total_rows if self.indices is None else int(self.indices.size)


class ParquetDataset:
    """A Parquet file opened for reading (only its footer is read here)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)  # a local path or a URI (perfgate.data.storage)
        self._file = open_parquet(self.path)
        self.schema: pa.Schema = self._file.schema_arrow
        self.num_rows: int = self._file.metadata.num_rows
        if self.num_rows == 0:
            raise DataError(f"data {shown(self.path)} has no rows")

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    def select_rows(self, rows: int | None, seed: int) -> RowSelection:
        """``rows`` distinct rows drawn with ``seed`` (all rows when None or at least the file's)."""
        if rows is None or rows >= self.num_rows:
            return RowSelection(self.num_rows, None, seed)
        if rows < 1:
            raise UsageError(f"--rows must be at least 1, got {rows}")
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(self.num_rows, size=rows, replace=False))
        return RowSelection(self.num_rows, chosen, seed)

    def read(self, columns: Sequence[str], selection: RowSelection) -> pa.Table:
        """The chosen rows of ``columns``, streamed one record batch at a time."""
        columns = list(dict.fromkeys(columns))
        try:
            if selection.indices is None:
                batches = list(self._file.iter_batches(batch_size=_READ_BATCH_ROWS, columns=columns))
            else:
                batches = list(self._selected_batches(columns, selection.indices))
            return pa.Table.from_batches(batches, schema=self.schema_of(columns))
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read data {shown(self.path)}: {first_line(exc)}") from exc
        except MemoryError as exc:
            raise DataError(f"data {shown(self.path)} does not fit in memory; choose fewer rows with --rows") from exc

    def schema_of(self, columns: Sequence[str]) -> pa.Schema:
        return pa.schema([self.schema.field(name) for name in columns])

    def _selected_batches(self, columns: list[str], indices: np.ndarray):
        metadata = self._file.metadata
        group_start = 0
        for group in range(metadata.num_row_groups):
            group_rows = metadata.row_group(group).num_rows
            group_end = group_start + group_rows
            lo, hi = np.searchsorted(indices, [group_start, group_end])
            if hi > lo:
                wanted = indices[lo:hi] - group_start
                batch_start = 0
                for batch in self._file.iter_batches(
                    batch_size=_READ_BATCH_ROWS, row_groups=[group], columns=columns
                ):
                    batch_end = batch_start + batch.num_rows
                    a, b = np.searchsorted(wanted, [batch_start, batch_end])
                    if b > a:
                        yield batch.take(pa.array(wanted[a:b] - batch_start))
                    batch_start = batch_end
            group_start = group_end

