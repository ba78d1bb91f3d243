"""Release-scale rehearsal: pipelines/rehearsal-desi.toml run stage by stage with `starpipe run`,
each task in its own process, measured: wall and CPU seconds (user + system, from wait4), peak
RSS (ru_maxrss), bytes read (/proc/PID/io rchar: every byte the process read, page cache
included; read_bytes: what came from the disk), and stars per CPU-second. Then the projection to
DESI DR1 (written by hand into scripts/bench/README.md from the JSON this prints).

usage: python3 scripts/bench/rehearsal.py [--work DIR] [--shards 4] [--n 50000] [--profile release]
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PIPELINE = os.path.join(ROOT, "pipelines", "rehearsal-desi.toml")


def measure(argv, cwd, log):
    """Runs argv (output appended to `log`); returns wall and CPU seconds, peak RSS (MiB) and
    bytes read (rchar, read_bytes, sampled every 0.1 s: the last tenth of a second may be missed)."""
    t0 = time.perf_counter()
    with open(log, "a") as out:
        p = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        io = {"rchar": 0, "read_bytes": 0}
        while True:
            try:
                with open(f"/proc/{p.pid}/io") as f:
                    for line in f:
                        k, v = line.split(":")
                        if k in io:
                            io[k] = int(v)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(argv)} failed ({code}); see {log}")
    return {
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_mib": ru.ru_maxrss / 1024,
        "rchar": io["rchar"],
        "read_bytes": io["read_bytes"],
    }


def count_rows(paths):
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "starpipe-rehearsal"))
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--n", type=int, default=None, help="stars of the DESI mock (default: the pipeline's)")
    ap.add_argument("--profile", default="release")
    ap.add_argument("--keep", action="store_true", help="keep the mock coadds afterwards (~0.7 MB per star)")
    a = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, a.profile, "starpipe")
    os.makedirs(a.work, exist_ok=True)
    pipeline = PIPELINE
    if a.n:
        text = open(PIPELINE).read()
        text = re.sub(r"(\[stages\.mock-desi\][^\[]*?\nn = )\d+", rf"\g<1>{a.n}", text, flags=re.S)
        pipeline = os.path.join(a.work, "rehearsal-desi.toml")
        open(pipeline, "w").write(text)
    work = os.path.join(a.work, "run")
    run = [binary, "run", pipeline, "--workdir", work, "--shards", str(a.shards)]
    ncpu = os.cpu_count()

    print(f"set-up (not measured): LAMOST mock, ingest, pre-training, calibration in {work}", flush=True)
    log = os.path.join(a.work, "rehearsal.log")
    with open(log, "w") as out:
        setup = ["mock-lamost", "ingest-lamost", "pretrain", "mock-calib-desi", "ingest-calib-desi", "calibrate"]
        subprocess.run(run + [arg for name in setup for arg in ("--stage", name)],
                       check=True, stdout=out, stderr=subprocess.STDOUT)

    results = {}
    def stage(name, tasks):
        total = {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mib": 0.0, "rchar": 0, "read_bytes": 0, "tasks": tasks}
        for i in range(tasks):
            argv = run + ["--stage", name] + (["--shard", f"{i}/{tasks}"] if tasks > 1 else [])
            m = measure(argv, ROOT, log)
            for k in ("wall_s", "cpu_s", "rchar", "read_bytes"):
                total[k] += m[k]
            total["peak_rss_mib"] = max(total["peak_rss_mib"], m["peak_rss_mib"])
            print(f"  {name} [{i}/{tasks}]: {m['wall_s']:.1f} s wall, {m['cpu_s']:.1f} CPU-s, "
                  f"{m['peak_rss_mib']:.0f} MiB peak, {m['rchar'] / 2**30:.2f} GiB read", flush=True)
        results[name] = total

    stage("mock-desi", 1)
    coadds = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(work, "mock/desi")) for f in fs
              if f.startswith("coadd-")]
    coadd_bytes = sum(os.path.getsize(c) for c in coadds)
    # Drop what the mock left in the page cache where we may, so ingest reads from the disk.
    try:
        subprocess.run(["sync"], check=True)
        open("/proc/sys/vm/drop_caches", "w").write("1\n")
        dropped = True
    except OSError:
        dropped = False
    stage("ingest", a.shards)
    shards = sorted(os.path.join(work, "spectra/desi", f) for f in os.listdir(os.path.join(work, "spectra/desi"))
                    if f.startswith("spectra-") and f.endswith(".parquet"))
    stars = count_rows(shards)
    stage("infer", a.shards)
    stage("catalog", 1)
    stage("catalog-stars", 1)
    import duckdb
    star_rows = duckdb.sql(f"SELECT count(*) FROM '{work}/catalog-stars/dataset/**/*.parquet'").fetchall()[0][0]
    spectrum_rows = duckdb.sql(f"SELECT count(*) FROM '{work}/catalog/dataset/**/*.parquet'").fetchall()[0][0]

    summary = {
        "cores": ncpu,
        "coadds": len(coadds),
        "coadd_gib": coadd_bytes / 2**30,
        "fibermap_rows": None,
        "stars_ingested": stars,
        "catalog_rows": spectrum_rows,
        "per_star_rows": star_rows,
        "page_cache_dropped_before_ingest": dropped,
        "stages": results,
    }
    print(f"\n{len(coadds)} coadds ({coadd_bytes / 2**30:.1f} GiB), {stars} stars ingested, "
          f"{spectrum_rows} catalogue rows, {star_rows} per-star rows; {ncpu} cores")
    print("| stage | tasks | wall s | CPU s | stars/CPU-s | peak RSS MiB | read GiB (from disk) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        rate = stars / r["cpu_s"] if r["cpu_s"] > 0 and name != "mock-desi" else float("nan")
        print(f"| {name} | {r['tasks']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {rate:,.0f} | "
              f"{r['peak_rss_mib']:.0f} | {r['rchar'] / 2**30:.2f} ({r['read_bytes'] / 2**30:.2f}) |")
    out = os.path.join(a.work, "rehearsal.json")
    json.dump(summary, open(out, "w"), indent=1)
    print(f"\nJSON: {out}")
    if not a.keep:
        shutil.rmtree(os.path.join(work, "mock/desi"), ignore_errors=True)


if __name__ == "__main__":
    main()
