#!/usr/bin/env python3
"""Markdown tables of experiments/README.md from a transfer-experiment evaluation.

Usage: experiments/summarize-transfer.py OUT/evaluation/evaluation.parquet
Needs duckdb (scripts/requirements-test.txt).
"""
import sys

import duckdb

PARAMS = [("teff", "{:.0f}"), ("logg", "{:.3f}"), ("feh", "{:.3f}")]
STRATEGIES = ["zeroshot"] + [f"{s} (n={n})" for n in (50, 200, 1000, 3000) for s in ("full", "lora", "reshead")]
COMPARED = ["zeroshot", "full (n=1000)", "lora (n=1000)", "reshead (n=1000)", "full (n=3000)", "reshead (n=3000)"]


def main(path: str) -> None:
    rows = duckdb.sql(
        f"SELECT input, strategy, parameter, regime, n, bias, robust_sigma, robust_sigma_lo, robust_sigma_hi, "
        f"within_1sigma FROM '{path}'"
    ).fetchall()
    m = {(r[0], r[1], r[2], r[3]): r[4:] for r in rows}
    n_rich = m[("pixels", "zeroshot", "teff", "metal-rich")][0]
    n_poor = m[("pixels", "zeroshot", "teff", "metal-poor")][0]
    print(f"test stars: {n_rich + n_poor} ({n_rich} with [Fe/H] >= -1, {n_poor} below)\n")

    def cell(inp, strat, param, regime, fmt):
        v = m.get((inp, strat, param, regime))
        if v is None:
            return "–"
        _, _, rs, lo, hi, _ = v
        return f"{fmt.format(rs)} [{fmt.format(lo)}–{fmt.format(hi)}]"

    print("| strategy | Teff, [Fe/H] ≥ −1 (K) | Teff, [Fe/H] < −1 (K) | log g, ≥ −1 | log g, < −1 | [Fe/H], ≥ −1 | [Fe/H], < −1 |")
    print("|---|---|---|---|---|---|---|")
    for s in STRATEGIES:
        cells = [cell("pixels", s, p, r, f) for p, f in PARAMS for r in ("metal-rich", "metal-poor")]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print()
    print("| strategy | bias Teff (K) | bias log g | bias [Fe/H] | \\|Δ\\|<σ Teff | \\|Δ\\|<σ log g | \\|Δ\\|<σ [Fe/H] |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in STRATEGIES:
        v = [m[("pixels", s, p, "all")] for p, _ in PARAMS]
        biases = [f"{v[0][1]:.0f}", f"{v[1][1]:.3f}", f"{v[2][1]:.3f}"]
        within = [f"{x[5]:.2f}" for x in v]
        print(f"| {s} | " + " | ".join(biases + within) + " |")
    for p, f, title in [("feh", "{:.3f}", "[Fe/H] (dex)"), ("teff", "{:.0f}", "Teff (K)"), ("logg", "{:.3f}", "log g (dex)")]:
        print(f"\n{title}, robust σ [68 % interval]:\n")
        print("| strategy | regime | pixels | embeddings | hybrid-ivar | hybrid-regime | hybrid-ivar-regime |")
        print("|---|---|---|---|---|---|---|")
        for s in COMPARED:
            for r, label in (("metal-rich", "≥ −1"), ("metal-poor", "< −1")):
                cells = [cell(i, s, p, r, f) for i in ("pixels", "embeddings", "hybrid-ivar", "hybrid-regime", "hybrid-ivar-regime")]
                print(f"| {s} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
