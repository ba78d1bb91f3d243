//! Shards are what `schemas/` says, and polars reads them as they are.

use crate::common::*;
use polars::prelude::*;
use starpipe::ingest::Survey;
use starpipe::schema;

#[test]
fn written_shards_match_the_documented_schema_and_read_in_polars() {
    let out = tempfile::tempdir().unwrap();
    ingest(Survey::Lamost, &data("real/lamost/coadd_bintable"), out.path());
    let path = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("spectra-"))
        .unwrap();
    let df = ParquetReader::new(std::fs::File::open(&path).unwrap()).finish().unwrap();
    let documented: Vec<String> = schema::normalized_spectra().columns.iter().map(|c| c.name.clone()).collect();
    let written: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(written, documented);
    assert_eq!(df.column("flux").unwrap().dtype(), &DataType::Array(Box::new(DataType::Float32), 3909));
    assert_eq!(df.column("ivar").unwrap().dtype(), &DataType::Array(Box::new(DataType::Float32), 3909));
    assert_eq!(df.column("obsid").unwrap().dtype(), &DataType::Int64);

    // Units and descriptions travel in the Arrow field metadata; grid and version in the file metadata.
    let kv = starpipe::io::read_key_value_metadata(&path).unwrap();
    let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(get("starpipe.version"), starpipe::VERSION);
    let grid: serde_json::Value = serde_json::from_str(&get("starpipe.grid")).unwrap();
    assert_eq!(grid["npix"], 3909);
    assert_eq!(grid["log10_lambda0"], 3.5682);
    let file = std::fs::File::open(&path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let ra = reader.schema().field_with_name("ra").unwrap().clone();
    assert_eq!(ra.metadata().get("unit").map(String::as_str), Some("deg"));
    assert!(reader.metadata().row_groups().iter().all(|rg| rg.num_rows() <= 4096));

    // The row-group cap holds where it binds: 6 spectra at --row-group-rows 2 make 3 groups of 2.
    let capped = tempfile::tempdir().unwrap();
    let opts = options(Survey::Lamost, &data("real/lamost/coadd_bintable"), capped.path()).with_row_group_rows(2);
    starpipe::ingest::run_ingest(&opts).unwrap();
    let path = std::fs::read_dir(capped.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("spectra-"))
        .unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap();
    let groups: Vec<i64> = reader.metadata().row_groups().iter().map(|rg| rg.num_rows()).collect();
    assert_eq!(groups.iter().sum::<i64>(), df.height() as i64);
    assert!(groups.len() >= 3 && groups.iter().all(|&n| n <= 2), "{groups:?}");
}

#[test]
fn specclip_window_writes_1462_pixels() {
    let out = tempfile::tempdir().unwrap();
    let opts = starpipe::ingest::IngestOptions::new(
        Survey::Lamost,
        data("real/lamost/image5xN"),
        out.path(),
        starpipe::preprocess::PreprocessConfig::new(starpipe::grid::LogGrid::preset(
            starpipe::grid::GridPreset::Specclip,
        )),
    )
    .with_progress(false);
    starpipe::ingest::run_ingest(&opts).unwrap();
    let df = read_spectra(out.path());
    assert_eq!(df.height(), 3);
    assert_eq!(df.column("flux").unwrap().dtype(), &DataType::Array(Box::new(DataType::Float32), 1462));
}

/// What a shard says about itself: the input range it covers (contiguous, in order, all inputs),
/// the fingerprint of inputs + settings + version, and the preprocessing it was made with.
#[test]
fn shards_record_their_input_range_fingerprint_and_preprocessing() {
    let out = tempfile::tempdir().unwrap();
    let opts = options(Survey::Lamost, &data("real/lamost"), out.path()).with_shard_size(4);
    let summary = starpipe::ingest::run_ingest(&opts).unwrap();
    let mut next = 0usize;
    let mut fingerprints = std::collections::BTreeSet::new();
    for name in &summary.shards {
        let kv = starpipe::io::read_key_value_metadata(&out.path().join(name)).unwrap();
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
        let (start, end) = get("starpipe.ingest.inputs")
            .split_once("..")
            .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
            .unwrap();
        assert_eq!(start, next, "{name} starts where the previous shard ended");
        assert!(end > start);
        next = end;
        let fp = get("starpipe.ingest.fingerprint");
        assert!(fp.len() == 64 && fp.chars().all(|c| c.is_ascii_hexdigit()), "{fp}");
        fingerprints.insert(fp);
        let pre: starpipe::preprocess::PreprocessConfig = serde_json::from_str(&get("starpipe.preprocess")).unwrap();
        assert_eq!(pre, opts.preprocess, "{name}");
    }
    assert!(summary.shards.len() >= 3, "{:?}", summary.shards);
    assert_eq!(next as u64, summary.inputs, "the ranges cover every input");
    assert_eq!(fingerprints.len(), 1, "one run, one fingerprint");
}
