"""The rows of a label table whose library id is listed: only_stars.py LABELS IDS OUT.

LABELS: a mock label table (labels.parquet of `starpipe mock --library`; its library id column is
`library_id` in LAMOST tables, `LIBRARY_ID` in DESI ones). IDS: one id per line, `#` comments.
OUT: Parquet (zstd, which starpipe reads), same columns.
"""
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

labels, ids_file, out = sys.argv[1:4]
ids = pa.array([int(l.split("#")[0]) for l in open(ids_file) if l.split("#")[0].strip()], pa.int64())
table = pq.read_table(labels)
column = next(c for c in table.column_names if c.lower() == "library_id")
pq.write_table(table.filter(pc.is_in(table[column], value_set=ids)), out, compression="zstd")
