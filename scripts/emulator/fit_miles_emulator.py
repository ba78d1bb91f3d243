"""Fit the MILES spectral emulator that `starpipe mock` ships (data/emulator/).

Model (ULySS "TGM"-style, shared docs reference-data.md §5.1): per pixel, the flux normalised to its
mean over 4000–7000 Å is a polynomial in x = log10(Teff) − 3.7617, y = log g − 4.44, z = [Fe/H].
Three overlapping Teff regimes are fitted separately (cool, warm, hot) and blended linearly in
log Teff where they overlap. Ridge-regularised least squares over all pixels at once; stars whose
whole-spectrum residual exceeds 3× the median are rejected and the fit repeated (bad labels or
bad spectra). 20 % of the stars are held out (stratified by dwarf/giant, [Fe/H] < −1, regime) and
never used for fitting; the report gives their residuals and the leave-one-out residuals of the
training stars (exact, from the hat matrix), per wavelength region and Teff regime.

Usage: python3 scripts/emulator/fit_miles_emulator.py [MILES_DIR] [OUT_DIR] [--fold K/N]
       defaults: data/miles  data/emulator  0/5
Writes OUT_DIR/miles_emulator.safetensors (coefficients, float32), OUT_DIR/emulator_report.json and
OUT_DIR/held_out_ids.txt (the MILES ids never fitted, one per line) and OUT_DIR/fitted_ids.txt (the
others).
--fold K/N holds out every N-th star of each stratum starting at the K-th (by the hash order), so
folds 0..N-1 partition the labelled stars: real-star validation (experiments/) refits the
emulator without each fold and scores that fold's real spectra. Fold 0/5 is the shipped emulator.
Needs numpy and safetensors (pip install numpy safetensors).
"""
import argparse, csv, glob, json, sys, hashlib
from pathlib import Path
import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[2]
_args = argparse.ArgumentParser(description="Fit the MILES emulator (see the module docstring).")
_args.add_argument("miles", nargs="?", default=str(ROOT / "data" / "miles"))
_args.add_argument("out", nargs="?", default=str(ROOT / "data" / "emulator"))
_args.add_argument("--fold", default="0/5", help="K/N: hold out fold K of N (default 0/5, the shipped split)")
ARGS = _args.parse_args()
MILES, OUT = Path(ARGS.miles), Path(ARGS.out)
FOLD, NFOLDS = (int(x) for x in ARGS.fold.split("/"))
if not 0 <= FOLD < NFOLDS:
    sys.exit(f"--fold {ARGS.fold}: need 0 <= K < N")

X0, Y0 = 3.7617, 4.44
# (power of x, power of y, power of z) for each term: 23 terms.
TERMS = [(0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0), (5, 0, 0),
         (0, 1, 0), (0, 2, 0), (0, 3, 0), (0, 0, 1), (0, 0, 2),
         (1, 1, 0), (1, 0, 1), (0, 1, 1), (2, 1, 0), (2, 0, 1), (1, 2, 0), (1, 0, 2),
         (3, 1, 0), (3, 0, 1), (1, 1, 1), (0, 2, 1), (0, 1, 2)]
# Regimes: name, Teff range of the stars fitted, Teff range where the regime is used (blended
# linearly in log Teff with its neighbour across the overlap).
REGIMES = [("cool", (2800, 5000)), ("warm", (3900, 9500)), ("hot", (7000, 40000))]
BLEND = [(4000, 4500), (7000, 9000)]  # cool→warm, warm→hot
NORM_WINDOW = (4000.0, 7000.0)
RIDGE = 1e-3
REGIONS = [(3540, 4500), (4500, 5500), (5500, 6500), (6500, 7410)]


def design(teff, logg, feh):
    x, y, z = np.log10(teff) - X0, logg - Y0, feh
    return np.stack([x ** a * y ** b * z ** c for a, b, c in TERMS], axis=1)


def load():
    params = {}
    with open(MILES / "miles_v9.1_params.csv") as fh:
        for r in csv.DictReader(fh):
            if r["teff"] and r["logg"] and r["feh"] and r["has_spectrum"] == "1":
                params[int(r["miles_id"])] = (float(r["teff"]), float(r["logg"]), float(r["feh"]))
    ids, flux = [], []
    for shard in sorted(glob.glob(str(MILES / "miles_v9.1_flux_part*of6.npz"))):
        d = np.load(shard)
        wave = d["wave_air"]
        ids.extend(d["miles_id"].tolist())
        flux.append(d["flux"])
    flux = np.concatenate(flux)
    keep = [i for i, m in enumerate(ids) if m in params]
    ids = np.array([ids[i] for i in keep])
    flux = flux[keep].astype(np.float64)
    labels = np.array([params[m] for m in ids])
    return ids, wave, flux, labels


