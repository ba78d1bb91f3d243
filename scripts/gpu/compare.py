"""Correctness of the GPU outputs of scripts/gpu/check.sh against the CPU f32 ones of the same binary:
predictions (teff, logg, feh and errors) and embeddings, per (device, precision). Prints one JSON
object; exits 1 when a comparison is outside its tolerance.

Tolerances: f32 on the GPU within 1e-3 of (a label spread + |value|) (cuBLAS sums in another order);
bf16 within 1e-2 (8 bits of mantissa: the CPU tests hold bf16 to the same 1 %); embeddings: the 99th
percentile of |Δ|/|e| within 1e-3 (f32) and 2e-2 (bf16), the worst spectrum within 2.5 times that.

usage: compare.py WORK_DIR DEVICE
"""
import glob, json, os, sys

import numpy as np
import pyarrow.parquet as pq

SPREAD = {"teff": 1000.0, "logg": 1.0, "feh": 0.5, "teff_err": 1000.0, "logg_err": 1.0, "feh_err": 0.5}


def table(d, prefix):
    files = sorted(glob.glob(os.path.join(d, prefix + "*.parquet")))
    return pq.read_table(files) if len(files) > 1 else pq.read_table(files[0])


def main():
    work, device = sys.argv[1], sys.argv[2]
    ref_p, ref_e = table(f"{work}/pred-ref", "predictions-"), table(f"{work}/emb-ref", "embeddings-")
    out, ok = {}, True
    for precision, tol_p, tol_e in [("f32", 1e-3, 1e-3), ("bf16", 1e-2, 2e-2)]:
        p = table(f"{work}/pred-{device}-{precision}", "predictions-")
        assert p.column("spectrum_id").to_pylist() == ref_p.column("spectrum_id").to_pylist()
        worst = {}
        for c, spread in SPREAD.items():
            x, y = ref_p.column(c).to_numpy(), p.column(c).to_numpy()
            worst[c] = float(np.max(np.abs(x - y) / (tol_p * (spread + np.abs(x)))))
        e = table(f"{work}/emb-{device}-{precision}", "embeddings-")
        x = np.stack(ref_e.column("embedding").to_numpy(zero_copy_only=False))
        y = np.stack(e.column("embedding").to_numpy(zero_copy_only=False))
        rel = np.linalg.norm(x - y, axis=1) / np.linalg.norm(x, axis=1)
        passed = max(worst.values()) <= 1.0 and float(np.percentile(rel, 99)) <= tol_e and float(rel.max()) <= 2.5 * tol_e
        ok &= passed
        out[f"{device}-{precision}"] = {
            "predictions_worst_over_tolerance": worst,
            "embedding_p99_relative_diff": float(np.percentile(rel, 99)),
            "embedding_max_relative_diff": float(rel.max()),
            "embedding_tolerance": tol_e,
            "pass": passed,
        }
    print(json.dumps(out, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
