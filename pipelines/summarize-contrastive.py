#!/usr/bin/env python3
"""Markdown tables of pipelines/README.md from pipelines/contrastive-experiment.sh: zero-shot robust σ
[68 % bootstrap interval] of the pixel head and of the embedding heads on the masked-token and the
masked + contrastive encoders, per parameter and [Fe/H] regime, and the embedding/pixel ratios.

Usage: pipelines/summarize-contrastive.py OUT   (reads OUT/evaluation-{masked,clip}/evaluation.parquet
and OUT/encoder-{masked,clip}/encoder-card.json). Needs pyarrow.
"""
import json, sys

import pyarrow.parquet as pq

PARAMS = [("teff", "Teff (K)", "{:.0f}"), ("logg", "log g", "{:.3f}"), ("feh", "[Fe/H]", "{:.3f}")]
REGIMES = [("metal-rich", "[Fe/H] ≥ −1"), ("metal-poor", "[Fe/H] < −1")]


def rows(path):
    t = pq.read_table(path).to_pylist()
    return {(r["input"], r["strategy"], r["parameter"], r["regime"]): r for r in t}


def main(out):
    import os
    kinds = [k for k in ("masked", "clip", "masked-long") if os.path.exists(f"{out}/evaluation-{k}/evaluation.parquet")]
    ev = {k: rows(f"{out}/evaluation-{k}/evaluation.parquet") for k in kinds}
    cards = {k: json.load(open(f"{out}/encoder-{k}/encoder-card.json")) for k in kinds}
    for k, c in cards.items():
        o = c.get("objective") or {}
        best = c["best_epoch"] - 1
        top1 = (o.get("val_retrieval_top1") or [None] * (best + 1))[best]
        print(f"- encoder `{k}`: {c['n_train']} spectra, {c['epochs_run']} epochs (best {c['best_epoch']}), "
              f"{o.get('n_train_pairs', 0)} + {o.get('n_val_pairs', 0)} pairs"
              + (f", temperature {o['temperature']:.3f}, validation top-1 retrieval {100 * top1:.1f} %" if top1 is not None else ""))
    px = ev["masked"]
    n = {r: px[("pixels", "zeroshot", "teff", r)]["n"] for r, _ in REGIMES}
    print(f"\nZero-shot on {sum(n.values())} DESI test stars the LAMOST mock does not have "
          f"({n['metal-rich']} with [Fe/H] ≥ −1, {n['metal-poor']} below); robust σ [68 % interval]:\n")
    label = {"masked": "masked", "clip": "masked + contrastive", "masked-long": "masked, longer"}
    print("| parameter | regime | pixels | " + " | ".join(f"embeddings ({label[k]}) | ratio" for k in kinds) + " |")
    print("|---|---|---|" + "---|---:|" * len(kinds))
    for p, name, fmt in PARAMS:
        for r, label in REGIMES:
            def cell(row):
                return f"{fmt.format(row['robust_sigma'])} [{fmt.format(row['robust_sigma_lo'])}–{fmt.format(row['robust_sigma_hi'])}]"
            pix = px[("pixels", "zeroshot", p, r)]
            cells = [cell(pix)]
            for k in kinds:
                e = ev[k][("embeddings", "zeroshot", p, r)]
                cells += [cell(e), f"{e['robust_sigma'] / pix['robust_sigma']:.2f}×"]
            print(f"| {name} | {label} | " + " | ".join(cells) + " |")
    print("\nHybrids of the pixel head and each embedding head (ratio to pixels):\n")
    print("| parameter | regime | hybrid-ivar (masked) | hybrid-regime (masked) | hybrid-ivar (contrastive) | hybrid-regime (contrastive) |")
    print("|---|---|---:|---:|---:|---:|")
    for p, name, fmt in PARAMS:
        for r, label in REGIMES:
            pix = px[("pixels", "zeroshot", p, r)]["robust_sigma"]
            cells = []
            for k in ("masked", "clip"):
                for h in ("hybrid-ivar", "hybrid-regime"):
                    row = ev[k].get((h, "zeroshot", p, r))
                    cells.append("–" if row is None else f"{row['robust_sigma'] / pix:.2f}×")
            print(f"| {name} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
