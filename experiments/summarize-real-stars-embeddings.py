"""Tables of the embedding arm of the real-star validation (experiments/real-stars-embeddings.sh OUT).

Per fold, `starpipe evaluate` scored the pixel head, the embedding head and the hybrids on one half of
the fold's held-out MILES stars with the error models fitted on the other half
(fold-K/eval-emb-{lamost,desi}-{A,B}/evaluation-predictions.parquet). This pools halves and folds,
keeps the stars inside the training domain (Teff 3800-8000 K, log g 0.5-5.2, [Fe/H] -2.5-+0.5) in the
4000-7000 K core, and splits them by literature [Fe/H] at -1 (the paper's regimes). Intervals are
68 % bootstrap intervals over *stars* (a star's renders are resampled together), and each ratio to the
pixel head is bootstrapped paired, on the same resampled stars. Flags come from each head's catalogue.

Usage: python experiments/summarize-real-stars-embeddings.py OUT     (needs numpy, pyarrow)
"""
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

PARAMS = [("teff", "Teff (K)", "{:.0f}"), ("logg", "log g", "{:.3f}"), ("feh", "[Fe/H]", "{:.3f}")]
HEADS = ("pixels", "embeddings", "hybrid-ivar", "hybrid-regime", "hybrid-ivar-regime")
FORMATS = {"LAMOST": ("lamost", "miles-lamost", "obsid", "library_id"),
           "DESI": ("desi", "miles-desi", "TARGETID", "LIBRARY_ID")}
REGIMES = (("[Fe/H] ≥ −1", lambda z: z >= -1), ("[Fe/H] < −1", lambda z: z < -1))
N_BOOT = 1000


def robust_sigma(x):
    return 1.4826 * np.median(np.abs(x - np.median(x))) if len(x) else np.nan


def inside_core(t, g, z):
    return (t >= 4000) & (t <= 7000) & (g >= 0.5) & (g <= 5.2) & (z >= -2.5) & (z <= 0.5)


def read_predictions(path, star_of):
    """{head: dict of arrays} of one evaluation's zero-shot rows, with each row's library star."""
    t = pq.read_table(path).to_pydict()
    heads = {}
    for h in HEADS:
        idx = [i for i, (inp, s) in enumerate(zip(t["input"], t["strategy"])) if inp == h and s == "zeroshot"]
        if not idx:
            continue
        d = {c: np.array([t[c][i] for i in idx], dtype=float) for c in
             ("snr", "teff", "teff_err", "teff_ref", "logg", "logg_err", "logg_ref", "feh", "feh_err", "feh_ref")}
        d["spectrum_id"] = np.array([t["spectrum_id"][i] for i in idx])
        d["star"] = np.array([star_of[int(t["source_id"][i])] for i in idx])
        heads[h] = d
    return heads


def aligned(heads):
    """Every head restricted to the spectra all heads scored, in one order."""
    common = set.intersection(*(set(d["spectrum_id"]) for d in heads.values()))
    out = {}
    for h, d in heads.items():
        order = np.argsort(d["spectrum_id"])
        keep = order[np.isin(d["spectrum_id"][order], list(common))]
        out[h] = {c: v[keep] for c, v in d.items()}
    return out


def by_star_bootstrap(stars, rng):
    """N_BOOT index arrays, each a resample of whole stars."""
    uniq, inv = np.unique(stars, return_inverse=True)
    rows_of = [np.flatnonzero(inv == i) for i in range(len(uniq))]
    for _ in range(N_BOOT):
        pick = rng.integers(0, len(uniq), len(uniq))
        yield np.concatenate([rows_of[i] for i in pick])


def cell(heads, p, mask, rng):
    """Robust σ of each head [68 % interval], and each head's ratio to pixels [68 %, paired]."""
    delta = {h: (d[p] - d[p + "_ref"])[mask] for h, d in heads.items()}
    stars = heads["pixels"]["star"][mask]
    point = {h: robust_sigma(x) for h, x in delta.items()}
    boot = {h: [] for h in delta}
    for idx in by_star_bootstrap(stars, rng):
        for h, x in delta.items():
            boot[h].append(robust_sigma(x[idx]))
    lo_hi = {h: np.percentile(v, [16, 84]) for h, v in boot.items()}
    ratio = {h: (point[h] / point["pixels"], np.percentile(np.array(boot[h]) / np.array(boot["pixels"]), [16, 84]))
             for h in delta}
    return point, lo_hi, ratio


