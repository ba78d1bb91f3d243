"""Tables of the real-star validation (experiments/real-stars.sh OUT) as Markdown.

Each fold's model is scored only on the MILES stars its emulator never saw (fold-K/emulator/
held_out_ids.txt), so pooling the folds scores every labelled MILES star exactly once. Inside the
training domain = the labels the mock draws from (Teff 3800-8000 K, log g 0.5-5.2, [Fe/H] -2.5-+0.5);
the accuracy rows use the 4000-7000 K core, as the survey goals do. "Flagged" counts the domain
flags (OOD, LABEL_EDGE, LARGE_ERR; their bits are read from each catalogue's `starpipe` metadata) and,
separately, any flag.

Usage: python experiments/summarize-real-stars.py OUT      (needs numpy, pyarrow)
"""
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

PARAMS = [("teff", "Teff (K)", "{:.0f}"), ("logg", "log g", "{:.3f}"), ("feh", "[Fe/H]", "{:.3f}")]
import json

DOMAIN_FLAGS = ("OOD", "LABEL_EDGE", "LARGE_ERR")


def flag_masks(catalog_path):
    """(fatal mask, domain-flag mask) as the catalogue's own metadata defines them."""
    meta = json.loads(pq.read_schema(catalog_path).metadata[b"starpipe"])
    bits = meta["flag_bits"]
    return meta["fatal_mask"], sum(1 << bits[name]["bit"] for name in DOMAIN_FLAGS)


def robust_sigma(x):
    x = x[np.isfinite(x)]
    return 1.4826 * np.median(np.abs(x - np.median(x))) if len(x) else np.nan


def read(path, columns=None):
    return pq.read_table(path, columns=columns).to_pydict()


def catalogue_rows(catalog_path, labels_path, key, lib_key, truth):
    """Catalogue rows joined to their labels: dict of numpy arrays."""
    cat = read(catalog_path)
    lab = read(labels_path)
    index = {k: i for i, k in enumerate(lab[key])}
    rows = [index.get(s) for s in cat["source_id"]]
    keep = np.array([r is not None for r in rows])
    rows = [r for r in rows if r is not None]
    out = {c: np.array(cat[c], dtype=float)[keep] for c in
           ("teff", "teff_err", "logg", "logg_err", "feh", "feh_err", "snr", "quality_flags", "ood_score")}
    fatal, domain = flag_masks(catalog_path)
    out["fatal_mask"] = np.full(keep.sum(), fatal, dtype=np.int64)
    out["domain_mask"] = np.full(keep.sum(), domain, dtype=np.int64)
    out["source_id"] = np.array(cat["source_id"])[keep]
    out["success"] = np.array(cat["success"], dtype=bool)[keep]
    for p, col in zip(("teff", "logg", "feh"), truth):
        out[p + "_ref"] = np.array([lab[col][r] for r in rows], dtype=float)
    if lib_key:
        out["library_id"] = np.array([lab[lib_key][r] for r in rows])
    return out


def ids_in(path):
    return {int(line) for line in path.read_text().split("\n") if line.strip() and not line.startswith("#")}


def subset(d, mask):
    return {k: v[mask] for k, v in d.items()}


