"""Writes one table the way each tool users bring writes Parquet, with that tool's defaults.

usage: write_user_tables.py SOURCE.(csv|parquet) OUTDIR

Writes OUTDIR/<tool>.parquet for pandas (snappy), DuckDB (snappy), Polars (zstd) and pyarrow
(snappy), and pyarrow with each other codec Parquet has (gzip, lz4, brotli, zstd, none), then
prints one line per file: its name and the codec its footer records.
"""
import os
import sys

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq


def main():
    source, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    frame = pd.read_csv(source) if source.endswith(".csv") else pd.read_parquet(source)
    frame.to_parquet(os.path.join(out, "pandas.parquet"))  # pandas' default: snappy
    con = duckdb.connect()
    con.register("frame", frame)
    con.sql(f"COPY frame TO '{os.path.join(out, 'duckdb.parquet')}' (FORMAT parquet)")  # DuckDB's default: snappy
    pl.from_pandas(frame).write_parquet(os.path.join(out, "polars.parquet"))  # Polars' default: zstd
    table = pq.read_table(os.path.join(out, "pandas.parquet"))
    pq.write_table(table, os.path.join(out, "pyarrow.parquet"))  # pyarrow's default: snappy
    for codec in ("gzip", "lz4", "brotli", "zstd", "none"):
        pq.write_table(table, os.path.join(out, f"pyarrow-{codec}.parquet"), compression=codec)
    for name in sorted(os.listdir(out)):
        md = pq.ParquetFile(os.path.join(out, name)).metadata
        print(name, md.row_group(0).column(0).compression)


if __name__ == "__main__":
    main()
