"""The plain-Python peer of `starpipe ingest`, for benchmarks only.

What a careful astronomer would write with the usual tools: astropy to read, numpy interpolation
onto the log grid, an ivar-weighted Chebyshev continuum on the same line-free windows, pyarrow to
write one Parquet file with fixed-size-list flux/ivar. Single process, like one starpipe thread.

Usage: python_peer.py lamost|desi MANIFEST OUT.parquet [full|specclip]
(full: the LAMOST log grid, 3909 px; specclip: its pixels 338-1799, 3999-5596 A, as
`starpipe ingest --grid specclip`; arms that cannot reach the grid are not read.)
"""
import sys, time
import numpy as np
import pyarrow as pa, pyarrow.parquet as pq
from astropy.io import fits

GRID = 10 ** (3.5682 + 1e-4 * np.arange(3909))
if len(sys.argv) > 4 and sys.argv[4] == "specclip":
    GRID = GRID[338:1800]
LINES = [(3920, 3950), (3955, 3985), (4087, 4118), (4222, 4234), (4285, 4320), (4326, 4357), (4847, 4878),
         (5160, 5197), (5265, 5275), (5780, 5910), (6549, 6580), (6865, 6935), (7160, 7340), (7590, 7705),
         (8490, 8510), (8534, 8554), (8654, 8674), (8940, 9200)]
CONT = np.ones(GRID.size, bool)
for lo, hi in LINES:
    CONT &= ~((GRID >= lo) & (GRID <= hi))


def normalise(flux, ivar, breaks):
    cont = np.zeros_like(flux)
    edges = [0] + [int(np.searchsorted(GRID, b)) for b in breaks] + [GRID.size]
    for a, b in zip(edges[:-1], edges[1:]):
        x = np.linspace(-1, 1, b - a)
        use = CONT[a:b] & (ivar[a:b] > 0)
        for _ in range(3):
            if use.sum() < 24:
                break
            c = np.polynomial.chebyshev.chebfit(x[use], flux[a:b][use], 5, w=np.sqrt(ivar[a:b][use]))
            model = np.polynomial.chebyshev.chebval(x, c)
            dev = flux[a:b] - model
            tol = 16 * (1 / np.maximum(ivar[a:b], 1e-30) + (0.15 * model) ** 2)
            use = use & (dev * dev <= tol)
        cont[a:b] = model
    good = (ivar > 0) & (cont > 0)
    return np.where(good, flux / np.where(good, cont, 1), 1.0), np.where(good, ivar * cont ** 2, 0.0)


def to_grid(wave, flux, ivar, z):
    w = wave / (1 + z)
    f = np.interp(GRID, w, flux, left=0, right=0)
    iv = np.interp(GRID, w, ivar, left=0, right=0)
    return f, iv


def lamost(path):
    with fits.open(path) as h:
        hdr = h[0].header
        if hdr.get("CLASS", "").strip() != "STAR":
            return []
        if hdr["NAXIS"] == 2:
            d = h[0].data.astype(np.float64)
            flux, ivar, wave, ormask = d[0], d[1], d[2], d[4]
        else:
            t = h["COADD"].data
            flux, ivar, wave, ormask = (t[c][0].astype(np.float64) for c in ("FLUX", "IVAR", "WAVELENGTH", "ORMASK"))
        ivar = np.where((ormask == 0) & np.isfinite(flux) & np.isfinite(ivar), ivar, 0)
        f, iv = to_grid(wave, np.nan_to_num(flux), ivar, hdr["Z"])
        nf, niv = normalise(f, iv, [5850])
        return [dict(obsid=int(hdr["OBSID"]), ra=hdr["RA"], dec=hdr["DEC"], z=hdr["Z"], flux=nf, ivar=niv)]


def desi(path):
    out = []
    with fits.open(path, memmap=False) as h:
        fm = h["FIBERMAP"].data
        # SV files keep their targeting bits in prefixed columns (production files carry both).
        survey = str(h[0].header.get("SURVEY", "main")).strip()
        prefix = f"{survey.upper()}_" if survey in ("sv1", "sv2", "sv3") else ""
        sel = (fm["TARGETID"] > 0) & (fm["OBJTYPE"] == "TGT") & ((fm["COADD_FIBERSTATUS"] & ~8) == 0) \
            & ((fm[prefix + "DESI_TARGET"] & (1 << 61)) != 0)
        arms = [a for a in "BRZ" if f"{a}_WAVELENGTH" in h]
        waves = {a: h[f"{a}_WAVELENGTH"].data for a in arms}
        arms = [a for a in arms if waves[a][0] / 1.01 - 20 <= GRID[-1] and waves[a][-1] / 0.99 + 20 >= GRID[0]]
        for row in np.flatnonzero(sel):
            sf, siv = np.zeros(GRID.size), np.zeros(GRID.size)
            for a in arms:
                w = waves[a]
                flux = h[f"{a}_FLUX"].data[row].astype(np.float64)
                ivar = h[f"{a}_IVAR"].data[row].astype(np.float64)
                mask = h[f"{a}_MASK"].data[row]
                ivar = np.where(mask == 0, ivar, 0)
                f, iv = to_grid(w, flux, ivar, 0.0)
                sf += f * iv
                siv += iv
            f = np.where(siv > 0, sf / np.maximum(siv, 1e-30), 0)
            nf, niv = normalise(f, siv, [b for b in (5780, 7570) if GRID[0] < b < GRID[-1]])
            out.append(dict(obsid=int(fm["TARGETID"][row]), ra=fm["TARGET_RA"][row], dec=fm["TARGET_DEC"][row], z=0.0, flux=nf, ivar=niv))
    return out


def main():
    survey, manifest, out = sys.argv[1:4]
    reader = lamost if survey == "lamost" else desi
    paths = [l.strip() for l in open(manifest) if l.strip()]
    t0 = time.perf_counter()
    rows = []
    for p in paths:
        try:
            rows.extend(reader(p))
        except Exception as e:  # the peer, too, must not stop on a bad file
            print(f"failed {p}: {e}", file=sys.stderr)
    n = len(rows)
    flux = pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate([r["flux"] for r in rows]).astype(np.float32)), GRID.size)
    ivar = pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate([r["ivar"] for r in rows]).astype(np.float32)), GRID.size)
    table = pa.table({"source_id": [r["obsid"] for r in rows], "ra": [r["ra"] for r in rows], "dec": [r["dec"] for r in rows],
                      "z": [r["z"] for r in rows], "flux": flux, "ivar": ivar})
    pq.write_table(table, out, compression="zstd", row_group_size=4096)
    print(f"{len(paths)} files, {n} spectra, {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
