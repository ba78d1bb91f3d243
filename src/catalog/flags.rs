//! Quality flags of a catalogue row (`quality_flags`, uint32; catalog-conventions.md §2).
//!
//! The bits come in three classes, one byte each, the more severe the higher: informational bits
//! 0-7, quality bits 8-15, fatal bits 16-23. "Nothing worse than class X" is therefore
//! `quality_flags < 2^k` (`CUTS`), the convention of Zhang, Green & Rix, and a new bit of a class
//! takes a free bit of its byte without moving the cuts. Bit 31 is never set, so the value also
//! fits a signed 32-bit integer (VOTable and FITS have no unsigned type). The column is not called
//! `flags`: pandas' `DataFrame.flags` would shadow it in attribute access.

use crate::schema::columns::catalog as cat;
use serde::{Deserialize, Serialize};

/// How bad a flag is; each class owns one byte of `quality_flags`, ordered by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Worth knowing; the estimates are as good as the row's other bits say.
    Info,
    /// The estimates exist but should not be trusted without care.
    Quality,
    /// No estimates: `success` is false and they are null.
    Fatal,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Info, Class::Quality, Class::Fatal];

    pub fn name(self) -> &'static str {
        match self {
            Class::Info => "info",
            Class::Quality => "quality",
            Class::Fatal => "fatal",
        }
    }
    /// The lowest bit of the class's byte.
    pub const fn first_bit(self) -> u32 {
        8 * self as u32
    }
    /// Every bit of the class's byte, used or reserved.
    pub const fn mask(self) -> u32 {
        0xff << self.first_bit()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    HeadDisagree = 0,
    MetalPoorEmbed = 1,
    RvUncertain = 2,
    NoClass = 3,
    RepeatsDisagree = 4,
    Uncalibrated = 5,
    LowSnr = 8,
    HighMaskFrac = 9,
    FiberWarn = 10,
    Ood = 11,
    LabelEdge = 12,
    LargeErr = 13,
    NotStar = 16,
    BadInput = 17,
}

pub const ALL: [Flag; 14] = [
    Flag::HeadDisagree,
    Flag::MetalPoorEmbed,
    Flag::RvUncertain,
    Flag::NoClass,
    Flag::RepeatsDisagree,
    Flag::Uncalibrated,
    Flag::LowSnr,
    Flag::HighMaskFrac,
    Flag::FiberWarn,
    Flag::Ood,
    Flag::LabelEdge,
    Flag::LargeErr,
    Flag::NotStar,
    Flag::BadInput,
];

/// Bits that make a row unusable: its estimates are null and `success` is false.
pub const FATAL_MASK: u32 = Class::Fatal.mask();

/// A published selection: the rows whose bits all belong to the classes it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub name: &'static str,
    /// The classes a kept row may carry.
    pub allows: &'static [Class],
    pub keeps: &'static str,
    /// The FITS keyword of `FLAG_BITS` that holds the cut in TOPCAT's language.
    pub fits_key: &'static str,
}

/// The cuts every document and every file's metadata publish, from the strictest.
pub const CUTS: [Cut; 3] = [
    Cut { name: "strict", allows: &[], keeps: "rows without any flag", fits_key: "CUTSTRCT" },
    Cut {
        name: "basic",
        allows: &[Class::Info],
        keeps: "rows without a fatal or quality flag (informational flags allowed)",
        fits_key: "CUTBASIC",
    },
    Cut {
        name: "usable",
        allows: &[Class::Info, Class::Quality],
        keeps: "rows with estimates (no fatal flag): the same rows as `success`",
        fits_key: "CUTUSABL",
    },
];

impl Cut {
    /// Rows with `quality_flags` below this value pass: the first bit of the least severe class
    /// the cut does not allow (a cut allows the mildest classes, so one comparison says it).
    pub fn below(&self) -> u32 {
        let first_refused = Class::ALL.iter().find(|c| !self.allows.contains(c)).expect("a cut refuses some class");
        1 << first_refused.first_bit()
    }
    pub fn passes(&self, quality_flags: u32) -> bool {
        quality_flags < self.below()
    }
    /// `LHS == 0` or `LHS < N` in a tool's syntax, given its column reference and equality operator.
    fn condition(&self, column: &str, equals: &str) -> String {
        if self.allows.is_empty() { format!("{column} {equals} 0") } else { format!("{column} < {}", self.below()) }
    }
    /// The cut as an SQL condition (DuckDB, Polars' SQL, ADQL).
    pub fn sql(&self) -> String {
        self.condition(COLUMN, "=")
    }
    /// The cut as a Polars expression.
    pub fn polars(&self) -> String {
        self.condition(&format!("pl.col(\"{COLUMN}\")"), "==")
    }
    /// The cut as a pandas (and numpy/astropy) condition on a frame or table `t`.
    pub fn pandas(&self) -> String {
        self.condition(&format!("t[\"{COLUMN}\"]"), "==")
    }
    /// The cut in TOPCAT's expression language (and STILTS).
    pub fn topcat(&self) -> String {
        self.condition(COLUMN, "==")
    }
}

