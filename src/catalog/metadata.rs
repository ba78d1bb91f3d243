//! File-level metadata of every catalogue file: the VOParquet 1.0 keys (a data-less VOTable with
//! one FIELD per column, so TOPCAT and astropy's `parquet.votable` see units and UCDs), astropy's
//! own keys (so a plain `Table.read` gets units and descriptions without a warning) and the
//! `starpipe` JSON key (flag bits, cuts, thresholds, heads).

use super::flags::{ALL, CUTS, Class, FATAL_MASK, Thresholds};
use super::rows::Head;
use crate::schema::TableSchema;
use crate::schema::columns::{catalog as cat, catalog_stars as cs};
use std::collections::BTreeMap;

/// The longest value, in characters, of each string column of a catalogue. astropy reads strings
/// at a fixed width (`table::len::<col>`; longer values are cut without a word, a missing key is a
/// warning) and so does the VOTable (`arraysize="N*"`), so both get the true width.
pub type StringWidths = BTreeMap<String, usize>;

/// The width of a string column of `schema`: the per-star table's `best_spectrum_id` is a
/// `spectrum_id`; every other string column has its per-spectrum namesake.
fn width(widths: &StringWidths, column: &str) -> usize {
    let source = if column == cs::BEST_SPECTRUM_ID { cat::SPECTRUM_ID } else { column };
    widths.get(source).copied().unwrap_or(0).max(1)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn votable_type(t: &str) -> &'static str {
    match t {
        "utf8" => "char",
        "bool" => "boolean",
        "int32" | "uint32" => "int",
        "int64" => "long",
        "float32" => "float",
        _ => "double",
    }
}

/// The VOTable document of `IVOA.VOTable-Parquet.content`.
pub fn votable(schema: &TableSchema, widths: &StringWidths) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n<RESOURCE type=\"results\">\n<TABLE name=\"starpipe_catalog\">\n",
    );
    for c in &schema.columns {
        let dt = votable_type(&c.type_name);
        // A bounded variable length: astropy reads "*" as object columns and then cannot stack
        // them with the data's strings; "N*" reads as fixed-width strings, which it can.
        let arraysize =
            if dt == "char" { format!(" arraysize=\"{}*\"", width(widths, &c.name)) } else { String::new() };
        let unit = if c.unit.is_empty() { String::new() } else { format!(" unit=\"{}\"", xml_escape(&c.unit)) };
        let ucd = c.ucd.as_deref().map_or(String::new(), |u| format!(" ucd=\"{}\"", xml_escape(u)));
        s.push_str(&format!(
            "<FIELD name=\"{}\" datatype=\"{dt}\"{arraysize}{unit}{ucd}><DESCRIPTION>{}</DESCRIPTION></FIELD>\n",
            xml_escape(&c.name),
            xml_escape(&c.description)
        ));
    }
    s.push_str("<PARQUET type=\"Parquet-local-XML\"/>\n</TABLE>\n</RESOURCE>\n</VOTABLE>\n");
    s
}

/// The `starpipe` key: versioned JSON a reader needs to interpret `quality_flags` and the heads.
pub fn starpipe_json(thresholds: &Thresholds, heads: &[Head]) -> String {
    let bits: serde_json::Map<String, serde_json::Value> = ALL
        .iter()
        .map(|f| {
            (
                f.name().to_string(),
                serde_json::json!({"bit": f.bit(), "class": f.class().name(), "description": f.description()}),
            )
        })
        .collect();
    let heads: Vec<serde_json::Value> = heads
        .iter()
        .map(|h| {
            serde_json::json!({
                "predictions": h.dir.display().to_string(),
                "head": h.name,
                "default": h.is_default,
                "calibrated": h.limits.calibrated,
                "model": h.model,
                "ood_threshold": h.limits.ood_threshold,
                "chi2_threshold": h.limits.chi2_threshold,
                "label_p005": h.limits.label_p005,
                "label_p995": h.limits.label_p995,
                "error_model": h.error_model,
            })
        })
        .collect();
    serde_json::json!({
        "format": "starpipe-catalog/2",
        "version": crate::VERSION,
        "flag_bits": bits,
        "fatal_mask": FATAL_MASK,
        "flag_column": super::flags::COLUMN,
        "classes": Class::ALL.iter().map(|c| serde_json::json!({"name": c.name(), "mask": c.mask()})).collect::<Vec<_>>(),
        "cuts": cuts(),
        "thresholds": thresholds,
        "heads": heads,
    })
    .to_string()
}

/// The published cuts, each with what it keeps and how to write it in the tools users bring.
fn cuts() -> serde_json::Map<String, serde_json::Value> {
    CUTS.iter()
        .map(|c| {
            (
                c.name.to_string(),
                serde_json::json!({
                    "keeps": c.keeps,
                    "allows_classes": c.allows.iter().map(|a| a.name()).collect::<Vec<_>>(),
                    "sql": c.sql(),
                    "polars": c.polars(),
                    "pandas": c.pandas(),
                    "topcat": c.topcat(),
                }),
            )
        })
        .collect()
}

/// A unit as astropy spells it: the VOUnit `log(cm.s**-2)` is astropy's `dex(cm/s2)` (astropy
/// reads the former as an unrecognised unit); `dex`, `K`, `deg`, `km/s`, `mag`, `d` are the same.
fn astropy_unit(unit: &str) -> &str {
    if unit == "log(cm.s**-2)" { "dex(cm/s2)" } else { unit }
}

/// astropy's `table_meta_yaml` (JSON is YAML): every column with its unit, description and UCD,
/// which a plain `Table.read` applies. Every column must be listed, or astropy fails to read.
fn astropy_meta(schema: &TableSchema) -> String {
    let columns: Vec<serde_json::Value> = schema
        .columns
        .iter()
        .map(|c| {
            let mut entry = serde_json::json!({"name": c.name, "description": c.description});
            if !c.unit.is_empty() {
                entry["unit"] = astropy_unit(&c.unit).into();
            }
            if let Some(ucd) = &c.ucd {
                entry["meta"] = serde_json::json!({"ucd": ucd});
            }
            entry
        })
        .collect();
    serde_json::json!({"datatype": columns}).to_string()
}

/// Key-value metadata written into every catalogue Parquet file.
pub fn key_values(
    schema: &TableSchema,
    thresholds: &Thresholds,
    heads: &[Head],
    widths: &StringWidths,
) -> Vec<(String, String)> {
    let mut kv = vec![
        ("IVOA.VOTable-Parquet.version".into(), "1.0".into()),
        ("IVOA.VOTable-Parquet.content".into(), votable(schema, widths)),
        ("starpipe".into(), starpipe_json(thresholds, heads)),
        ("table_meta_yaml".into(), astropy_meta(schema)),
    ];
    kv.extend(
        schema
            .columns
            .iter()
            .filter(|c| c.type_name == "utf8")
            .map(|c| (format!("table::len::{}", c.name), width(widths, &c.name).to_string())),
    );
    kv
}
