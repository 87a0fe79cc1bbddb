"""Parquet rows to model inputs: where the file lives (storage), its rows (dataset), which
columns feed which input (inputs, data_sources), and the batches they make (batches)."""
