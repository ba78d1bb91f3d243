"""Cross-checks a starpipe catalogue with the tools users query it with.

usage: check_catalog.py CATALOG.parquet HATS_DIR README.md DESI_LABELS.parquet CATALOG.fits

- the HATS directory is valid in strict mode (hats package), its row count matches the Parquet
  catalogue, and one partition read the LSDB way (by its pixel path) holds exactly its pixel's rows;
- `_healpix_29` equals hats' own spatial index of (ra, dec), and its order-6 pixel is the DESI
  coadd's HEALPIX for every mock star;
- astropy reads units from the VOParquet metadata, and the FITS table has the same rows, values
  and units;
- every SQL and Python block of the README's catalogue section runs, on the single file and on the
  HATS directory alike, with the same answers.
"""
import json
import os
import re
import sys

import duckdb
import numpy as np
import pyarrow.parquet as pq


def readme_blocks(readme):
    text = open(readme).read()
    section = text.split("## Catalogs: `starpipe catalog`", 1)[1].split("\n## ", 1)[0]
    sql = re.findall(r"```sql\n(.*?)```", section, re.S)
    py = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(sql) >= 3 and py, "README catalogue section lost its query blocks"
    return sql, py


def main():
    catalog, hats_dir, readme, labels, fits_path = sys.argv[1:6]
    import hats
    from hats.io.validation import is_valid_catalog
    from hats.pixel_math.spatial_index import compute_spatial_index

    assert is_valid_catalog(hats_dir, strict=True), "HATS catalogue is not valid in strict mode"
    cat = hats.read_hats(hats_dir)
    table = pq.read_table(catalog)
    assert cat.catalog_info.total_rows == table.num_rows, (cat.catalog_info.total_rows, table.num_rows)
    # The flag bits where a user looks: the Arrow schema, of the file and of a HATS leaf's dataset.
    for schema in (pq.read_schema(catalog), table.schema):
        meta = json.loads(schema.metadata[b"starpipe"])
        assert meta["flag_bits"]["NOT_STAR"]["bit"] == 16, meta["flag_bits"]

    # Every partition, read by path as LSDB does: only rows of its pixel, sorted, at most
    # max_rows (60 in the test) unless the pixel sits at the histogram order and cannot split.
    pixels = cat.get_healpix_pixels()
    assert len(pixels) > 1, "test catalogue should span several partitions"
    max_rows = int(os.environ.get("STARPIPE_TEST_MAX_ROWS", "60"))
    total = 0
    for pixel in pixels:
        leaf = pq.read_table(str(hats.io.paths.pixel_catalog_file(hats_dir, pixel)))
        h = leaf.column("_healpix_29").to_numpy()
        assert leaf.num_rows > 0 and np.all(h >> (2 * (29 - pixel.order)) == pixel.pixel), pixel
        assert np.all(np.diff(h) >= 0), "leaf rows must be sorted by _healpix_29"
        assert "Norder" not in leaf.column_names and "Npix" not in leaf.column_names
        assert leaf.num_rows <= max_rows or pixel.order >= 10, (pixel, leaf.num_rows)
        total += leaf.num_rows
    assert total == table.num_rows, (total, table.num_rows)

    # Spatial index: ours equals hats' (and so LSDB's).
    ra, dec = table.column("ra").to_numpy(), table.column("dec").to_numpy()
    ours = table.column("_healpix_29").to_numpy()
    theirs = compute_spatial_index(ra, dec)
    assert np.array_equal(ours, theirs), f"{np.sum(ours != theirs)} rows differ from hats' spatial index"
    # ...and at order 6 it is the coadd's nside-64 HEALPIX.
    got = duckdb.sql(
        f"SELECT count(*) FILTER (c._healpix_29 >> 46 <> l.HEALPIX), count(*) FROM '{catalog}' c "
        f"JOIN '{labels}' l ON c.source_id = l.TARGETID"
    ).fetchall()[0]
    assert got[1] > 0 and got[0] == 0, got

    # Units through the VOParquet metadata.
    from astropy.table import Table

    t = Table.read(catalog, format="parquet.votable")
    assert str(t["teff"].unit) == "K" and str(t["feh"].unit) == "dex", (t["teff"].unit, t["feh"].unit)
    import warnings

    import astropy.units as u
    from astropy.io import fits

    # A plain Table.read, astropy's defaults: units, descriptions and UCDs, and not one warning,
    # on the single file and on a HATS leaf.
    leaf = str(hats.io.paths.pixel_catalog_file(hats_dir, pixels[0]))
    for path in (catalog, leaf):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plain = Table.read(path)
        assert plain["teff"].unit == u.K and plain["ra"].unit == u.deg, (plain["teff"].unit, plain["ra"].unit)
        assert plain["feh"].unit == u.dex and plain["logg"].unit == u.dex(u.cm / u.s**2), (plain["feh"].unit, plain["logg"].unit)
        assert plain["teff"].meta.get("ucd") == "phys.temperature.effective" and plain["teff"].description
        # Fixed-width strings at the true width: nothing cut.
        assert list(plain["spectrum_id"]) == pq.read_table(path).column("spectrum_id").to_pylist()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a UnitsWarning (or any other) fails the check
        f = Table.read(fits_path, hdu="CATALOG")
        bits = Table.read(fits_path, hdu="FLAG_BITS")
    assert len(f) == table.num_rows
    assert str(f["teff"].unit) == "K" and f["logg"].unit is None, (f["teff"].unit, f["logg"].unit)
    header = fits.getheader(fits_path, "CATALOG")
    comments = {header[f"TTYPE{i}"]: header[f"TCOMM{i}"] for i in range(1, header["TFIELDS"] + 1)}
    assert comments["logg"].endswith("[log(cm.s**-2)]") and comments["feh"].endswith("[dex]"), comments["logg"]
    assert max(len(c) for c in comments.values()) > 68, "long descriptions continue, not cut at 68"
    assert "FLAG_BITS" in comments["quality_flags"], comments["quality_flags"]
    named = {str(r["NAME"]): int(r["BIT"]) for r in bits}
    assert named["NOT_STAR"] == 16 and named["NO_CLASS"] == 3, named
    assert fits.getheader(fits_path, "FLAG_BITS")["CUTBASIC"] == "quality_flags < 256"
    assert fits.getheader(fits_path, "FLAG_BITS")["MINSNR"] == 10.0
    assert list(f["spectrum_id"]) == table.column("spectrum_id").to_pylist()
    assert np.allclose(np.asarray(f["teff"]), table.column("teff").to_numpy(zero_copy_only=False), equal_nan=True)
    assert np.array_equal(np.asarray(f["quality_flags"]), table.column("quality_flags").to_numpy().astype(np.int32))
    # Null ids in Parquet are TNULL values in FITS, never a valid-looking 0.
    for name in ("gaia_source_id", "ref_id"):
        column = table.column(name)
        k = 1 + table.column_names.index(name)
        assert header.get(f"TNULL{k}") == -1, (name, header.get(f"TNULL{k}"))
        nulls = np.asarray(column.is_null())
        raw = np.asarray(fits.getdata(fits_path, "CATALOG")[name])
        assert np.array_equal(raw == -1, nulls), f"{name}: nulls {nulls.sum()}, -1 in FITS {(raw == -1).sum()}"
        assert not np.any(raw[~nulls] == 0), f"{name}: a 0 id in FITS"
        assert np.array_equal(np.ma.getmaskarray(f[name]), nulls), f"{name}: astropy must mask exactly the nulls"
    assert np.array_equal(np.asarray(f["success"]), table.column("success").to_numpy(zero_copy_only=False))

    # The README's queries, on both layouts. Its Gaia join reads 'gaia.parquet': here a stand-in
    # with every other Gaia source of the catalogue and a made-up parallax.
    sql, py = readme_blocks(readme)
    hats_glob = f"{hats_dir}/dataset/**/*.parquet"
    gaia = os.path.join(os.path.dirname(os.path.abspath(catalog)), "gaia-standin.parquet")
    duckdb.sql(
        f"COPY (SELECT DISTINCT gaia_source_id AS source_id, 1.0 + (gaia_source_id % 7) / 10 AS parallax, "
        f"0.05 AS parallax_error FROM '{catalog}' WHERE gaia_source_id % 2 = 0) TO '{gaia}' (FORMAT parquet)"
    )
    joined = 0
    for q in sql:
        q = q.replace("'gaia.parquet'", f"'{gaia}'")
        a = duckdb.sql(q.replace("'catalog.parquet'", f"'{catalog}'")).fetchall()
        b = duckdb.sql(q.replace("'catalog.parquet'", f"'{hats_glob}'")).fetchall()
        assert sorted(map(repr, a)) == sorted(map(repr, b)), f"single file and HATS disagree on:\n{q}"
        if gaia in q:
            joined = len(a)
    assert joined > 0, "the README's Gaia join found no star"
    first = duckdb.sql(sql[0].replace("'catalog.parquet'", f"'{catalog}'")).fetchall()
    assert first, "the Kiel-diagram query found no clean star"
    scope = {}
    for block in py:
        exec(block.replace('"catalog.parquet"', f'"{catalog}"'), scope)
    # One row per star: every README query selects one head and the primary spectrum.
    heads, stars, rows = duckdb.sql(
        f"SELECT count(DISTINCT head), count(DISTINCT star_id), count(*) FROM '{catalog}' "
        f"WHERE is_default_head AND is_primary AND success"
    ).fetchall()[0]
    total_heads = duckdb.sql(f"SELECT count(DISTINCT head) FROM '{catalog}'").fetchall()[0][0]
    assert total_heads >= 2 and heads == 1 and stars == rows, (total_heads, heads, stars, rows)
    assert int(scope["per_pixel"]["len"].sum()) == rows
    assert int(scope["kiel"]["len"].sum()) == sum(r[2] for r in first)
    assert len(scope["clean"]) == sum(r[2] for r in first), "pandas and the SQL Kiel query select the same stars"
    assert scope["clean"]["star_id"].is_unique
    assert str(scope["t"]["gaia_source_id"].dtype) == "Int64", scope["t"]["gaia_source_id"].dtype
    metal_poor = duckdb.sql(sql[1].replace("'catalog.parquet'", f"'{catalog}'")).fetchall()
    assert len({r[0] for r in metal_poor}) == len(metal_poor), "a star listed twice"
    assert scope["metal_poor"]["source_id"].n_unique() == scope["metal_poor"].height
    print(f"ok: {table.num_rows} rows, {len(pixels)} partitions, {len(sql)} SQL + {len(py)} Python README blocks")


if __name__ == "__main__":
    main()