/// The name of the bitmask column in every catalogue table.
pub const COLUMN: &str = cat::QUALITY_FLAGS;

pub fn cut(name: &str) -> &'static Cut {
    CUTS.iter().find(|c| c.name == name).expect("a published cut")
}

impl Flag {
    pub fn bit(self) -> u32 {
        self as u32
    }
    pub fn mask(self) -> u32 {
        1 << self.bit()
    }
    pub fn name(self) -> &'static str {
        match self {
            Flag::BadInput => "BAD_INPUT",
            Flag::NotStar => "NOT_STAR",
            Flag::LowSnr => "LOW_SNR",
            Flag::HighMaskFrac => "HIGH_MASK_FRAC",
            Flag::FiberWarn => "FIBER_WARN",
            Flag::Ood => "OOD",
            Flag::LabelEdge => "LABEL_EDGE",
            Flag::LargeErr => "LARGE_ERR",
            Flag::HeadDisagree => "HEAD_DISAGREE",
            Flag::MetalPoorEmbed => "METAL_POOR_EMBED",
            Flag::RvUncertain => "RV_UNCERTAIN",
            Flag::NoClass => "NO_CLASS",
            Flag::RepeatsDisagree => "REPEATS_DISAGREE",
            Flag::Uncalibrated => "UNCALIBRATED",
        }
    }
    pub fn class(self) -> Class {
        match self.bit() / 8 {
            0 => Class::Info,
            1 => Class::Quality,
            _ => Class::Fatal,
        }
    }
    pub fn description(self) -> &'static str {
        match self {
            Flag::BadInput => {
                "no prediction for this spectrum (its prediction shard is missing or failed), or no usable pixel"
            }
            Flag::NotStar => "the survey classifies the input as other than a star, or |input_rv| > max_abs_rv_kms",
            Flag::LowSnr => "snr < min_snr",
            Flag::HighMaskFrac => "frac_masked > high_mask_fraction",
            Flag::FiberWarn => {
                "fiber_status has a bit outside the informational ones (DESI), or the LAMOST fibre mask is set"
            }
            Flag::Ood => {
                "out of the training domain: ood_score above the head's threshold (real in-domain stars' 99th \
                 percentile after `starpipe calibrate`, else the training set's 99.5th), chi2_red above the \
                 calibrated threshold (the emulator at the estimates does not fit the spectrum), or the survey's \
                 spectral subclass (LAMOST SUBCLASS, redrock SUBTYPE) is a type whose Teff range lies mostly \
                 (over half, in log Teff) outside the 0.5-99.5 % range of the training labels (O, B, early A, \
                 later M; bare A, M) or not a normal star (WD, CV, carbon)"
            }
            Flag::LabelEdge => "an estimate outside the 0.5-99.5 % range of the training labels",
            Flag::LargeErr => "an error above max_error (Teff K, log g dex, [Fe/H] dex)",
            Flag::HeadDisagree => "pixel and embedding heads differ by more than disagree_sigma combined sigma",
            Flag::MetalPoorEmbed => "an embedding head gave [Fe/H] < metal_poor_feh, where embeddings are weaker",
            Flag::RvUncertain => "no input RV error, or it exceeds max_rv_err_kms (rest-framing unreliable)",
            Flag::NoClass => {
                "the survey gave no classification (DESI without a redrock file: selected by MWS targeting bits)"
            }
            Flag::Uncalibrated => {
                "the head has no error model fitted on held-out labelled stars (`starpipe calibrate`): its errors are \
                 the network's, scaled on its own validation stars, and their coverage is unverified"
            }
            Flag::RepeatsDisagree => {
                "per-star table only: a spectrum combined into the star's mean lies more than disagree_sigma of \
                 its sigma from the mean in some parameter (variable star, blend or bad spectrum)"
            }
        }
    }
}

