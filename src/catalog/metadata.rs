//! File-level metadata of every catalogue file: the VOParquet 1.0 keys (a data-less VOTable with
//! one FIELD per column, so astropy and TOPCAT see units and UCDs) and the `starpipe` JSON key
//! (flag bits, thresholds, heads).

use super::flags::{ALL, CUTS, Class, FATAL_MASK, Thresholds};
use super::rows::Head;
use crate::schema::TableSchema;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn votable_type(t: &str) -> (&'static str, &'static str) {
    match t {
        // A bounded variable length: astropy reads "*" as object columns and then cannot stack
        // them with the data's strings; "N*" reads as fixed-width strings, which it can.
        "utf8" => ("char", " arraysize=\"128*\""),
        "bool" => ("boolean", ""),
        "int32" | "uint32" => ("int", ""),
        "int64" => ("long", ""),
        "float32" => ("float", ""),
        _ => ("double", ""),
    }
}

/// The VOTable document of `IVOA.VOTable-Parquet.content`.
pub fn votable(schema: &TableSchema) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\n<RESOURCE type=\"results\">\n<TABLE name=\"starpipe_catalog\">\n",
    );
    for c in &schema.columns {
        let (dt, arraysize) = votable_type(&c.type_name);
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

/// Key-value metadata written into every catalogue Parquet file.
pub fn key_values(schema: &TableSchema, thresholds: &Thresholds, heads: &[Head]) -> Vec<(String, String)> {
    vec![
        ("IVOA.VOTable-Parquet.version".into(), "1.0".into()),
        ("IVOA.VOTable-Parquet.content".into(), votable(schema)),
        ("starpipe".into(), starpipe_json(thresholds, heads)),
    ]
}
