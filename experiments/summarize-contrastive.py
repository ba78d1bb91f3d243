#!/usr/bin/env python3
"""Markdown tables of experiments/README.md from experiments/contrastive-experiment.sh: zero-shot robust σ
[68 % bootstrap interval] of the pixel head and of the embedding heads on the masked-token and the
masked + contrastive encoders, per parameter and [Fe/H] regime, and the embedding/pixel ratios.

Among the contrastive encoders that ran (every kind named clip*), the one with the lowest
validation score is chosen: the mean over Teff, log g and [Fe/H] of the embedding/pixel
robust σ ratio for [Fe/H] ≥ −1 on the validation stars (OUT/validation-*; never the test stars).

Usage: experiments/summarize-contrastive.py OUT   (reads OUT/evaluation-KIND/evaluation.parquet,
OUT/validation-KIND/evaluation.parquet and OUT/encoder-KIND/encoder-card.json for every KIND that
ran). Needs pyarrow.
"""
import json, sys

import pyarrow.parquet as pq

PARAMS = [("teff", "Teff (K)", "{:.0f}"), ("logg", "log g", "{:.3f}"), ("feh", "[Fe/H]", "{:.3f}")]
REGIMES = [("metal-rich", "[Fe/H] ≥ −1"), ("metal-poor", "[Fe/H] < −1")]
HYBRIDS = ("ivar", "regime", "ivar-regime")
LABEL = {"masked": "masked", "clip": "masked + contrastive", "clip-w3": "masked + 3× contrastive",
         "clip-only": "contrastive only", "clip-medium": "masked + contrastive, medium",
         "clip-medium-wide": "masked + contrastive, medium, wide pair batches",
         "clip-medium-wide-long": "masked + contrastive, medium, wide pair batches, longer",
         "masked-long": "masked, longer"}
KINDS = tuple(LABEL)  # the encoder kinds contrastive-experiment.sh knows, in table order


def validation(out, kinds):
    """Per encoder: {(parameter, regime): embedding/pixel robust σ ratio} on the validation stars,
    and its score (mean metal-rich ratio); None where the validation has not run."""
    import os
    path = f"{out}/validation-pixels/evaluation.parquet"
    if not os.path.exists(path):
        return {}
    pix = {(r["parameter"], r["regime"]): r for r in pq.read_table(path).to_pylist() if r["strategy"] == "zeroshot"}
    result = {}
    for k in kinds:
        path = f"{out}/validation-{k}/evaluation.parquet"
        if not os.path.exists(path):
            continue
        emb = {(r["parameter"], r["regime"]): r for r in pq.read_table(path).to_pylist() if r["strategy"] == "zeroshot"}
        ratios = {key: emb[key]["robust_sigma"] / pix[key]["robust_sigma"] for key in emb if key in pix}
        score = sum(ratios[(p, "metal-rich")] for p, _, _ in PARAMS) / len(PARAMS)
        result[k] = (ratios, score, pix[("teff", "metal-rich")]["n"] + pix[("teff", "metal-poor")]["n"])
    return result


def rows(path):
    t = pq.read_table(path).to_pylist()
    return {(r["input"], r["strategy"], r["parameter"], r["regime"]): r for r in t}


def main(out):
    import os
    kinds = [k for k in KINDS if os.path.exists(f"{out}/evaluation-{k}/evaluation.parquet")]
    ev = {k: rows(f"{out}/evaluation-{k}/evaluation.parquet") for k in kinds}
    cards = {k: json.load(open(f"{out}/encoder-{k}/encoder-card.json")) for k in kinds}
    for k, c in cards.items():
        o = c.get("objective") or {}
        best = c["best_epoch"] - 1
        top1 = (o.get("val_retrieval_top1") or [None] * (best + 1))[best]
        print(f"- encoder `{k}`: {c['n_train']} spectra, {c['epochs_run']} epochs (best {c['best_epoch']}), "
              f"{o.get('n_train_pairs', 0)} + {o.get('n_val_pairs', 0)} pairs"
              + (f", temperature {o['temperature']:.3f}, validation top-1 retrieval {100 * top1:.1f} %" if top1 is not None else ""))
    # Every evaluation scores the same pixel head on the same test stars.
    px = ev[kinds[0]]
    n = {r: px[("pixels", "zeroshot", "teff", r)]["n"] for r, _ in REGIMES}
    label = LABEL
    val = validation(out, kinds)
    if val:
        n_val = next(iter(val.values()))[2]
        print(f"\nValidation ({n_val} DESI stars the LAMOST mock does not have, none of them test stars): "
              "embedding/pixel robust σ ratio, zero-shot; score = mean of the [Fe/H] ≥ −1 ratios:\n")
        print("| encoder | " + " | ".join(f"{name} {r}" for _, name, _ in PARAMS for r in ("≥ −1", "< −1")) + " | score |")
        print("|---|" + "---:|" * (2 * len(PARAMS) + 1))
        for k, (ratios, score, _) in val.items():
            cells = [f"{ratios[(p, r)]:.2f}×" for p, _, _ in PARAMS for r, _ in REGIMES]
            print(f"| {label[k]} | " + " | ".join(cells) + f" | {score:.3f} |")
        contrastive = [k for k in val if k.startswith("clip")]
        if contrastive:
            chosen = min(contrastive, key=lambda k: val[k][1])
            print(f"\nChosen by validation: **{label[chosen]}** (`{chosen}`).")
    print(f"\nZero-shot on {sum(n.values())} DESI test stars the LAMOST mock does not have "
          f"({n['metal-rich']} with [Fe/H] ≥ −1, {n['metal-poor']} below); robust σ [68 % interval]:\n")
    print("| parameter | regime | pixels | " + " | ".join(f"embeddings ({label[k]}) | ratio" for k in kinds) + " |")
    print("|---|---|---|" + "---|---:|" * len(kinds))
    for p, name, fmt in PARAMS:
        for r, rlabel in REGIMES:
            def cell(row):
                return f"{fmt.format(row['robust_sigma'])} [{fmt.format(row['robust_sigma_lo'])}–{fmt.format(row['robust_sigma_hi'])}]"
            pix = px[("pixels", "zeroshot", p, r)]
            cells = [cell(pix)]
            for k in kinds:
                e = ev[k][("embeddings", "zeroshot", p, r)]
                cells += [cell(e), f"{e['robust_sigma'] / pix['robust_sigma']:.2f}×"]
            print(f"| {name} | {rlabel} | " + " | ".join(cells) + " |")
    print("\nHybrids of the pixel head and each embedding head (ratio to pixels):\n")
    hk = [k for k in kinds if k != "masked-long"]
    print("| parameter | regime | " + " | ".join(f"hybrid-{h} ({label[k]})" for k in hk for h in HYBRIDS) + " |")
    print("|---|---|" + "---:|" * (len(HYBRIDS) * len(hk)))
    for p, name, fmt in PARAMS:
        for r, rlabel in REGIMES:
            pix = px[("pixels", "zeroshot", p, r)]["robust_sigma"]
            cells = []
            for k in hk:
                for h in HYBRIDS:
                    row = ev[k].get((f"hybrid-{h}", "zeroshot", p, r))
                    cells.append("–" if row is None else f"{row['robust_sigma'] / pix:.2f}×")
            print(f"| {name} | {rlabel} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