def normalise(wave, flux):
    w = (wave >= NORM_WINDOW[0]) & (wave <= NORM_WINDOW[1])
    good = flux > 0
    norm = np.array([f[w & g].mean() for f, g in zip(flux, good)])
    return flux / norm[:, None], good


def split(ids, labels):
    """Deterministic stratified split: every N-th star of each stratum from the K-th (by a hash of its id)."""
    teff, logg, feh = labels.T
    stratum = (logg >= 3.5).astype(int) * 4 + (feh < -1).astype(int) * 2 + (teff > 7000).astype(int)
    order = np.argsort([hashlib.sha256(str(m).encode()).hexdigest() for m in ids])
    held = np.zeros(len(ids), bool)
    for s in np.unique(stratum):
        members = [i for i in order if stratum[i] == s]
        held[members[FOLD::NFOLDS]] = True
    return held


def fit_regime(X, Y, good):
    """Ridge fit shared by all pixels, star rejection; returns coefficients, used mask, LOO residuals."""
    use = np.ones(len(X), bool)
    for _ in range(4):
        Xu, Yu = X[use], np.where(good[use], Y[use], 0.0)
        A = Xu.T @ Xu + RIDGE * np.eye(X.shape[1])
        C = np.linalg.solve(A, Xu.T @ Yu)
        rms = np.sqrt(np.mean((np.where(good, Y, 0.0) - X @ C) ** 2 * good, axis=1))
        cut = 3 * np.median(rms[use])
        new = rms < cut
        if (new == use).all():
            break
        use = new
    # Exact leave-one-out residuals of the training stars: r_i / (1 − h_ii).
    Xu = X[use]
    A_inv = np.linalg.inv(Xu.T @ Xu + RIDGE * np.eye(X.shape[1]))
    h = np.einsum("ij,jk,ik->i", Xu, A_inv, Xu)
    loo = (np.where(good[use], Y[use], np.nan) - Xu @ C) / (1 - h)[:, None]
    return C, use, loo


def blend_weights(teff):
    """Weight of each regime at each Teff (rows sum to 1)."""
    lt = np.log10(teff)
    w = np.zeros((len(teff), 3))
    (a0, a1), (b0, b1) = (np.log10(BLEND[0][0]), np.log10(BLEND[0][1])), (np.log10(BLEND[1][0]), np.log10(BLEND[1][1]))
    t_cw = np.clip((lt - a0) / (a1 - a0), 0, 1)
    t_wh = np.clip((lt - b0) / (b1 - b0), 0, 1)
    w[:, 0] = 1 - t_cw
    w[:, 1] = t_cw * (1 - t_wh)
    w[:, 2] = t_wh
    return w


def predict(coeffs, teff, logg, feh):
    X = design(teff, logg, feh)
    w = blend_weights(teff)
    return sum(w[:, [k]] * (X @ coeffs[k]) for k in range(3))


def regime_of(teff):
    return np.where(teff < 4500, "cool (<4500 K)", np.where(teff <= 7000, "warm (4500-7000 K)", "hot (>7000 K)"))


def rms_table(resid, wave, teff):
    """RMS of residuals per Teff regime and wavelength region (NaN = masked pixel)."""
    out = {}
    for reg in np.unique(regime_of(teff)):
        rows = regime_of(teff) == reg
        out[reg] = {"n_stars": int(rows.sum())}
        for lo, hi in REGIONS:
            cols = (wave >= lo) & (wave < hi)
            r = resid[np.ix_(rows, cols)]
            out[reg][f"{lo}-{hi}"] = round(float(np.sqrt(np.nanmean(r ** 2))), 4) if np.isfinite(r).any() else None
    return out


def line_residuals(obs, model, wave, good):
    """Residuals obs − model·p(λ), p the least-squares cubic: what is left is the
    mismatch of spectral lines, without the continuum-shape differences (MILES is not de-reddened
    and carries flux-calibration errors, which no emulator in (Teff, log g, [Fe/H]) can predict)."""
    t = (wave - wave.mean()) / (wave.max() - wave.mean())
    out = np.full(obs.shape, np.nan)
    for i in range(len(obs)):
        g = good[i]
        # Least squares for obs ≈ model · p(λ), p cubic: linear in p's coefficients.
        basis = model[i][:, None] * t[:, None] ** np.arange(4)
        c, *_ = np.linalg.lstsq(basis[g], obs[i][g], rcond=None)
        out[i] = np.where(g, obs[i] - basis @ c, np.nan)
    return out


