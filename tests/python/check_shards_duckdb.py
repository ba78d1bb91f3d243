"""DuckDB and astropy read what starpipe ingest wrote, as it is.

Usage: check_shards_duckdb.py OUT_DIR FITS_FILE OBSID
Checks: DuckDB reads every shard (flux as a FLOAT list of npix) and the report parts; the flux written for
OBSID is the normalised version of the flux astropy reads from FITS_FILE (correlation > 0.9).
"""
import sys, json
import duckdb
import numpy as np
from astropy.io import fits

out, fits_path, obsid = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
n, npix = con.execute(f"SELECT count(*), max(len(flux)) FROM read_parquet('{out}/spectra-*.parquet')").fetchone()
assert n > 0 and npix > 0, (n, npix)
typ = con.execute(f"SELECT typeof(flux) FROM read_parquet('{out}/spectra-*.parquet') LIMIT 1").fetchone()[0]
# Parquet has no fixed-size list type: DuckDB sees a LIST of FLOAT, every one npix long.
assert typ in ("FLOAT[]", f"FLOAT[{npix}]"), typ
assert con.execute(f"SELECT min(len(flux)) FROM read_parquet('{out}/spectra-*.parquet')").fetchone()[0] == npix
statuses = dict(con.execute(f"SELECT status, count(*) FROM read_parquet('{out}/report-*.parquet') WHERE level='file' GROUP BY ALL").fetchall())
assert statuses.get("written", 0) == con.execute(f"SELECT count(DISTINCT source_path) FROM read_parquet('{out}/spectra-*.parquet')").fetchone()[0]

row = con.execute(f"SELECT flux, ivar, z FROM read_parquet('{out}/spectra-*.parquet') WHERE obsid = {obsid}").fetchone()
assert row is not None, f"obsid {obsid} not in shards"
flux, ivar, z = np.array(row[0]), np.array(row[1]), row[2]
meta = json.loads(con.execute(f"SELECT value FROM parquet_kv_metadata('{out}/spectra-*.parquet') WHERE key = 'starpipe.grid' LIMIT 1").fetchone()[0])
wave = 10 ** (meta["log10_lambda0"] + meta["dlog10_lambda"] * (meta["start"] + np.arange(meta["npix"])))

with fits.open(fits_path) as h:
    hdr = h[0].header
    assert hdr["OBSID"] == obsid
    if h[0].header["NAXIS"] == 2:
        data = h[0].data
        f_raw, w_raw = data[0], data[2]
    else:
        f_raw, w_raw = h["COADD"].data["FLUX"][0], h["COADD"].data["WAVELENGTH"][0]
    assert abs(hdr["Z"] - z) < 1e-12, (hdr["Z"], z)
raw_on_grid = np.interp(wave, w_raw / (1 + z), f_raw)
good = ivar > 0
# Normalisation divides by a smooth continuum, so line structure must correlate strongly.
hp = lambda x: x - np.convolve(x, np.ones(51) / 51, mode="same")
r = np.corrcoef(hp(raw_on_grid / np.median(raw_on_grid[good]))[good][50:-50], hp(flux)[good][50:-50])[0, 1]
assert r > 0.9, r
print(f"ok: {n} spectra, {typ} of {npix}, report {statuses}, line-structure correlation {r:.3f}")
