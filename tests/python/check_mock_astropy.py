"""Every undamaged mock LAMOST file opens with astropy and says what the label catalogue says.

Usage: check_mock_astropy.py MOCK_DIR
"""
import csv, sys
from pathlib import Path
import numpy as np
from astropy.io import fits

d = Path(sys.argv[1])
rows = list(csv.DictReader(open(d / "labels.csv")))
ok = 0
for r in rows:
    if r["corruption"]:
        continue
    with fits.open(d / r["file"]) as h:
        hdr = h[0].header
        assert hdr["OBSID"] == int(r["obsid"]), r["file"]
        assert hdr["CLASS"].strip() == "STAR"
        assert abs(hdr["Z"] * 299792.458 - float(r["rv_kms"])) < 0.05, (hdr["Z"], r["rv_kms"])
        npix = int(r["npix"])
        if r["layout"] == "image":
            assert h[0].data.shape == (5, npix), h[0].data.shape
            flux, wave = h[0].data[0], h[0].data[2]
        else:
            t = h["COADD"].data
            assert t.columns.names == ["FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK", "NORMALIZATION"]
            flux, wave = t["FLUX"][0], t["WAVELENGTH"][0]
            assert flux.shape == (npix,)
        assert np.all(np.diff(wave) > 0) and abs(wave[0] - 3699.985) < 0.01
        assert np.isfinite(flux).all() and np.median(flux) > 0
    ok += 1
print(f"ok: {ok} undamaged mock files read by astropy")
