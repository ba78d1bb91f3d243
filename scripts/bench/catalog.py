"""Catalogue benchmark: `starpipe catalog --format hats` on synthetic inputs of 1 M and 10 M rows
(rows/s and peak RSS, which must stay flat as rows grow).

Synthetic inputs are what `ingest` and `infer` would leave: spectra shards (only the metadata
columns the catalogue reads; flux/ivar of a 4-pixel grid) and matching prediction shards, 500,000
rows each, with DESI-like positions (dec -20..+80, a dense band) and ~5 % repeat spectra.

usage: python3 scripts/bench/catalog.py [--rows 1000000 10000000] [--work DIR] [--profile release]
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARD = 500_000


def make_inputs(work, n, seed=1):
    spectra, preds = os.path.join(work, f"spectra-{n}"), os.path.join(work, f"pred-{n}")
    if os.path.exists(os.path.join(preds, "done")):
        return spectra, preds
    shutil.rmtree(spectra, ignore_errors=True)
    shutil.rmtree(preds, ignore_errors=True)
    os.makedirs(spectra)
    os.makedirs(preds)
    rng = np.random.default_rng(seed)
    grid = json.dumps({"log10_lambda0": 3.5682, "dlog10_lambda": 1e-4, "start": 338, "npix": 4})
    label_range = json.dumps({"min": [3700, 0.9, -2.5], "max": [8100, 5.0, 0.5], "p005": [3800, 1.0, -2.3], "p995": [7800, 4.9, 0.45]})
    for k, start in enumerate(range(0, n, SHARD)):
        m = min(SHARD, n - start)
        tid = 39_600_000_000_000_000 + start + np.arange(m)
        # ~5 % repeat spectra of earlier targets of the same shard (same position, other S/N).
        rep = rng.random(m) < 0.05
        tid[rep] = tid[rng.integers(0, m, m)[rep]]
        ra = (tid * 0.618034) % 360.0
        dec = np.where((tid % 2) == 0, 10 + 20 * ((tid * 0.41421) % 1.0), np.degrees(np.arcsin(-0.34 + 1.32 * ((tid * 0.7320508) % 1.0))))
        name = f"{k:05d}.parquet"
        ids = pa.array([f"desi-iron-main-bright-hp-{t}-{start + i}" for i, t in enumerate(tid)])
        flux = pa.FixedSizeListArray.from_arrays(pa.array(np.ones(4 * m, np.float32)), 4)
        t = pa.table({
            "spectrum_id": ids, "survey": pa.array(["desi"] * m), "release": pa.array(["iron"] * m),
            "source_id": pa.array(tid), "ra": pa.array(ra), "dec": pa.array(dec),
            "snr_grid": pa.array(rng.lognormal(3, 0.8, m).astype(np.float32)),
            "snr_g": pa.nulls(m, pa.float32()), "snr_arm_r": pa.array(rng.lognormal(3, 0.8, m).astype(np.float32)),
            "masked_fraction": pa.array((rng.random(m) * 0.1).astype(np.float32)),
            "fiber_mask": pa.nulls(m, pa.int32()), "fiber_status": pa.array(np.where(rng.random(m) < 0.02, 2, 0).astype(np.int32)),
            "object_class": pa.array(["STAR"] * m), "rv_kms": pa.array(rng.normal(0, 50, m)),
            "z_err": pa.array(np.abs(rng.normal(0, 1e-5, m))), "rest_frame": pa.array(np.ones(m, bool)),
            "object_subclass": pa.array(["G"] * m), "star_id": pa.array([str(t) for t in tid]),
            "gaia_source_id": pa.array(4_000_000_000_000_000_000 + tid % 10**15), "ref_id": pa.array(4_000_000_000_000_000_000 + tid % 10**15),
            "ref_cat": pa.array(["G2"] * m), "gaia_phot_g_mean_mag": pa.array(rng.uniform(14, 20, m).astype(np.float32)),
            "gaia_phot_bp_mean_mag": pa.array(rng.uniform(14, 20, m).astype(np.float32)),
            "gaia_phot_rp_mean_mag": pa.array(rng.uniform(14, 20, m).astype(np.float32)),
            "desi_survey": pa.array(["main"] * m), "desi_program": pa.array(["bright"] * m),
            "healpix": pa.array(np.full(m, 10145, np.int32)), "tileid": pa.nulls(m, pa.int32()),
            "designation": pa.nulls(m, pa.string()), "lmjd": pa.nulls(m, pa.int32()), "planid": pa.nulls(m, pa.string()),
            "spid": pa.nulls(m, pa.int32()), "fiberid": pa.nulls(m, pa.int32()),
            "flux": flux, "ivar": flux,
        }).replace_schema_metadata({"starpipe.grid": grid})
        pq.write_table(t, os.path.join(spectra, "spectra-" + name), compression="zstd")
        est = {p: rng.normal(mu, sd, m).astype(np.float32) for p, mu, sd in [("teff", 5500, 700), ("logg", 4.0, 0.8), ("feh", -0.3, 0.4)]}
        errs = {p + "_err": np.abs(rng.normal(s, s / 3, m)).astype(np.float32) for p, s in [("teff", 80), ("logg", 0.15), ("feh", 0.1)]}
        pt = pa.table({"spectrum_id": ids, "survey": pa.array(["desi"] * m), "source_id": pa.array(tid),
                       **{k2: pa.array(v) for k2, v in {**est, **errs}.items()},
                       "ood_score": pa.array(rng.chisquare(64, m).astype(np.float32) ** 0.5),
                       "chi2_red": pa.array(rng.lognormal(0, 0.3, m).astype(np.float32)),
                       "model_sha256": pa.array(["ab" * 32] * m), "adapter_kind": pa.array(["zeroshot"] * m),
                       "adapter_sha256": pa.array([""] * m)})
        pt = pt.replace_schema_metadata({"starpipe.infer.label_range": label_range, "starpipe.infer.ood_threshold_995": "10.5",
                                         "starpipe.infer.model_input": "pixels"})
        pq.write_table(pt, os.path.join(preds, "predictions-" + name), compression="zstd")
    open(os.path.join(preds, "done"), "w").close()
    return spectra, preds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "starpipe-catalog-bench"))
    ap.add_argument("--profile", default="release")
    ap.add_argument("--max-rows", type=int, default=1_000_000)
    a = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, a.profile, "starpipe")
    os.makedirs(a.work, exist_ok=True)
    print(f"starpipe catalog --format hats --max-rows {a.max_rows} ({a.profile} build), synthetic DESI-like inputs")
    for n in a.rows:
        t0 = time.perf_counter()
        spectra, preds = make_inputs(a.work, n)
        gen = time.perf_counter() - t0
        out = os.path.join(a.work, f"catalog-{n}")
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", binary, "catalog", "--format", "hats", "--max-rows", str(a.max_rows),
                            "--spectra", spectra, "--predictions", preds, "--out", out], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(p.stdout + p.stderr)
        rss = int(re.search(r"MAXRSS (\d+)", p.stderr).group(1)) / 1024
        parts = sum(1 for _ in open(os.path.join(out, "partition_info.csv"))) - 1
        print(f"  {n:>11,} rows: {wall:7.1f} s, {n / wall:>9,.0f} rows/s, peak RSS {rss:6.0f} MiB, {parts} partitions (inputs made in {gen:.0f} s)")
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
