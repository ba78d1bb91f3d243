"""Checks a starpipe HATS margin cache with hats and LSDB, as a user cross-matching the catalogue would.

usage: check_margin.py HATS_DIR MARGIN_DIR THRESHOLD_ARCSEC

- the margin is a valid HATS margin catalogue (strict), with the catalogue's schema;
- its rows are exactly those hats-import's rule selects, recomputed here from the catalogue with
  hats' own ring (`pixel_margins.get_margin`): for each partition, the rows of other partitions
  whose pixel at the margin order is in the partition's external ring (edges and corners);
- an LSDB cross-match of a Gaia-like table whose sources sit across a partition edge from their
  star finds every star with the margin, and none of those without it.
"""
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq


def margin_order(threshold_arcsec):
    from hats.pixel_math.healpix_shim import margin2order

    return int(margin2order(np.asarray(threshold_arcsec / 60.0)))


def main():
    hats_dir, margin_dir, threshold = sys.argv[1], sys.argv[2], float(sys.argv[3])
    import hats
    import lsdb
    from hats.io.validation import is_valid_catalog
    from hats.pixel_math.pixel_margins import get_margin
    from hats.pixel_math.spatial_index import compute_spatial_index

    assert is_valid_catalog(margin_dir, strict=True), "margin cache is not a valid HATS catalogue"
    margin = hats.read_hats(margin_dir)
    assert type(margin).__name__ == "MarginCatalog", type(margin)
    assert margin.catalog_info.margin_threshold == threshold
    cat = hats.read_hats(hats_dir)
    parts = sorted((p.order, p.pixel) for p in cat.get_healpix_pixels())
    import pyarrow as pa

    main_table = pa.concat_tables(
        pq.read_table(str(hats.io.paths.pixel_catalog_file(hats_dir, p))) for p in cat.get_healpix_pixels()
    )
    assert pq.read_schema(f"{margin_dir}/dataset/_common_metadata").names == main_table.schema.names

    # The rows hats-import's rule selects, from the catalogue alone.
    order = margin_order(threshold)
    h = main_table.column("_healpix_29").to_numpy()
    key = [f"{a}|{b}" for a, b in zip(main_table.column("spectrum_id").to_pylist(), main_table.column("head").to_pylist())]
    cell = h >> (2 * (29 - order))
    expected = {}
    for k, p in parts:
        ring = set(get_margin(k, p, order - k))
        inside = (h >> (2 * (29 - k))) == p
        chosen = sorted(key[i] for i in np.flatnonzero(~inside) if int(cell[i]) in ring)
        if chosen:
            expected[(k, p)] = chosen
    got = {}
    for pixel in margin.get_healpix_pixels():
        leaf = pq.read_table(str(hats.io.paths.pixel_catalog_file(margin_dir, pixel)))
        got[(pixel.order, pixel.pixel)] = sorted(
            f"{a}|{b}" for a, b in zip(leaf.column("spectrum_id").to_pylist(), leaf.column("head").to_pylist())
        )
        assert np.all(np.diff(leaf.column("_healpix_29").to_numpy()) >= 0), "margin leaf not sorted"
    assert got == expected, f"margin partitions {sorted(got)} vs hats' rule {sorted(expected)}"
    assert expected, "the test catalogue should have rows near partition edges"

    # A Gaia-like table: for each star, a source 2/3 of the threshold away, across a partition edge.
    stars = main_table.select(["source_id", "ra", "dec", "is_default_head", "is_primary"]).to_pandas()
    stars = stars[stars.is_default_head & stars.is_primary]

    def partition(ra, dec):
        hh = compute_spatial_index(ra, dec)
        out = np.full(len(hh), -1)
        for i, (k, p) in enumerate(parts):
            out[(hh >> (2 * (29 - k))) == p] = i
        return out

    own = partition(stars.ra.to_numpy(), stars.dec.to_numpy())
    step = threshold * 2 / 3 / 3600
    found = []
    for angle in np.radians(np.arange(0, 360, 30)):
        ra = stars.ra.to_numpy() + step * np.sin(angle) / np.cos(np.radians(stars.dec.to_numpy()))
        dec = stars.dec.to_numpy() + step * np.cos(angle)
        other = partition(ra, dec)
        across = (other != own) & (other >= 0)
        found.append(pd.DataFrame({"g_ra": ra[across], "g_dec": dec[across], "g_id": stars.source_id.to_numpy()[across]}))
    gaia_like = pd.concat(found).drop_duplicates("g_id")
    assert len(gaia_like) > 0, "no star near a partition edge to test the margin with"
    gaia = lsdb.from_dataframe(gaia_like, ra_column="g_ra", dec_column="g_dec")
    radius = threshold * 0.9

    def own_matches(right):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xm = gaia.crossmatch(right, radius_arcsec=radius, n_neighbors=20).compute()
        ids = [c for c in xm.columns if c.startswith("g_id")][0]
        sid = [c for c in xm.columns if c.startswith("source_id")][0]
        return set(xm[ids][xm[ids] == xm[sid]])

    with_margin = own_matches(lsdb.open_catalog(hats_dir, margin_cache=margin_dir))
    without = own_matches(lsdb.open_catalog(hats_dir))
    assert with_margin == set(gaia_like.g_id), f"with the margin {len(with_margin)} of {len(gaia_like)} stars matched"
    assert not without, f"without the margin {len(without)} cross-edge pairs matched: the test did not test the margin"
    print(f"ok: margin {sum(map(len, got.values()))} rows in {len(got)} partitions; LSDB matched {len(with_margin)} "
          f"cross-edge pairs with it, {len(without)} without")


if __name__ == "__main__":
    main()
