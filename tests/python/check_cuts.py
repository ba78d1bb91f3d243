"""Runs every published quality cut the way users run it, and checks it keeps exactly the rows
its words promise.

usage: check_cuts.py CATALOG.parquet README.md WORKDIR

The cuts come from the catalogue's own `starpipe` metadata (`cuts`: sql, polars, pandas, topcat
forms and the classes each allows); which class a bit belongs to comes from `flag_bits`. Each cut
runs as SQL in DuckDB, as a Polars expression and as a pandas condition, on the catalogue as
written and on a copy whose `quality_flags` carry every bit alone, every pair of bits, none and all
of them; the rows kept must be those whose every set bit is of an allowed class. The README's cut
table must print the same expressions.
"""
import itertools
import json
import os
import sys

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq


def promised(values, bits, allowed):
    """Rows (bool per value) whose every set bit belongs to an allowed class."""
    keep = np.ones(len(values), dtype=bool)
    for b in bits.values():
        if b["class"] not in allowed:
            keep &= (values & (1 << b["bit"])) == 0
    return keep


def check(path, meta, label):
    table = pq.read_table(path)
    values = table.column("quality_flags").to_numpy().astype(np.int64)
    ids = np.arange(table.num_rows)
    bits = meta["flag_bits"]
    frame = pd.read_parquet(path)
    lazy = pl.scan_parquet(path).with_row_index("row")
    assert len(meta["cuts"]) >= 3, meta["cuts"]
    for name, cut in meta["cuts"].items():
        want = ids[promised(values, bits, set(cut["allows_classes"]))]
        # DuckDB: the SQL form as a WHERE clause, rows named by their place in the file.
        query = f"SELECT file_row_number FROM read_parquet('{path}', file_row_number = true) WHERE {cut['sql']}"
        got_sql = np.array(sorted(r[0] for r in duckdb.sql(query).fetchall()), dtype=np.int64)
        assert np.array_equal(got_sql, want), f"{label}: DuckDB `{cut['sql']}` keeps {len(got_sql)}, promised {len(want)}"
        # Polars: the expression as printed.
        expr = eval(cut["polars"], {"pl": pl})
        got_pl = lazy.filter(expr).select("row").collect()["row"].to_numpy()
        assert np.array_equal(np.sort(got_pl), want), f"{label}: Polars `{cut['polars']}`"
        # pandas: the condition on a frame named t; attribute access must reach the column too.
        got_pd = np.flatnonzero(eval(cut["pandas"], {"t": frame}).to_numpy())
        assert np.array_equal(got_pd, want), f"{label}: pandas `{cut['pandas']}`"
        assert isinstance(frame.quality_flags, pd.Series), "pandas attribute access must give the column"
        print(f"  {label}: {name} ({cut['sql']}) keeps {len(want)} of {len(values)}")
    # `usable` is `success`.
    success = table.column("success").to_numpy(zero_copy_only=False)
    usable = eval(meta["cuts"]["usable"]["pandas"], {"t": frame}).to_numpy()
    if label == "as written":
        assert np.array_equal(success, usable), "the usable cut must be success"


def main():
    catalog, readme, work = sys.argv[1:4]
    meta = json.loads(pq.read_schema(catalog).metadata[b"starpipe"])
    assert meta["flag_column"] == "quality_flags"
    bits = meta["flag_bits"]
    # Severity order: every bit of a worse class above every bit of a milder one, and the class masks
    # cover their bits.
    rank = {c["name"]: k for k, c in enumerate(meta["classes"])}
    for a, b in itertools.permutations(bits.values(), 2):
        if rank[a["class"]] < rank[b["class"]]:
            assert a["bit"] < b["bit"], (a, b)
    for b in bits.values():
        mask = next(c["mask"] for c in meta["classes"] if c["name"] == b["class"])
        assert mask & (1 << b["bit"]), b
    check(catalog, meta, "as written")

    # Every bit alone, every pair, none, all: on copies of real rows, so types and metadata are the file's.
    masks = [1 << b["bit"] for b in bits.values()]
    values = [0, sum(masks)] + masks + [a | b for a, b in itertools.combinations(masks, 2)]
    table = pq.read_table(catalog)
    rows = table.take(np.arange(len(values)) % table.num_rows)
    at = rows.schema.get_field_index("quality_flags")
    rows = rows.set_column(at, rows.schema.field(at), pa.array(values, type=pa.uint32()))
    every_bit = os.path.join(work, "every-bit.parquet")
    pq.write_table(rows, every_bit)
    check(every_bit, meta, "every bit")

    # The README prints the same cuts.
    text = open(readme).read()
    for name, cut in meta["cuts"].items():
        for form in ("sql", "polars", "pandas"):
            assert f"`{cut[form]}`" in text, f"README lacks the {name} cut's {form} form `{cut[form]}`"
    print(f"ok: {len(meta['cuts'])} cuts x DuckDB, Polars, pandas on {len(values)} flag patterns")


if __name__ == "__main__":
    main()