def main():
    ids, wave, flux, labels = load()
    Y, good = normalise(wave, flux)
    held = split(ids, labels)
    teff, logg, feh = labels.T
    X = design(teff, logg, feh)
    coeffs, loo_rows = [], []
    report = {"model": {"terms": TERMS, "x0": X0, "y0": Y0, "regimes": REGIMES, "blend_teff": BLEND,
                        "ridge": RIDGE, "normalisation_window_air_angstrom": NORM_WINDOW},
              "stars": {"labelled": int(len(ids)), "training": int((~held).sum()), "held_out": int(held.sum())}}
    rejected = 0
    for name, (lo, hi) in REGIMES:
        rows = (~held) & (teff >= lo) & (teff <= hi)
        C, use, loo = fit_regime(X[rows], Y[rows], good[rows])
        coeffs.append(C)
        rejected += int((~use).sum())
        # Keep LOO residuals of stars this regime serves (within its blend-free zone).
        loo_rows.append((teff[rows][use], loo))
        report.setdefault("regime_fits", {})[name] = {"stars_fitted": int(use.sum()), "stars_rejected": int((~use).sum())}
    coeffs = np.stack(coeffs)  # [3, nterms, npix]
    # Held-out stars: relative residual of the blended prediction.
    pred = predict(coeffs, teff[held], logg[held], feh[held])
    report["metrics"] = {
        "flux": "rms of (observed - emulated) flux, both normalised to their mean over 4000-7000 A air",
        "lines": "rms of observed - emulated x (cubic-in-wavelength fit to observed/emulated), in the same "
                 "mean-normalised units: the line mismatch without continuum-shape differences "
                 "(MILES is not de-reddened and carries flux-calibration errors)",
    }
    report["held_out_rms_flux"] = rms_table(np.where(good[held], Y[held] - pred, np.nan), wave, teff[held])
    report["held_out_rms_lines"] = rms_table(line_residuals(Y[held], pred, wave, good[held]), wave, teff[held])
    # Training stars, leave-one-out, from the regime that serves each star's Teff.
    serve = {0: lambda t: t < 4250, 1: lambda t: (t >= 4250) & (t <= 8000), 2: lambda t: t > 8000}
    t_all, r_all = [], []
    for k, (t, r) in enumerate(loo_rows):
        m = serve[k](t)
        t_all.append(t[m]); r_all.append(r[m])
    report["loo_rms_flux"] = rms_table(np.concatenate(r_all), wave, np.concatenate(t_all))
    # Reference predictions for a cross-language test: starpipe's Rust evaluation must match these.
    checks = [(3900.0, 4.7, 0.0), (4300.0, 1.6, -1.5), (5777.0, 4.44, 0.0), (6500.0, 4.0, -0.5), (8000.0, 3.8, 0.2)]
    pix = [0, 500, 1500, 2500, 4299]
    ref = predict(coeffs.astype(np.float32).astype(np.float64), *np.array(checks).T)
    report["reference_predictions"] = [{"teff": t, "logg": g, "feh": z, "pixels": pix, "flux": [float(ref[i][p]) for p in pix]}
                                       for i, (t, g, z) in enumerate(checks)]
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({"coefficients": coeffs.astype(np.float32), "wave_air": wave.astype(np.float64)},
              str(OUT / "miles_emulator.safetensors"),
              metadata={"model": json.dumps(report["model"]), "source": "MILES v9.1 (945 labelled stars), Cenarro+2007 labels"})
    (OUT / "emulator_report.json").write_text(json.dumps(report, indent=1))
    (OUT / "held_out_ids.txt").write_text(
        f"# MILES ids held out of this fit (fold {FOLD}/{NFOLDS}); never fitted\n"
        + "".join(f"{m}\n" for m in sorted(ids[held].tolist())))
    (OUT / "fitted_ids.txt").write_text(
        f"# MILES ids this fit could use (all labelled stars but fold {FOLD}/{NFOLDS})\n"
        + "".join(f"{m}\n" for m in sorted(ids[~held].tolist())))
    print(json.dumps({k: report[k] for k in ("stars", "held_out_rms_flux", "held_out_rms_lines", "loo_rms_flux")}, indent=1))


if __name__ == "__main__":
    main()