def concat(parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def inside_domain(d):
    t, g, z = d["teff_ref"], d["logg_ref"], d["feh_ref"]
    return (t >= 3800) & (t <= 8000) & (g >= 0.5) & (g <= 5.2) & (z >= -2.5) & (z <= 0.5)


def core(d):
    return inside_domain(d) & (d["teff_ref"] >= 4000) & (d["teff_ref"] <= 7000)


def accuracy_row(name, d):
    ok = d["success"]
    cells = [name, str(int(ok.sum()))]
    for p, _, fmt in PARAMS:
        delta = (d[p] - d[p + "_ref"])[ok]
        cells.append(f"{fmt.format(robust_sigma(delta))} / {fmt.format(np.median(delta))}" if len(delta) else "-")
    for p, _, _ in PARAMS:
        z = np.abs(d[p] - d[p + "_ref"])[ok] / d[p + "_err"][ok]
        cells.append(f"{np.mean(z < 1):.2f} / {np.mean(z < 2):.2f}" if len(z) else "-")
    return "| " + " | ".join(cells) + " |"


def accuracy_rows(pooled):
    """The core, its metal-poor part and the whole training domain, per survey format."""
    for s, parts in pooled.items():
        if not parts:
            continue
        d = concat(parts)
        print(accuracy_row(f"{s}, 4000–7000 K", subset(d, core(d))))
        print(accuracy_row(f"{s}, 4000–7000 K, [Fe/H] < −1", subset(d, core(d) & (d["feh_ref"] < -1))))
        print(accuracy_row(f"{s}, inside training domain", subset(d, inside_domain(d))))


SNR_BINS = ((4, 10), (10, 20), (20, 50), (50, 150))


def snr_coverage_rows(sets):
    """Per S/N bin, inside the training domain, per survey format: coverage at 1σ, robust σ of
    Δ in the 4000–7000 K core, and the fraction of non-fatal rows with a domain flag."""
    for s, parts in sets.items():
        if not parts:
            continue
        d = concat(parts)
        d = subset(d, inside_domain(d) & d["success"])
        for lo, hi in SNR_BINS:
            b = subset(d, (d["snr"] >= lo) & (d["snr"] < hi))
            cells = [f"{s}, S/N {lo}–{hi}", str(len(b["snr"]))]
            for p, _, _ in PARAMS:
                z = np.abs(b[p] - b[p + "_ref"]) / b[p + "_err"]
                cells.append(f"{np.mean(z < 1):.2f}" if len(z) else "-")
            c = subset(b, core(b))
            for p, _, fmt in PARAMS:
                cells.append(fmt.format(robust_sigma(c[p] - c[p + "_ref"])) if len(c[p]) else "-")
            flags = b["quality_flags"].astype(np.int64)
            cells.append(f"{np.mean((flags & b['domain_mask']) != 0):.2f}" if len(flags) else "-")
            print("| " + " | ".join(cells) + " |")


def flag_row(name, d):
    flags = d["quality_flags"].astype(np.int64)
    live = (flags & d["fatal_mask"]) == 0
    domain = (flags & d["domain_mask"]) != 0
    anyflag = flags != 0
    n = int(live.sum())
    if n == 0:
        return f"| {name} | 0 | - | - |"
    return f"| {name} | {n} | {np.mean(domain[live]):.2f} | {np.mean(anyflag[live]):.2f} |"


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/validate-real")
    folds = sorted(p for p in out.glob("fold-*") if (p / "catalog-miles-lamost.parquet").exists())
    if not folds:
        sys.exit(f"no finished fold in {out}")
    surveys = {
        "LAMOST": ("miles-lamost", "obsid", "library_id", ("teff_true", "logg_true", "feh_true")),
        "DESI": ("miles-desi", "TARGETID", "LIBRARY_ID", ("TEFF_TRUE", "LOGG_TRUE", "FEH_TRUE")),
    }
    pooled = {s: [] for s in surveys}
    calibrated = {s: [] for s in [*surveys, "DESI (own calibration)"]}
    dr10, dr10_cal = [], []
    import pyarrow.csv as pacsv
    dr10_labels = out / "dr10-labels.parquet"
    pq.write_table(pacsv.read_csv("tests/data/lamost_dr10_pylasp/lamost_dr10_pylasp_labels.csv"), dr10_labels)
    for f in folds:
        held = ids_in(f / "emulator" / "held_out_ids.txt")
        halves = {h: ids_in(f / f"half-{h}-ids.txt") for h in "AB" if (f / f"half-{h}-ids.txt").exists()}
        for s, (target, key, lib, truth) in surveys.items():
            rows = lambda tag: catalogue_rows(f / f"catalog-{target}{tag}.parquet",
                                              out / f"{target}-files" / "labels.parquet", key, lib, truth)
            if (f / f"catalog-{target}.parquet").exists():
                d = rows("")
                pooled[s].append(subset(d, np.isin(d["library_id"], list(held))))
            # Each half scored with the error model fitted on the other half.
            if len(halves) == 2 and all((f / f"catalog-{target}-cal-{h}.parquet").exists() for h in "AB"):
                for h, other in (("A", "B"), ("B", "A")):
                    d = rows(f"-cal-{other}")
                    calibrated[s].append(subset(d, np.isin(d["library_id"], list(halves[h]))))
            # DESI's own calibration (the zero-shot adapter calibrated on DESI renders).
            if s == "DESI" and len(halves) == 2 and all(
                    (f / f"catalog-{target}-adapter-cal-{h}.parquet").exists() for h in "AB"):
                for h, other in (("A", "B"), ("B", "A")):
                    d = rows(f"-adapter-cal-{other}")
                    calibrated["DESI (own calibration)"].append(subset(d, np.isin(d["library_id"], list(halves[h]))))
        dr10_truth = ("curvefit_teff", "curvefit_logg", "curvefit_feh")
        if (f / "catalog-dr10.parquet").exists():
            dr10.append(catalogue_rows(f / "catalog-dr10.parquet", dr10_labels, "obsid", None, dr10_truth))
        if (f / "catalog-dr10-cal-A.parquet").exists():
            dr10_cal.append(catalogue_rows(f / "catalog-dr10-cal-A.parquet", dr10_labels, "obsid", None, dr10_truth))

    print(f"# Real-star validation ({len(folds)} fold(s): {', '.join(f.name for f in folds)})\n")
    print("Each fold's model scored on the MILES stars its emulator never saw; rows pooled over folds.")
    print("Accuracy: robust σ / median bias of predicted − literature; coverage: fraction with |Δ| < σ / < 2σ.\n")
    header = ("| subset | N | Teff (K) | log g | [Fe/H] | cov Teff | cov log g | cov [Fe/H] |\n"
              "|---|---:|---|---|---|---|---|---|")
    print(header)
    accuracy_rows(pooled)
    for i, d in enumerate(dr10):
        print(accuracy_row(f"LAMOST DR10 (25 real), fold {folds[i].name.split('-')[1]} model", d))

    if any(calibrated.values()):
        print("\nWith the error model (`starpipe calibrate`, fitted on the LAMOST renders of the other half of the")
        print("fold's held-out stars; DESI uses the same LAMOST-fitted model; 'DESI (own calibration)': the")
        print("zero-shot adapter calibrated on the other half's DESI renders): same columns.\n")
        print(header)
        accuracy_rows(calibrated)
        for i, d in enumerate(dr10_cal):
            print(accuracy_row(f"LAMOST DR10 (25 real), fold {folds[i].name.split('-')[1]} model, error model A", d))
        print("\nPer S/N bin (median S/N per pixel), inside the training domain, each half scored with the")
        print("other half's error model: coverage at 1σ, robust σ of Δ (4000–7000 K core) and the fraction")
        print("with a domain flag (OOD, LABEL_EDGE, LARGE_ERR; thresholds from the other half):\n")
        print("| subset | N | cov Teff | cov log g | cov [Fe/H] | σ Teff (K) | σ log g | σ [Fe/H] | domain flag |")
        print("|---|---:|---|---|---|---|---|---|---|")
        snr_coverage_rows(calibrated)
        print("\nError models fitted (k, floor, snr_term per parameter; snr_term in the parameter's unit × S/N):\n")
        print("| fold | half | k Teff | floor Teff (K) | snr_term Teff | k log g | floor log g | snr_term log g | k [Fe/H] | floor [Fe/H] | snr_term [Fe/H] |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        import json
        for f in folds:
            for h in "AB":
                card = f / f"model-cal-{h}" / "model-card.json"
                if card.exists():
                    em = json.loads(card.read_text())["error_model"]
                    cells = [f.name, h]
                    for p in range(3):
                        term = em.get("snr_term", [0.0, 0.0, 0.0])[p]
                        cells += [f"{em['scale'][p]:.2f}", f"{em['floor'][p]:.3g}", f"{term:.3g}"]
                    print("| " + " | ".join(cells) + " |")

    print("\nFlags: fraction of non-fatal rows with a domain flag (OOD, LABEL_EDGE, LARGE_ERR) / any flag;")
    print("'calibrated' = thresholds from `starpipe calibrate` on the other half (as the recipe runs).\n")
    print("| subset | N | domain flag | any flag |\n|---|---:|---|---|")
    for label, sets in (("", pooled), ("calibrated, ", calibrated)):
        for s, parts in sets.items():
            if not parts:
                continue
            d = concat(parts)
            print(flag_row(f"{s}, {label}inside training domain", subset(d, inside_domain(d))))
            print(flag_row(f"{s}, {label}outside training domain", subset(d, ~inside_domain(d))))
            hot = ~inside_domain(d) & (d["teff_ref"] > 8000)
            cool = ~inside_domain(d) & (d["teff_ref"] < 3800)
            print(flag_row(f"{s}, {label}outside: hotter than 8000 K", subset(d, hot)))
            print(flag_row(f"{s}, {label}outside: cooler than 3800 K", subset(d, cool)))

    if pooled["LAMOST"] and pooled["DESI"]:
        la, de = concat(pooled["LAMOST"]), concat(pooled["DESI"])
        # Pair the k-th render of a star in one survey with its k-th render in the other.
        def keyed(d):
            seen, keys = {}, []
            for lib in d["library_id"]:
                seen[lib] = seen.get(lib, -1) + 1
                keys.append((lib, seen[lib]))
            return {k: i for i, k in enumerate(keys)}
        kl, kd = keyed(la), keyed(de)
        common = [k for k in kl if k in kd]
        il, idd = np.array([kl[k] for k in common]), np.array([kd[k] for k in common])
        both_ok = la["success"][il] & de["success"][idd]
        c = core(subset(la, il))
        print("\nSame star, DESI render − LAMOST render (4000–7000 K core): robust σ / median\n")
        print("| N | Teff (K) | log g | [Fe/H] |\n|---:|---|---|---|")
        sel = both_ok & c
        cells = [str(int(sel.sum()))]
        cross = {}
        for p, _, fmt in PARAMS:
            delta = de[p][idd][sel] - la[p][il][sel]
            cross[p] = robust_sigma(delta)
            cells.append(f"{fmt.format(cross[p])} / {fmt.format(np.median(delta))}")
        print("| " + " | ".join(cells) + " |")

        # Each render carries its own noise (own S/N draw), so even a perfectly survey-independent
        # model gives DESI − LAMOST differences: the repeat pairs within a format measure it.
        def repeat_sigma(d, keys):
            pairs = [(keys[(lib, 0)], keys[(lib, 1)]) for (lib, r) in keys if r == 0 and (lib, 1) in keys]
            a, b = np.array([x for x, _ in pairs]), np.array([y for _, y in pairs])
            ok = d["success"][a] & d["success"][b] & core(subset(d, a))
            return {p: robust_sigma(d[p][b][ok] - d[p][a][ok]) for p, _, _ in PARAMS}, int(ok.sum())
        (rl, nl), (rd, nd) = repeat_sigma(la, kl), repeat_sigma(de, kd)
        print("\nHow much of it is the renders' own noise: robust σ of render 1 − render 2 of one star in one")
        print("format, the noise that implies for a DESI − LAMOST difference, √((σ²_LL + σ²_DD)/2), and the")
        print("excess √(σ²_DL − noise²), the part that depends on the survey (4000–7000 K core):\n")
        print("| pairs | N | Teff (K) | log g | [Fe/H] |\n|---|---:|---|---|---|")
        noise = {p: np.sqrt((rl[p] ** 2 + rd[p] ** 2) / 2) for p, _, _ in PARAMS}
        excess = {p: np.sqrt(max(cross[p] ** 2 - noise[p] ** 2, 0.0)) for p, _, _ in PARAMS}
        for name, n, vals in (("LAMOST − LAMOST", nl, rl), ("DESI − DESI", nd, rd),
                              ("noise expected in DESI − LAMOST", "", noise), ("DESI − LAMOST", int(sel.sum()), cross),
                              ("excess (survey-dependent part)", "", excess)):
            print(f"| {name} | {n} | " + " | ".join(fmt.format(vals[p]) for p, _, fmt in PARAMS) + " |")



    reports = [f / "repeats-B" / "repeats.md" for f in folds if (f / "repeats-B" / "repeats.md").exists()]
    if reports:
        print(f"\nLabel-free checks (`starpipe repeats`) on half B of {folds[0].name}, catalogued with half A's")
        print("error model: repeat renders within each format, and LAMOST vs DESI renders of one star.\n")
        print(reports[0].read_text().rstrip())


if __name__ == "__main__":
    main()
