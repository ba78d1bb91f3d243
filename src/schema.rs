//! The table schemas in `schemas/*.toml` are the documentation and the source of truth: the Arrow
//! schema of every table starpipe writes is built from them, field metadata included.

use arrow::datatypes::{DataType, Field, Schema};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

pub const NORMALIZED_SPECTRA_TOML: &str = include_str!("../schemas/normalized_spectra.toml");
pub const INGEST_REPORT_TOML: &str = include_str!("../schemas/ingest_report.toml");
pub const MOCK_LAMOST_LABELS_TOML: &str = include_str!("../schemas/mock_lamost_labels.toml");
pub const MOCK_DESI_LABELS_TOML: &str = include_str!("../schemas/mock_desi_labels.toml");
pub const PREDICTIONS_TOML: &str = include_str!("../schemas/predictions.toml");
pub const EVALUATION_METRICS_TOML: &str = include_str!("../schemas/evaluation_metrics.toml");
pub const EMBEDDINGS_TOML: &str = include_str!("../schemas/embeddings.toml");
pub const CATALOG_TOML: &str = include_str!("../schemas/catalog.toml");
pub const CATALOG_STARS_TOML: &str = include_str!("../schemas/catalog_stars.toml");
pub const EVALUATION_PREDICTIONS_TOML: &str = include_str!("../schemas/evaluation_predictions.toml");
pub const REPEATS_TOML: &str = include_str!("../schemas/repeats.toml");
pub const CROSSMATCH_TOML: &str = include_str!("../schemas/crossmatch.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<ColumnSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default)]
    pub nullable: bool,
    pub unit: String,
    /// IVOA UCD (catalogue tables).
    #[serde(default)]
    pub ucd: Option<String>,
    pub description: String,
}

impl TableSchema {
    pub fn parse(toml_text: &str) -> Self {
        toml::from_str(toml_text).expect("schemas/*.toml are compiled in and checked by tests")
    }

    /// Arrow schema; `npix` sizes the `float32[npix]` columns.
    pub fn to_arrow(&self, npix: usize) -> Arc<Schema> {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let mut meta = HashMap::from([
                    ("unit".to_string(), c.unit.clone()),
                    ("description".to_string(), c.description.clone()),
                ]);
                if let Some(ucd) = &c.ucd {
                    meta.insert("ucd".to_string(), ucd.clone());
                }
                Field::new(&c.name, arrow_type(&c.type_name, npix), c.nullable).with_metadata(meta)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// The element field of fixed-size list columns (Arrow's conventional name and nullability).
pub fn list_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Float32, false))
}

fn arrow_type(name: &str, npix: usize) -> DataType {
    match name {
        "utf8" => DataType::Utf8,
        "bool" => DataType::Boolean,
        "int32" => DataType::Int32,
        "uint32" => DataType::UInt32,
        "int64" => DataType::Int64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "float32[npix]" => DataType::FixedSizeList(list_item_field(), npix as i32),
        other => panic!("unknown column type '{other}' in schemas/"),
    }
}

/// Every table's column names, one constant per column (`columns::catalog::TEFF` is `"teff"`, with
/// its description and unit as documentation), generated from `schemas/*.toml` by `build.rs`: code
/// names a column through the schema that defines it, and a new column touches one file.
pub mod columns {
    include!(concat!(env!("OUT_DIR"), "/columns.rs"));
}

pub fn normalized_spectra() -> TableSchema {
    TableSchema::parse(NORMALIZED_SPECTRA_TOML)
}

pub fn ingest_report() -> TableSchema {
    TableSchema::parse(INGEST_REPORT_TOML)
}

pub fn mock_lamost_labels() -> TableSchema {
    TableSchema::parse(MOCK_LAMOST_LABELS_TOML)
}

pub fn mock_desi_labels() -> TableSchema {
    TableSchema::parse(MOCK_DESI_LABELS_TOML)
}

pub fn predictions() -> TableSchema {
    TableSchema::parse(PREDICTIONS_TOML)
}

pub fn evaluation_metrics() -> TableSchema {
    TableSchema::parse(EVALUATION_METRICS_TOML)
}

pub fn embeddings() -> TableSchema {
    TableSchema::parse(EMBEDDINGS_TOML)
}

pub fn catalog() -> TableSchema {
    TableSchema::parse(CATALOG_TOML)
}

pub fn catalog_stars() -> TableSchema {
    TableSchema::parse(CATALOG_STARS_TOML)
}

pub fn repeats() -> TableSchema {
    TableSchema::parse(REPEATS_TOML)
}

pub fn evaluation_predictions() -> TableSchema {
    TableSchema::parse(EVALUATION_PREDICTIONS_TOML)
}

pub fn crossmatch() -> TableSchema {
    TableSchema::parse(CROSSMATCH_TOML)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_with_unique_documented_columns() {
        for t in [
            normalized_spectra(),
            ingest_report(),
            mock_lamost_labels(),
            mock_desi_labels(),
            predictions(),
            evaluation_metrics(),
            evaluation_predictions(),
            catalog(),
            catalog_stars(),
            embeddings(),
            repeats(),
            crossmatch(),
        ] {
            let arrow = t.to_arrow(10);
            let mut names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), t.columns.len(), "duplicate column in {}", t.name);
            assert!(t.columns.iter().all(|c| !c.description.is_empty()), "undocumented column in {}", t.name);
            assert_eq!(arrow.fields().len(), t.columns.len());
        }
    }

    #[test]
    fn the_column_constants_are_the_schemas_names() {
        let has = |t: TableSchema, name: &str| t.columns.iter().any(|c| c.name == name);
        assert!(has(catalog(), columns::catalog::TEFF));
        assert!(has(catalog(), columns::catalog::_HEALPIX_29));
        assert!(has(mock_desi_labels(), columns::mock_desi_labels::TARGETID));
        assert!(has(normalized_spectra(), columns::normalized_spectra::FLUX));
        assert_eq!(columns::predictions::FEH_ERR, "feh_err");
    }
}