/// Where the flags switch on; written into every catalogue file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub min_snr: f64,
    pub high_mask_fraction: f64,
    /// Teff (K), log g (dex), [Fe/H] (dex).
    pub max_error: [f64; 3],
    pub max_abs_rv_kms: f64,
    pub max_rv_err_kms: f64,
    /// DESI COADD_FIBERSTATUS bits that do not warn (3 RESTRICTED, 13 and 14 informational).
    pub informational_fiber_bits: Vec<u32>,
    pub metal_poor_feh: f64,
    pub disagree_sigma: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_snr: 10.0,
            high_mask_fraction: 0.2,
            max_error: [300.0, 0.5, 0.3],
            max_abs_rv_kms: 1500.0,
            max_rv_err_kms: 20.0,
            informational_fiber_bits: vec![3, 13, 14],
            metal_poor_feh: -1.0,
            disagree_sigma: 3.0,
        }
    }
}

/// What the training set of a head's model covered.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelLimits {
    pub ood_threshold: Option<f64>,
    /// Reconstruction χ² above which the star is out of domain (set by `starpipe calibrate`).
    pub chi2_threshold: Option<f64>,
    pub label_p005: Option<[f64; 3]>,
    pub label_p995: Option<[f64; 3]>,
    pub embedding_input: bool,
    /// Whether the head's errors come from an error model `starpipe calibrate` fitted.
    pub calibrated: bool,
}

/// The facts about one row that its flags depend on.
#[derive(Debug, Clone, Default)]
pub struct RowFacts<'a> {
    pub survey: &'a str,
    /// (value, error) per parameter, None when there is no prediction.
    pub estimate: Option<([f64; 3], [f64; 3])>,
    pub input_class: Option<&'a str>,
    /// The survey's spectral subclass: LAMOST SUBCLASS (`G7`, `dM2`, `A1IV`), redrock SUBTYPE (`K`).
    pub input_subclass: Option<&'a str>,
    pub rv_kms: Option<f64>,
    pub rv_err_kms: Option<f64>,
    pub snr: f64,
    pub frac_masked: f64,
    pub fiber_status: Option<i32>,
    pub ood_score: Option<f64>,
    pub chi2_red: Option<f64>,
}

pub fn flags_of(f: &RowFacts, limits: &ModelLimits, t: &Thresholds) -> u32 {
    let mut flags = 0;
    let mut set = |flag: Flag, on: bool| {
        if on {
            flags |= flag.mask();
        }
    };
    let bad_input = f.estimate.is_none() || f.frac_masked >= 1.0;
    // UNKNOWN is what ingest writes when the survey said nothing (a DESI star selected by its
    // targeting bits, without redrock): not a verdict against the star.
    let class = f.input_class.map(str::trim).filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("UNKNOWN"));
    let not_star =
        class.is_some_and(|c| !c.eq_ignore_ascii_case("STAR")) || f.rv_kms.is_some_and(|v| v.abs() > t.max_abs_rv_kms);
    // Estimates of a fatal row are not published, so nothing may be flagged from them.
    let fatal = bad_input || not_star;
    set(Flag::BadInput, bad_input);
    set(Flag::NotStar, not_star);
    set(Flag::NoClass, class.is_none());
    set(Flag::LowSnr, f.snr.is_nan() || f.snr < t.min_snr);
    set(Flag::HighMaskFrac, f.frac_masked > t.high_mask_fraction);
    let warn_bits = f.fiber_status.map_or(0, |s| {
        let s = s as u32;
        if f.survey == "desi" {
            t.informational_fiber_bits.iter().fold(s, |acc, b| acc & !(1u32.checked_shl(*b).unwrap_or(0)))
        } else {
            s
        }
    });
    set(Flag::FiberWarn, warn_bits != 0);
    // Out of the training domain by what the network sees, or by what the survey says the star is.
    let far = matches!((f.ood_score, limits.ood_threshold), (Some(s), Some(th)) if s > th);
    let unserved = match (f.input_subclass.and_then(subclass_teff), limits.label_p005, limits.label_p995) {
        (Some(SubclassTeff::NotNormal), _, _) => true,
        (Some(SubclassTeff::Range(lo, hi)), Some(p005), Some(p995)) => {
            fraction_outside((lo, hi), (p005[0], p995[0])) > 0.5
        }
        _ => false,
    };
    let misfit = matches!((f.chi2_red, limits.chi2_threshold), (Some(c), Some(th)) if c > th);
    set(Flag::Ood, far || ((unserved || misfit) && !fatal));
    if let Some((value, error)) = f.estimate.filter(|_| !fatal) {
        let outside = |p: usize| match (limits.label_p005, limits.label_p995) {
            (Some(lo), Some(hi)) => value[p] < lo[p] || value[p] > hi[p],
            _ => false,
        };
        set(Flag::LabelEdge, (0..3).any(outside));
        set(Flag::LargeErr, (0..3).any(|p| error[p].is_nan() || error[p] > t.max_error[p]));
        set(Flag::MetalPoorEmbed, limits.embedding_input && value[2] < t.metal_poor_feh);
        set(Flag::Uncalibrated, !limits.calibrated);
    }
    set(Flag::RvUncertain, !f.rv_err_kms.is_some_and(|e| e <= t.max_rv_err_kms));
    flags
}

