"""Judges an ingest of a damaged corpus without starpipe's own checker: DuckDB reads the report
parts and the shards as a user would.

usage: check_corpus_duckdb.py OUT MANIFEST

Every manifest line has exactly one file row, no shard value is non-finite and no ivar negative;
prints the number of spectra in the shards.
"""
import sys

import duckdb


def main():
    out, manifest = sys.argv[1:3]
    listed = [line for line in open(manifest).read().split("\n") if line]
    counts = dict(
        duckdb.sql(
            f"SELECT input_path, count(*) FROM read_parquet('{out}/report-*.parquet') WHERE level = 'file' GROUP BY ALL"
        ).fetchall()
    )
    assert sorted(counts) == sorted(set(listed)), (len(counts), len(set(listed)))
    assert all(counts[p] == listed.count(p) for p in counts), "an input accounted twice or not at all"
    bad, n = duckdb.sql(
        "SELECT count(*) FILTER (len(list_filter(flux, lambda x: NOT isfinite(x))) > 0 "
        "OR len(list_filter(ivar, lambda x: NOT isfinite(x) OR x < 0)) > 0), count(*) "
        f"FROM read_parquet('{out}/spectra-*.parquet')"
    ).fetchall()[0]
    assert bad == 0, f"{bad} spectra with a non-finite value or a negative ivar"
    print(n)


if __name__ == "__main__":
    main()
