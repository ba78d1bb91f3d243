//! DESI star selection (DESI MWS conventions: SPECTYPE, ZWARN, FIBERSTATUS, RV). A target that fails a rule is skipped with the
//! rule as its reason; it is not an error.

/// COADD_FIBERSTATUS bit 3, RESTRICTED: informational, the spectrum is fine.
pub const FIBERSTATUS_RESTRICTED: u32 = 3;
/// DESI_TARGET bit 61, MWS_ANY: the Milky Way Survey targeted this object.
pub const DESI_TARGET_MWS_ANY: i64 = 1 << 61;

#[derive(Debug, Clone, PartialEq)]
pub struct SelectionRules {
    /// COADD_FIBERSTATUS bits that do not disqualify a fibre.
    pub allowed_fiberstatus_bits: Vec<u32>,
    /// Largest |c·z| accepted for a star, km/s.
    pub max_abs_rv_kms: f64,
    /// Smallest fraction of usable pixels (ivar > 0, mask == 0) for an arm to be used.
    pub min_arm_good_fraction: f64,
}

impl Default for SelectionRules {
    fn default() -> Self {
        Self {
            allowed_fiberstatus_bits: vec![FIBERSTATUS_RESTRICTED],
            max_abs_rv_kms: 1500.0,
            min_arm_good_fraction: 0.5,
        }
    }
}

/// The FIBERMAP fields selection looks at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetRow {
    pub targetid: i64,
    pub objtype: String,
    pub fiber_status: i32,
    pub desi_target: Option<i64>,
    pub mws_target: Option<i64>,
}

/// The redrock fields selection looks at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedrockRow {
    pub z: f64,
    pub zerr: f64,
    pub zwarn: i64,
    pub spectype: String,
    pub subtype: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionMethod {
    Redrock,
    MwsTargetBits,
}

impl SelectionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionMethod::Redrock => "redrock",
            SelectionMethod::MwsTargetBits => "mws_target_bits",
        }
    }
}

impl SelectionRules {
    fn allowed_mask(&self) -> u32 {
        self.allowed_fiberstatus_bits.iter().fold(0, |m, b| m | (1u32 << b))
    }

    /// Applies the rules that need no pixels: Ok(()) if the target is a star to process.
    /// `redrock` is Some(row) when the file has a redrock companion and it has this target,
    /// Some(None) when the companion lacks the target, None when there is no companion.
    pub fn select_star(&self, t: &TargetRow, redrock: Option<Option<&RedrockRow>>) -> Result<SelectionMethod, String> {
        if t.targetid <= 0 {
            return Err(format!("unassigned or stuck fibre: TARGETID <= 0 (TARGETID={})", t.targetid));
        }
        if t.objtype != "TGT" {
            return Err(format!("OBJTYPE is not TGT (OBJTYPE='{}')", t.objtype));
        }
        let disallowed = (t.fiber_status as u32) & !self.allowed_mask();
        if disallowed != 0 {
            return Err(format!(
                "disallowed COADD_FIBERSTATUS bits (COADD_FIBERSTATUS={}, disallowed {disallowed:#x})",
                t.fiber_status
            ));
        }
        match redrock {
            Some(Some(rr)) => {
                if rr.spectype != "STAR" {
                    return Err(format!("redrock SPECTYPE is not STAR (SPECTYPE='{}')", rr.spectype));
                }
                if rr.zwarn != 0 {
                    return Err(format!("redrock ZWARN != 0 (ZWARN={})", rr.zwarn));
                }
                let rv = rr.z * crate::preprocess::C_KMS;
                if rv.abs() > self.max_abs_rv_kms {
                    return Err(format!(
                        "|c·z| above the star limit ({:.0} km/s > {:.0} km/s)",
                        rv.abs(),
                        self.max_abs_rv_kms
                    ));
                }
                Ok(SelectionMethod::Redrock)
            }
            Some(None) => Err("no row for this TARGETID in the redrock file".into()),
            None => {
                let mws =
                    t.desi_target.is_some_and(|b| b & DESI_TARGET_MWS_ANY != 0) || t.mws_target.is_some_and(|b| b != 0);
                if mws {
                    Ok(SelectionMethod::MwsTargetBits)
                } else {
                    Err("no redrock file and no MWS targeting bit".into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgt() -> TargetRow {
        TargetRow {
            targetid: 39633301257848811,
            objtype: "TGT".into(),
            fiber_status: 0,
            desi_target: Some(DESI_TARGET_MWS_ANY),
            mws_target: Some(17),
        }
    }

    fn star() -> RedrockRow {
        RedrockRow { z: 1e-4, zerr: 1e-6, zwarn: 0, spectype: "STAR".into(), subtype: "K".into() }
    }

    #[test]
    fn each_rule_rejects_with_its_reason() {
        let r = SelectionRules::default();
        assert_eq!(r.select_star(&tgt(), Some(Some(&star()))), Ok(SelectionMethod::Redrock));
        let neg = TargetRow { targetid: -2713437, objtype: String::new(), ..tgt() };
        assert!(r.select_star(&neg, None).unwrap_err().contains("TARGETID"));
        let sky = TargetRow { objtype: "SKY".into(), ..tgt() };
        assert!(r.select_star(&sky, None).unwrap_err().contains("OBJTYPE"));
        let bad = TargetRow { fiber_status: 1 << 24, ..tgt() };
        assert!(r.select_star(&bad, Some(Some(&star()))).unwrap_err().contains("COADD_FIBERSTATUS"));
        let restricted = TargetRow { fiber_status: 8, ..tgt() };
        assert!(r.select_star(&restricted, Some(Some(&star()))).is_ok());
        let gal = RedrockRow { spectype: "GALAXY".into(), ..star() };
        assert!(r.select_star(&tgt(), Some(Some(&gal))).unwrap_err().contains("SPECTYPE"));
        let warn = RedrockRow { zwarn: 4, ..star() };
        assert!(r.select_star(&tgt(), Some(Some(&warn))).unwrap_err().contains("ZWARN"));
        let fast = RedrockRow { z: 0.01, ..star() };
        assert!(r.select_star(&tgt(), Some(Some(&fast))).unwrap_err().contains("km/s"));
        assert!(r.select_star(&tgt(), Some(None)).is_err());
    }

    #[test]
    fn without_redrock_mws_bits_select() {
        let r = SelectionRules::default();
        assert_eq!(r.select_star(&tgt(), None), Ok(SelectionMethod::MwsTargetBits));
        let bgs = TargetRow { desi_target: Some(1 << 60), mws_target: Some(0), ..tgt() };
        assert!(r.select_star(&bgs, None).is_err());
    }
}