/// How much of a subclass's Teff range (in log Teff, as spectral types are spaced) lies outside the
/// trained range. More than half means the star is more likely outside than inside: a bare redrock
/// type spans a whole class ("A": 7,300–10,000 K), and an A star the network puts at 7,900 K is
/// far more often a 9,000 K star at the domain's edge than a late-A one inside it (on held-out real
/// stars in DESI format, "entirely outside" flagged 78 % of stars outside the domain and this 87 %,
/// for 7 % → 9 % of those inside).
fn fraction_outside((lo, hi): (f64, f64), (train_lo, train_hi): (f64, f64)) -> f64 {
    if hi <= lo {
        return if lo < train_lo || lo > train_hi { 1.0 } else { 0.0 };
    }
    let inside = (hi.min(train_hi).ln() - lo.max(train_lo).ln()).max(0.0);
    1.0 - inside / (hi.ln() - lo.ln())
}

/// What a survey's spectral subclass says about a star's temperature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SubclassTeff {
    /// The Teff range (K) of the type, about one subtype either side of its number.
    Range(f64, f64),
    /// Not a normal star (white dwarf, cataclysmic variable, carbon star).
    NotNormal,
}

/// The MK type of a survey subclass as a Teff range, from a dwarf scale (a guide, not a
/// measurement: good to a few subtypes, which is what a domain check needs). Prefixes d/g/sd
/// (LAMOST's dM/gM/sdM) and luminosity classes are ignored; unknown names give None.
pub fn subclass_teff(subclass: &str) -> Option<SubclassTeff> {
    let s = subclass.trim();
    let lower = s.to_ascii_lowercase();
    if ["wd", "cv", "carbon"].iter().any(|p| lower.starts_with(p)) {
        return Some(SubclassTeff::NotNormal);
    }
    let s = s.strip_prefix("sd").or_else(|| s.strip_prefix('d')).or_else(|| s.strip_prefix('g')).unwrap_or(s);
    let mut chars = s.chars();
    // Teff (K) at subtype 0 and at the next type's 0.
    let (hot, cool) = match chars.next()? {
        'O' => (50_000.0, 30_000.0),
        'B' => (30_000.0, 10_000.0),
        'A' => (10_000.0, 7_300.0),
        'F' => (7_300.0, 6_000.0),
        'G' => (6_000.0, 5_300.0),
        'K' => (5_300.0, 3_900.0),
        'M' => (3_900.0, 2_400.0),
        _ => return None,
    };
    let digits: String = chars.take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let step = |d: f64| hot * f64::powf(cool / hot, d / 10.0);
    Some(match digits.parse::<f64>() {
        Ok(d) if (0.0..10.0).contains(&d) => SubclassTeff::Range(step(d + 1.0), step(d - 1.0)),
        // A type without a number (redrock's SUBTYPE): the whole type.
        _ => SubclassTeff::Range(cool, hot),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> RowFacts<'static> {
        RowFacts {
            survey: "desi",
            estimate: Some(([5800.0, 4.4, 0.0], [60.0, 0.1, 0.05])),
            input_class: Some("STAR"),
            input_subclass: Some("G2"),
            rv_kms: Some(-12.0),
            rv_err_kms: Some(1.5),
            snr: 40.0,
            frac_masked: 0.01,
            fiber_status: Some(1 << 3),
            ood_score: Some(8.0),
            chi2_red: Some(1.2),
        }
    }

    fn limits() -> ModelLimits {
        ModelLimits {
            ood_threshold: Some(12.0),
            chi2_threshold: Some(3.0),
            label_p005: Some([3800.0, 1.0, -2.3]),
            label_p995: Some([7800.0, 4.9, 0.45]),
            embedding_input: false,
            calibrated: true,
        }
    }

    #[test]
    fn subclasses_inside_the_training_range_are_served() {
        let t = Thresholds::default();
        // Training Teff 3800–7800 K: G, K, F, late A and early M are served, and the bare redrock
        // types that lie mostly inside the range; unknown names are not a verdict.
        for served in ["G2", "K5", "F0", "A9", "M0", "gM0", "K", "G", "F", "F7V", "Unknown", "", "Non"] {
            let mut f = clean();
            f.input_subclass = Some(served);
            assert_eq!(flags_of(&f, &limits(), &t), 0, "{served}");
        }
        // Bare "A" (7,300–10,000 K) and "M" (2,400–3,900 K) lie mostly outside 3800–7800 K.
        for unserved in ["O", "OB", "B", "A0", "A5", "A", "M", "M2", "sdM3", "CarbonWD", "CV"] {
            let mut f = clean();
            f.input_subclass = Some(unserved);
            assert_eq!(flags_of(&f, &limits(), &t), Flag::Ood.mask(), "{unserved}");
        }
        assert!(
            matches!(subclass_teff("G2"), Some(SubclassTeff::Range(lo, hi)) if lo < 5850.0 && hi > 5850.0 && hi - lo < 200.0)
        );
    }

    #[test]
    fn each_condition_sets_exactly_its_bit() {
        let t = Thresholds::default();
        assert_eq!(flags_of(&clean(), &limits(), &t), 0);
        type Change = Box<dyn Fn(&mut RowFacts)>;
        let cases: Vec<(Flag, Change)> = vec![
            (Flag::NotStar, Box::new(|f| f.input_class = Some("GALAXY"))),
            (Flag::NotStar, Box::new(|f| f.rv_kms = Some(2000.0))),
            (Flag::LowSnr, Box::new(|f| f.snr = 9.9)),
            (Flag::LowSnr, Box::new(|f| f.snr = f64::NAN)),
            (Flag::HighMaskFrac, Box::new(|f| f.frac_masked = 0.3)),
            (Flag::FiberWarn, Box::new(|f| f.fiber_status = Some(1 << 3 | 1 << 1))),
            (Flag::Ood, Box::new(|f| f.ood_score = Some(12.5))),
            (Flag::LabelEdge, Box::new(|f| f.estimate = Some(([7900.0, 4.4, 0.0], [60.0, 0.1, 0.05])))),
            (Flag::LargeErr, Box::new(|f| f.estimate = Some(([5800.0, 4.4, 0.0], [60.0, 0.1, 0.31])))),
            (Flag::RvUncertain, Box::new(|f| f.rv_err_kms = None)),
            (Flag::Ood, Box::new(|f| f.chi2_red = Some(3.5))),
            (Flag::Ood, Box::new(|f| f.input_subclass = Some("B6"))),
            (Flag::Ood, Box::new(|f| f.input_subclass = Some("A1IV"))),
            (Flag::Ood, Box::new(|f| f.input_subclass = Some("dM3"))),
            (Flag::Ood, Box::new(|f| f.input_subclass = Some("WD"))),
            (Flag::RvUncertain, Box::new(|f| f.rv_err_kms = Some(25.0))),
        ];
        for (flag, change) in cases {
            let mut f = clean();
            change(&mut f);
            assert_eq!(flags_of(&f, &limits(), &t), flag.mask(), "{}", flag.name());
        }
        // No prediction: fatal, and nothing about estimates.
        let mut f = clean();
        f.estimate = None;
        assert_eq!(flags_of(&f, &limits(), &t), Flag::BadInput.mask());
        // A galaxy's estimates are not published: no bit from them, however bad they are.
        let mut f = clean();
        f.input_class = Some("GALAXY");
        f.estimate = Some(([9900.0, 4.4, 0.0], [f64::NAN, 0.1, 0.05]));
        assert_eq!(flags_of(&f, &limits(), &t), Flag::NotStar.mask());
        // No classification (UNKNOWN, empty or absent) is information, not a verdict.
        for class in [Some("UNKNOWN"), Some(""), None] {
            let mut f = clean();
            f.input_class = class;
            assert_eq!(flags_of(&f, &limits(), &t), Flag::NoClass.mask(), "{class:?}");
        }
        // The LAMOST fibre mask warns whatever its bits; informational DESI bits do not.
        let mut f = clean();
        f.survey = "lamost";
        f.fiber_status = Some(1 << 3);
        assert_eq!(flags_of(&f, &limits(), &t), Flag::FiberWarn.mask());
        // A head without a fitted error model: every row with estimates says so, fatal rows do not.
        let mut raw = limits();
        raw.calibrated = false;
        assert_eq!(flags_of(&clean(), &raw, &t), Flag::Uncalibrated.mask());
        let mut f = clean();
        f.estimate = None;
        assert_eq!(flags_of(&f, &raw, &t), Flag::BadInput.mask());
        // An embedding head on a metal-poor star.
        let mut emb = limits();
        emb.embedding_input = true;
        let mut f = clean();
        f.estimate = Some(([5800.0, 4.4, -1.5], [60.0, 0.1, 0.1]));
        assert_eq!(flags_of(&f, &emb, &t), Flag::MetalPoorEmbed.mask());
    }

    #[test]
    fn thresholds_switch_exactly_at_their_boundary() {
        let t = Thresholds::default();
        let flags = |change: &dyn Fn(&mut RowFacts)| {
            let mut f = clean();
            change(&mut f);
            flags_of(&f, &limits(), &t)
        };
        let up = |x: f64| x + x.abs() * 1e-9 + 1e-12;
        let down = |x: f64| x - x.abs() * 1e-9 - 1e-12;
        // (bit, the value at the threshold and just past it on the flagged side)
        type Change<'a> = Box<dyn Fn(&mut RowFacts, bool) + 'a>;
        let cases: Vec<(Flag, Change<'_>)> = vec![
            (Flag::LowSnr, Box::new(|f, past| f.snr = if past { down(t.min_snr) } else { t.min_snr })),
            (
                Flag::HighMaskFrac,
                Box::new(|f, past| f.frac_masked = if past { up(t.high_mask_fraction) } else { t.high_mask_fraction }),
            ),
            (
                Flag::NotStar,
                Box::new(|f, past| f.rv_kms = Some(if past { up(t.max_abs_rv_kms) } else { t.max_abs_rv_kms })),
            ),
            (
                Flag::NotStar,
                Box::new(|f, past| f.rv_kms = Some(-(if past { up(t.max_abs_rv_kms) } else { t.max_abs_rv_kms }))),
            ),
            (
                Flag::RvUncertain,
                Box::new(|f, past| f.rv_err_kms = Some(if past { up(t.max_rv_err_kms) } else { t.max_rv_err_kms })),
            ),
            (
                Flag::LargeErr,
                Box::new(|f, past| {
                    let e = if past { up(t.max_error[0]) } else { t.max_error[0] };
                    f.estimate = Some(([5800.0, 4.4, 0.0], [e, 0.1, 0.05]));
                }),
            ),
            (Flag::Ood, Box::new(|f, past| f.ood_score = Some(if past { up(12.0) } else { 12.0 }))),
            (
                Flag::LabelEdge,
                Box::new(|f, past| {
                    let feh = if past { up(0.45) } else { 0.45 };
                    f.estimate = Some(([5800.0, 4.4, feh], [60.0, 0.1, 0.05]));
                }),
            ),
            // The lower edge of the label range too (Teff p005 = 3800 K).
            (
                Flag::LabelEdge,
                Box::new(|f, past| {
                    let teff = if past { down(3800.0) } else { 3800.0 };
                    f.estimate = Some(([teff, 4.4, 0.0], [60.0, 0.1, 0.05]));
                }),
            ),
            // LARGE_ERR for log g and [Fe/H], each at its own limit.
            (
                Flag::LargeErr,
                Box::new(|f, past| {
                    let e = if past { up(t.max_error[1]) } else { t.max_error[1] };
                    f.estimate = Some(([5800.0, 4.4, 0.0], [60.0, e, 0.05]));
                }),
            ),
            (
                Flag::LargeErr,
                Box::new(|f, past| {
                    let e = if past { up(t.max_error[2]) } else { t.max_error[2] };
                    f.estimate = Some(([5800.0, 4.4, 0.0], [60.0, 0.1, e]));
                }),
            ),
            // The reconstruction χ² threshold (3.0 in `limits`).
            (Flag::Ood, Box::new(|f, past| f.chi2_red = Some(if past { up(3.0) } else { 3.0 }))),
        ];
        for (flag, set) in &cases {
            assert_eq!(flags(&|f| set(f, false)), 0, "{} at its threshold", flag.name());
            assert_eq!(flags(&|f| set(f, true)), flag.mask(), "{} just past it", flag.name());
        }
        // METAL_POOR_EMBED on an embedding head: not at [Fe/H] = metal_poor_feh, just below it.
        let mut emb = limits();
        emb.embedding_input = true;
        emb.label_p005 = Some([3800.0, 1.0, -2.5]);
        for (feh, flagged) in [(t.metal_poor_feh, false), (down(t.metal_poor_feh), true)] {
            let mut f = clean();
            f.estimate = Some(([5800.0, 4.4, feh], [60.0, 0.1, 0.05]));
            assert_eq!(flags_of(&f, &emb, &t), if flagged { Flag::MetalPoorEmbed.mask() } else { 0 }, "[Fe/H] {feh}");
        }
    }

    #[test]
    fn bits_are_ordered_by_severity_and_never_use_bit_31() {
        // The class each flag must have, written out by name (not derived from the bit).
        let intended = [
            ("HEAD_DISAGREE", Class::Info),
            ("METAL_POOR_EMBED", Class::Info),
            ("RV_UNCERTAIN", Class::Info),
            ("NO_CLASS", Class::Info),
            ("REPEATS_DISAGREE", Class::Info),
            ("UNCALIBRATED", Class::Info),
            ("LOW_SNR", Class::Quality),
            ("HIGH_MASK_FRAC", Class::Quality),
            ("FIBER_WARN", Class::Quality),
            ("OOD", Class::Quality),
            ("LABEL_EDGE", Class::Quality),
            ("LARGE_ERR", Class::Quality),
            ("NOT_STAR", Class::Fatal),
            ("BAD_INPUT", Class::Fatal),
        ];
        assert_eq!(ALL.len(), intended.len());
        for (flag, (name, class)) in ALL.iter().zip(intended) {
            assert_eq!((flag.name(), flag.class()), (name, class));
        }
        // Every bit of a more severe class lies above every bit of a less severe one.
        for a in ALL {
            for b in ALL {
                if a.class() < b.class() {
                    assert!(a.bit() < b.bit(), "{} below {}", a.name(), b.name());
                }
            }
        }
        let fatal: u32 = ALL.iter().filter(|f| f.class() == Class::Fatal).map(|f| f.mask()).sum();
        assert_eq!(fatal & !FATAL_MASK, 0);
        assert_eq!(fatal, (1 << 16) | (1 << 17));
        assert!(ALL.iter().all(|f| f.bit() < 31));
        let bits: std::collections::BTreeSet<u32> = ALL.iter().map(|f| f.bit()).collect();
        assert_eq!(bits.len(), ALL.len(), "two flags share a bit");
    }

    #[test]
    fn each_cut_keeps_exactly_the_rows_its_words_promise() {
        // Every single bit, every pair of bits, no bit and every bit: kept exactly when no bit
        // lies outside the classes the cut allows.
        let mut values = vec![0u32, ALL.iter().map(|f| f.mask()).sum()];
        for a in ALL {
            values.push(a.mask());
            for b in ALL {
                values.push(a.mask() | b.mask());
            }
        }
        for cut in CUTS {
            for &v in &values {
                let promised = ALL.iter().all(|f| v & f.mask() == 0 || cut.allows.contains(&f.class()));
                assert_eq!(cut.passes(v), promised, "{} on {v:#x}", cut.name);
            }
        }
        assert_eq!(cut("strict").sql(), "quality_flags = 0");
        assert_eq!(cut("basic").sql(), "quality_flags < 256");
        assert_eq!(cut("usable").sql(), "quality_flags < 65536");
        assert_eq!(cut("basic").polars(), "pl.col(\"quality_flags\") < 256");
        // `usable` is `success`.
        for &v in &values {
            assert_eq!(cut("usable").passes(v), v & FATAL_MASK == 0);
        }
    }
}