def flagged(catalog, labels, key, lib, held):
    """Fraction of the catalogue's non-fatal rows inside the training domain with a domain flag."""
    meta = json.loads(pq.read_schema(catalog).metadata[b"starpipe"])
    bits = meta["flag_bits"]
    domain = sum(1 << bits[n]["bit"] for n in ("OOD", "LABEL_EDGE", "LARGE_ERR"))
    cat = pq.read_table(catalog, columns=["source_id", "quality_flags"]).to_pydict()
    lab = pq.read_table(labels).to_pydict()
    cols = [c for c in lab if c.lower() in ("teff_true", "logg_true", "feh_true")]
    truth = {k: (lib_id, *(lab[c][i] for c in cols))
             for i, (k, lib_id) in enumerate(zip(lab[key], lab[lib]))}
    n = hit = 0
    for s, q in zip(cat["source_id"], cat["quality_flags"]):
        lib_id, t, g, z = truth[s]
        if lib_id not in held or q & meta["fatal_mask"]:
            continue
        if not ((3800 <= t <= 8000) and (0.5 <= g <= 5.2) and (-2.5 <= z <= 0.5)):
            continue
        n += 1
        hit += bool(q & domain)
    return hit, n


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/validate-real")
    folds = sorted(p for p in out.glob("fold-*")
                   if all((p / f"eval-emb-{s}-{h}" / "evaluation-predictions.parquet").exists()
                          for s in ("lamost", "desi") for h in "AB"))
    if not folds:
        sys.exit(f"no fold with the embedding arm finished in {out}")
    rng = np.random.default_rng(33)
    print(f"# Real stars: pixels, embeddings and hybrids ({len(folds)} fold(s): {', '.join(f.name for f in folds)})\n")
    for f in folds:
        card = json.loads((f / "encoder" / "encoder-card.json").read_text())
        print(f"- {f.name} encoder: {card['n_parameters']:,} weights, {card['n_train']:,} training spectra, "
              f"{card['epochs_run']} epochs (best {card['best_epoch']}), validation loss "
              + " → ".join(f"{v:.2f}" for v in card["val_loss"]))
    for fmt, (short, target, key, lib) in FORMATS.items():
        lab = pq.read_table(out / f"{target}-files" / "labels.parquet", columns=[key, lib]).to_pydict()
        star_of = {int(k): int(v) for k, v in zip(lab[key], lab[lib])}
        parts = []
        for f in folds:
            for h in "AB":
                parts.append(aligned(read_predictions(f / f"eval-emb-{short}-{h}" / "evaluation-predictions.parquet",
                                                      star_of)))
        heads = {h: {c: np.concatenate([p[h][c] for p in parts]) for c in parts[0][h]} for h in parts[0]}
        px = heads["pixels"]
        core = inside_core(px["teff_ref"], px["logg_ref"], px["feh_ref"])
        print(f"\n## {fmt} format ({'DESI renders, each head with DESI’s own calibration' if fmt == 'DESI' else 'LAMOST renders'})\n")
        for snr_name, snr_mask in (("S/N 4–150", px["snr"] >= 0), ("S/N ≥ 20", px["snr"] >= 20)):
            print(f"\n### {snr_name}: robust σ of predicted − literature [68 %], ratio to pixels [68 %, paired]\n")
            print("| parameter | regime | N spectra (stars) | pixels | embeddings | × | hybrid-ivar | × | "
                  "hybrid-ivar-regime | × | within 1σ: pixels / embeddings / hybrid-ivar-regime |")
            print("|---|---|---|---|---|---:|---|---:|---|---:|---|")
            for p, name, f_ in PARAMS:
                for regime, of in REGIMES:
                    mask = core & snr_mask & of(px["feh_ref"])
                    n_stars = len(np.unique(px["star"][mask]))
                    if n_stars < 5:
                        continue
                    point, lo_hi, ratio = cell(heads, p, mask, rng)
                    fmt_s = lambda h: f"{f_.format(point[h])} [{f_.format(lo_hi[h][0])}–{f_.format(lo_hi[h][1])}]"
                    fmt_r = lambda h: f"{ratio[h][0]:.2f} [{ratio[h][1][0]:.2f}–{ratio[h][1][1]:.2f}]"
                    cov = [np.mean(np.abs(heads[h][p] - heads[h][p + "_ref"])[mask] < heads[h][p + "_err"][mask])
                           for h in ("pixels", "embeddings", "hybrid-ivar-regime")]
                    print(f"| {name} | {regime} | {int(mask.sum())} ({n_stars}) | {fmt_s('pixels')} | "
                          f"{fmt_s('embeddings')} | {fmt_r('embeddings')} | {fmt_s('hybrid-ivar')} | "
                          f"{fmt_r('hybrid-ivar')} | {fmt_s('hybrid-ivar-regime')} | {fmt_r('hybrid-ivar-regime')} | "
                          + " / ".join(f"{c:.2f}" for c in cov) + " |")
        print(f"\nDomain flags (OOD, LABEL_EDGE, LARGE_ERR) on held-out stars inside the training domain, {fmt}:")
        pixel_cat = "catalog-miles-lamost-cal-{}.parquet" if fmt == "LAMOST" else "catalog-miles-desi-desi-cal-{}.parquet"
        emb_cat = f"catalog-emb-{target}-cal-{{}}.parquet"
        for head, pattern in (("pixels", pixel_cat), ("embeddings", emb_cat)):
            hit = n = 0
            for f in folds:
                halves = {h: {int(x) for x in (f / f"half-{h}-ids.txt").read_text().split()} for h in "AB"}
                for h, other in (("A", "B"), ("B", "A")):
                    a, b = flagged(f / pattern.format(other), out / f"{target}-files" / "labels.parquet", key, lib,
                                   halves[h])
                    hit, n = hit + a, n + b
            print(f"- {head}: {hit} of {n} ({hit / max(n, 1):.2f})")


if __name__ == "__main__":
    main()
