//! Header cards for mock files: real headers as templates, with the keywords that describe the mock
//! star replaced, written verbatim with cfitsio.

use fitsio::FitsFile;
use std::collections::HashMap;
use std::ffi::CString;

/// A keyword value as FITS writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum CardValue {
    Str(String),
    Int(i64),
    /// Value and number of decimals.
    Float(f64, usize),
}

/// One 80-character card `KEY     = value / comment`.
pub fn format_card(key: &str, value: &CardValue, comment: &str) -> String {
    let value = match value {
        CardValue::Str(s) => format!("'{:<8}'", s.replace('\'', "''")),
        CardValue::Int(i) => format!("{i:>20}"),
        CardValue::Float(v, d) => format!("{:>20}", format!("{v:.d$}")),
    };
    let mut card = format!("{key:<8}= {value} /{comment}");
    card.truncate(80);
    format!("{card:<80}")
}

/// The comment of a template card (after the value's `/`), keeping quoted slashes in strings.
fn comment_of(card: &str) -> &str {
    let body = card.get(10..).unwrap_or("");
    let mut in_string = false;
    for (i, c) in body.char_indices() {
        match c {
            '\'' => in_string = !in_string,
            '/' if !in_string => return body[i + 1..].trim_end(),
            _ => {}
        }
    }
    ""
}

/// The template's cards with overridden values (keyword order and comments kept). Overrides for
/// keywords the template lacks are appended.
pub fn fill_template(template: &str, overrides: &HashMap<&str, CardValue>) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    let mut cards: Vec<String> = template
        .lines()
        .map(|card| {
            let key = card.get(..8).unwrap_or("").trim();
            match overrides.get(key) {
                Some(v) if card.get(8..10) == Some("= ") => {
                    used.insert(key.to_string());
                    format_card(key, v, comment_of(card))
                }
                _ => format!("{card:<80}"),
            }
        })
        .collect();
    let mut extra: Vec<_> = overrides.iter().filter(|(k, _)| !used.contains(**k)).collect();
    extra.sort_by_key(|(k, _)| **k);
    cards.extend(extra.into_iter().map(|(k, v)| format_card(k, v, "")));
    cards
}

/// Removes the EXTNAME ('_PRIMARY') the fitsio crate gives every primary HDU it creates: real
/// survey primaries carry their own (LAMOST image layout: 'Flux') or none.
pub fn drop_primary_extname(f: &mut FitsFile) {
    let mut ignored = 0;
    // SAFETY: live handle; a missing keyword only sets `ignored`.
    unsafe { fitsio::sys::ffdkey(f.as_raw(), c"EXTNAME".as_ptr(), &mut ignored) };
}

/// Appends `cards` to the current HDU's header.
pub fn write_cards(f: &mut FitsFile, cards: &[String]) -> Result<(), String> {
    for card in cards {
        let c = CString::new(card.as_str()).map_err(|e| e.to_string())?;
        let mut status = 0;
        // SAFETY: live handle; cfitsio copies the 80-character record.
        unsafe { fitsio::sys::ffprec(f.as_raw(), c.as_ptr(), &mut status) };
        if status != 0 {
            return Err(format!("cannot write header card '{}': cfitsio status {status}", card.trim_end()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_values_are_replaced_and_comments_kept() {
        let template = "OBSID   =               101001 / Unique number ID of this spectrum\nCLASS   = 'STAR    '           / Class of object\nCOMMENT --------SPECTRA";
        let overrides = HashMap::from([("OBSID", CardValue::Int(900000001)), ("Z", CardValue::Float(-1.5e-4, 8))]);
        let cards = fill_template(template, &overrides);
        assert_eq!(cards.len(), 4);
        assert!(cards.iter().all(|c| c.len() == 80));
        assert!(cards[0].starts_with("OBSID   =            900000001 / Unique number ID"), "{}", cards[0]);
        assert!(cards[1].starts_with("CLASS   = 'STAR    '"));
        assert!(cards[3].starts_with("Z       =          -0.00015000"), "{}", cards[3]);
    }
}
