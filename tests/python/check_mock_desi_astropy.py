"""Every undamaged mock DESI coadd and redrock file opens with astropy (checksums aside) and agrees
with the label table.

Usage: check_mock_desi_astropy.py MOCK_DIR
"""
import csv, sys
from collections import defaultdict
from pathlib import Path
import numpy as np
from astropy.io import fits

d = Path(sys.argv[1])
by_file = defaultdict(list)
for r in csv.DictReader(open(d / "labels.csv")):
    by_file[r["FILE"]].append(r)
ok = 0
for file, rows in by_file.items():
    if any(r["CORRUPTION"] in ("truncated", "bad_header", "missing_hdu") for r in rows):
        continue
    with fits.open(d / file) as h:
        fm = h["FIBERMAP"].data
        assert [int(r["TARGETID"]) for r in rows] == fm["TARGETID"].tolist()
        assert h["B_FLUX"].data.shape == (len(rows), 2751)
        assert h["B_MASK"].data.dtype.kind == "u", h["B_MASK"].data.dtype
        assert h[0].header["HPXNSIDE"] == 64 and h[0].header["SURVEY"] == "main"
    with fits.open(d / file.replace("coadd-", "redrock-")) as rr:
        z = rr["REDSHIFTS"].data
        assert z["TARGETID"].tolist() == fm["TARGETID"].tolist()
        assert [s.strip() for s in z["SPECTYPE"]] == [r["RR_SPECTYPE"] for r in rows]
        assert np.allclose(z["Z"], [float(r["RR_Z"]) for r in rows])
    ok += 1
print(f"ok: {ok} undamaged mock coadds read by astropy")
