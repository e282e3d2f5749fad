"""Tables of document rows spilled to disk in partitions by document key, to be joined per partition.

Two runs write their rows in an order of their own (Beam's shards), so a document's rows in one
run are found in the other only by a join. Streaming every table into ``n`` partitions by its
document key (``bootstrap.document_keys``, a hash of ``doc_id``) puts a document's rows of every
table in the same partition; one partition at a time then holds both runs' rows of its documents,
so memory is about a partition, not the corpus.

Rows are buffered up to ``flush_rows`` (all tables together) and then written, one Arrow IPC file
(lz4) per table and flush, one record batch per partition; an index of which batches hold which
partition reads a partition back without scanning the others. Files stay few (flushes x tables)
whatever the number of partitions.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

KEY = "key"  # the document key column every spilled table gains (uint64)
# Rows buffered in memory across all tables and partitions before they are written out.
FLUSH_ROWS = 1 << 18
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


class DocumentPartitions:
    """Named tables, each spilled into ``n`` partitions by document key under ``folder``."""

    def __init__(self, folder: Path, n: int, flush_rows: int = FLUSH_ROWS):
        self.folder, self.n, self.flush_rows = Path(folder), n, flush_rows
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pending: dict[str, dict[int, list[pa.Table]]] = defaultdict(lambda: defaultdict(list))
        self._pending_rows = 0
        # table name -> [(file, {partition: batch number})], one entry per flush
        self._files: dict[str, list[tuple[Path, dict[int, int]]]] = defaultdict(list)

    def add(self, name: str, table: pa.Table, keys: np.ndarray) -> None:
        """Add ``table``'s rows, row i in the partition of document key ``keys[i]``."""
        keys = np.asarray(keys, dtype=np.uint64)
        table = table.append_column(KEY, pa.array(keys, pa.uint64()))
        part = (keys % np.uint64(self.n)).astype(np.int64)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.n + 1))
        table = table.take(pa.array(order))
        for p in np.flatnonzero(np.diff(bounds)).tolist():
            self._pending[name][p].append(table.slice(bounds[p], bounds[p + 1] - bounds[p]))
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows out: per table, one file with one record batch per partition."""
        for name, parts in self._pending.items():
            path = self.folder / f"{name}-{len(self._files[name]):06d}.arrow"
            index = {}
            schema = next(iter(parts.values()))[0].schema
            with (
                pa.OSFile(str(path), "wb") as sink,
                pa.ipc.new_file(sink, schema, options=_OPTIONS) as writer,
            ):
                for batch, p in enumerate(sorted(parts)):
                    writer.write_batch(pa.concat_tables(parts[p]).combine_chunks().to_batches()[0])
                    index[p] = batch
            self._files[name].append((path, index))
        self._pending, self._pending_rows = defaultdict(lambda: defaultdict(list)), 0

    def read(self, name: str, part: int, schema: pa.Schema) -> pa.Table:
        """Partition ``part`` of table ``name`` as flushed so far (``schema`` plus ``KEY`` when empty)."""
        batches = []
        for path, index in self._files[name]:
            if part in index:
                batches.append(pa.ipc.open_file(pa.memory_map(str(path))).get_batch(index[part]))
        if not batches:
            return schema.append(pa.field(KEY, pa.uint64())).empty_table()
        return pa.Table.from_batches(batches)
