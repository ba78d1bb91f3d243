"""Inference benchmark: `starpipe infer` beside a PyTorch CPU baseline of the same MLP, in one run.

Compares, on the same machine and thread count:
  1. end to end (read shards, features, network, write predictions), wall time per process;
  2. the network alone (in-memory batches; `starpipe throughput mlp` vs infer_torch.py);
  3. peak RSS of `starpipe infer` at 1x and 4x the spectra (memory must stay flat);
and checks that both produce the same predictions.

usage: python3 scripts/bench/infer.py --model MODEL_DIR --spectra SHARD_DIR [--threads 2] [--reps 3]
       [--python /path/with/torch/bin/python] [--profile release|debug] [--json out.json]
"""
import argparse, glob, json, os, re, shutil, subprocess, sys, tempfile, time

import pyarrow.parquet as pq
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def timed(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M"] + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    rss = int(re.search(r"MAXRSS (\d+)", p.stderr).group(1)) / 1024
    return wall, rss, p.stdout


def read_preds(d):
    t = pq.read_table(sorted(glob.glob(os.path.join(d, "predictions-*.parquet"))))
    return {c: t.column(c).to_numpy() for c in ["teff", "logg", "feh", "teff_err", "logg_err", "feh_err"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--spectra", required=True, help="directory of spectra-*.parquet shards")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--python", default=sys.executable, help="a Python with torch, numpy, pyarrow")
    ap.add_argument("--profile", default="release")
    ap.add_argument("--json")
    a = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, a.profile, "starpipe")
    n_spectra = sum(pq.ParquetFile(p).metadata.num_rows for p in glob.glob(os.path.join(a.spectra, "spectra-*.parquet")))
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    work = tempfile.mkdtemp(prefix="starpipe-infer-bench-")
    res = {"threads": a.threads, "spectra": n_spectra, "profile": a.profile, "end_to_end": {}, "network": [], "rss_mib": {}}
    try:
        runs = {"starpipe": [], "torch": [], "torch_in_process": []}
        for r in range(a.reps):
            out = os.path.join(work, f"candle-{r}")
            wall, rss, _ = timed([binary, "infer", "--threads", str(a.threads), "--spectra", a.spectra, "--model", a.model, "--out", out], env)
            runs["starpipe"].append(wall)
            res["rss_mib"]["1x"] = rss
            out_t = os.path.join(work, f"torch-{r}")
            wall_t, rss_t, out = timed([a.python, os.path.join(HERE, "infer_torch.py"), a.model, a.spectra, out_t, "--threads", str(a.threads)], env)
            runs["torch"].append(wall_t)
            # Without interpreter start-up and `import torch` (about a second), for a fair reading at small N.
            runs["torch_in_process"].append(json.loads(out.strip().splitlines()[-1])["seconds"])
            res["rss_mib"]["torch_1x"] = rss_t
        for k, v in runs.items():
            res["end_to_end"][k] = {"best_s": min(v), "spectra_per_s": n_spectra / min(v)}
        p, q = read_preds(os.path.join(work, "candle-0")), read_preds(os.path.join(work, "torch-0"))
        res["max_abs_diff"] = {k: float(np.max(np.abs(p[k] - q[k]))) for k in p}
        # Memory: the same shard four times under different names.
        four = os.path.join(work, "four")
        os.makedirs(four)
        for i, src in enumerate(sorted(glob.glob(os.path.join(a.spectra, "spectra-*.parquet")))):
            for c in "abcd":
                os.symlink(os.path.abspath(src), os.path.join(four, f"spectra-{c}{i}.parquet"))
        _, rss4, _ = timed([binary, "infer", "--threads", str(a.threads), "--spectra", four, "--model", a.model, "--out", os.path.join(work, "out4")], env)
        res["rss_mib"]["4x"] = rss4
        cmd = [binary, "throughput", "mlp", "--model", a.model, "--device", "cpu", "--batch", "256", "--batch", "4096"]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        res["network"] += [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        out = subprocess.run([a.python, os.path.join(HERE, "infer_torch.py"), a.model, "--network-only", "--threads", str(a.threads), "--batch", "256", "4096"],
                             capture_output=True, text=True, env=env, check=True).stdout
        res["network"] += [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    e = res["end_to_end"]
    print(f"inference, {n_spectra} spectra, {a.threads} threads, starpipe {a.profile} build")
    print(f"  end to end: starpipe {e['starpipe']['spectra_per_s']:.0f}/s, PyTorch {e['torch']['spectra_per_s']:.0f}/s "
          f"-> ratio {e['starpipe']['spectra_per_s'] / e['torch']['spectra_per_s']:.2f}x (target >= 1)")
    print(f"  end to end without Python start-up: PyTorch {e['torch_in_process']['spectra_per_s']:.0f}/s "
          f"-> ratio {e['starpipe']['spectra_per_s'] / e['torch_in_process']['spectra_per_s']:.2f}x")
    for b in sorted({n["batch"] for n in res["network"]}):
        row = {n["impl"]: n["spectra_per_s"] for n in res["network"] if n["batch"] == b}
        if "candle" in row and "torch" in row:
            print(f"  network only, batch {b}: candle {row['candle']:.0f}/s, PyTorch {row['torch']:.0f}/s -> {row['candle'] / row['torch']:.2f}x")
    print(f"  peak RSS starpipe: {res['rss_mib']['1x']:.0f} MiB (1x), {res['rss_mib']['4x']:.0f} MiB (4x spectra); PyTorch script {res['rss_mib']['torch_1x']:.0f} MiB")
    print(f"  max |starpipe - PyTorch|: " + ", ".join(f"{k} {v:.2g}" for k, v in res["max_abs_diff"].items()))
    if a.json:
        json.dump(res, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
