#!/usr/bin/env python3
"""How `hybrid-ivar-regime`'s gate was chosen (src/validate/evaluate.rs, GATE_SIGMA): on the validation
stars of experiments/contrastive-experiment.sh runs (DESI stars the LAMOST mock does not have and that
are not test stars), the robust σ of the inverse-variance hybrid of the pixel and embedding heads,
as a ratio to the pixel head's, when pixels alone are used wherever the pixel head's
[Fe/H] − k·σ < −1, for k = none (plain `hybrid-ivar`), 0, 1, 2, 3. Columns: Teff, log g, [Fe/H],
each for [Fe/H] ≥ −1 and < −1 (by the reference label); mean over the six.

Usage: experiments/hybrid-gate-validation.py KIND OUT [OUT ...]
  KIND  the encoder whose embedding head is combined (e.g. clip-medium)
  OUT   experiment folders holding validation-pixels/ and validation-KIND/ (evaluation-predictions.parquet)
Needs numpy and pyarrow.
"""
import sys

import numpy as np
import pyarrow.parquet as pq

PARAMS = ("teff", "logg", "feh")
GATES = (None, 0, 1, 2, 3)


def zeroshot(path):
    t = pq.read_table(path).to_pandas()
    return t[t.strategy == "zeroshot"].set_index("spectrum_id")


def robust_sigma(d):
    return 1.4826 * np.median(np.abs(d - np.median(d)))


def main(kind, outs):
    print("| run | gate k | Teff ≥ −1 | Teff < −1 | log g ≥ −1 | log g < −1 | [Fe/H] ≥ −1 | [Fe/H] < −1 | mean |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for out in outs:
        px = zeroshot(f"{out}/validation-pixels/evaluation-predictions.parquet")
        em = zeroshot(f"{out}/validation-{kind}/evaluation-predictions.parquet")
        ids = px.index.intersection(em.index)
        px, em = px.loc[ids], em.loc[ids]
        rich = px.feh_ref.values >= -1
        for k in GATES:
            ratios = []
            for p in PARAMS:
                a, sa = px[p].values, px[p + "_err"].values
                b, sb = em[p].values, em[p + "_err"].values
                wa, wb = sa**-2, sb**-2
                hybrid = (wa * a + wb * b) / (wa + wb)
                if k is not None:
                    hybrid = np.where(px.feh.values - k * px.feh_err.values < -1, a, hybrid)
                ref = px[p + "_ref"].values
                for m in (rich, ~rich):
                    ratios.append(robust_sigma(hybrid[m] - ref[m]) / robust_sigma(a[m] - ref[m]))
            name = "none (hybrid-ivar)" if k is None else str(k)
            print(f"| {out} | {name} | " + " | ".join(f"{r:.3f}" for r in ratios) + f" | {np.mean(ratios):.3f} |")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
