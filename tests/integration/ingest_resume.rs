//! Re-runs resume and reproduce; job-array tasks partition the inputs.

use crate::common::*;
use starpipe::artifacts::ShardSpec;
use starpipe::ingest::{Survey, run_ingest};
use std::collections::BTreeMap;
use std::path::Path;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn an_interrupted_run_resumes_to_byte_identical_shards() {
    let dir = tempfile::tempdir().unwrap();
    let input = data("lamost_dr10_pylasp");
    let full = dir.path().join("full");
    let opts = |out: &Path| options(Survey::Lamost, &input, out).with_shard_size(4).with_row_group_rows(2);
    let s = run_ingest(&opts(&full)).unwrap();
    assert_eq!(s.shards.len(), 7, "25 spectra in shards of 4");
    let reference = files(&full);
    assert_eq!(reference.len(), 14, "7 shards + 7 report parts");

    // Simulate a kill between shard 3's rename and its report part's (the shard is renamed first,
    // so the report never lists spectra that are not on disk): shard 3 without its report part,
    // whose temporary is left behind, and a half-written shard 4.
    let cut = dir.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    for (name, bytes) in &reference {
        let k: usize = name.trim_end_matches(".parquet").rsplit('-').next().unwrap().parse().unwrap();
        if k <= 2 || (k == 3 && name.starts_with("spectra-")) {
            std::fs::write(cut.join(name), bytes).unwrap();
        }
    }
    std::fs::write(
        cut.join("report-00000-of-00001-00003.parquet.tmp"),
        &reference["report-00000-of-00001-00003.parquet"],
    )
    .unwrap();
    std::fs::write(cut.join("spectra-00000-of-00001-00004.parquet.tmp"), b"partial").unwrap();
    let resumed = run_ingest(&opts(&cut)).unwrap();
    assert_eq!(resumed.shards_resumed, 3);
    assert_eq!(resumed.counts, s.counts, "the summary covers resumed and new shards alike");
    assert_eq!(files(&cut), reference, "resumed output must equal an uninterrupted run, byte for byte");
    assert!(!cut.join("spectra-00000-of-00001-00004.parquet.tmp").exists());
    assert!(!cut.join("report-00000-of-00001-00003.parquet.tmp").exists());

    // A finished run re-run does nothing and changes nothing.
    let again = run_ingest(&opts(&cut)).unwrap();
    assert_eq!(again.shards_resumed, 7);
    assert_eq!(files(&cut), reference);
}

#[test]
fn different_settings_in_the_same_output_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = data("real/lamost");
    run_ingest(&options(Survey::Lamost, &input, dir.path())).unwrap();
    let err = run_ingest(&options(Survey::Lamost, &input, dir.path()).with_shard_size(3)).unwrap_err();
    assert!(err.to_string().contains("different ingest"), "{err}");
}

#[test]
fn job_array_tasks_partition_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = data("lamost_dr10_pylasp");
    let mut ids = Vec::new();
    for i in 0..3 {
        let s = run_ingest(&options(Survey::Lamost, &input, dir.path()).with_shard(ShardSpec { index: i, count: 3 }))
            .unwrap();
        assert_eq!(s.inputs, [9, 8, 8][i]);
    }
    let df = read_spectra(dir.path());
    ids.extend(strings(&df, "spectrum_id"));
    ids.sort();
    let whole = tempfile::tempdir().unwrap();
    ingest(Survey::Lamost, &input, whole.path());
    let mut all = strings(&read_spectra(whole.path()), "spectrum_id");
    all.sort();
    assert_eq!(ids, all);
    // Across the tasks' report parts, every input has exactly one file row.
    let mut paths: Vec<String> =
        read_report(dir.path()).into_iter().filter(|r| r.level == "file").map(|r| r.input_path).collect();
    paths.sort();
    let n = paths.len();
    paths.dedup();
    assert_eq!((n, paths.len()), (25, 25), "one file row per input across tasks");
}
