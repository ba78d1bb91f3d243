//! The fuzz benchmark: a seeded corpus of damaged real survey files (`starpipe::fuzz`), ingested by
//! the starpipe binary in one process per batch, judged by `starpipe::fuzz::check_ingest_output`.
//!
//! Usage: fuzz_ingest --survey lamost|desi --n N --seed S --work DIR --starpipe BIN [--batch B]
//!                    [--timeout-s T] SOURCE...
//! LAMOST sources are files; DESI sources are coadds (a `redrock-*` file beside one is its pair).
//! Prints one JSON line: mutants, batches, crashes (a process killed by a signal), hangs (past
//! the timeout), the merged check and the wall time; exits non-zero when a promise broke.

use starpipe::fuzz::{CorpusCheck, Mutant, check_ingest_output, desi_corpus, lamost_corpus};
use starpipe::ingest::desi::redrock_companion;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fuzz_ingest --survey lamost|desi --n N --seed S --work DIR --starpipe BIN SOURCE...";
    let survey = arg(&args, "--survey").ok_or(usage)?;
    let n: usize = arg(&args, "--n").ok_or(usage)?.parse()?;
    let seed: u64 = arg(&args, "--seed").unwrap_or_else(|| "1".into()).parse()?;
    let work = PathBuf::from(arg(&args, "--work").ok_or(usage)?);
    let bin = arg(&args, "--starpipe").ok_or(usage)?;
    let batch: usize = arg(&args, "--batch").unwrap_or_else(|| "1000".into()).parse()?;
    let timeout = Duration::from_secs(arg(&args, "--timeout-s").unwrap_or_else(|| "600".into()).parse()?);
    let flags = ["--survey", "--n", "--seed", "--work", "--starpipe", "--batch", "--timeout-s"];
    let sources: Vec<PathBuf> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || !flags.contains(&args[i - 1].as_str())))
        .map(|(_, a)| PathBuf::from(a))
        .collect();

    let started = Instant::now();
    let (mut crashes, mut hangs, mut batches) = (0usize, 0usize, 0usize);
    let mut total = CorpusCheck::default();
    let mut first = 0;
    while first < n {
        let count = batch.min(n - first);
        let input = work.join(format!("in-{batches:04}"));
        let out = work.join(format!("out-{batches:04}"));
        // Each batch draws other streams: mutant ids continue across batches.
        let mutants: Vec<Mutant> = match survey.as_str() {
            "lamost" => lamost_corpus(&sources, &input, first..first + count, seed)?,
            "desi" => {
                let pairs: Vec<_> =
                    sources.iter().map(|c| (c.clone(), redrock_companion(c).filter(|r| r.exists()))).collect();
                desi_corpus(&pairs, &input, first..first + count, seed)?
            }
            other => return Err(format!("unknown survey {other}").into()),
        };
        // A manifest, since a directory walk finds coadds only and the corpus has per-exposure files.
        let manifest = work.join(format!("in-{batches:04}.manifest"));
        std::fs::write(&manifest, mutants.iter().map(|m| format!("{}\n", m.file.display())).collect::<String>())?;
        let mut child = Command::new(&bin)
            .args(["ingest", "--survey", &survey, "--no-progress"])
            .arg("--input")
            .arg(&manifest)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if t0.elapsed() > timeout {
                child.kill()?;
                child.wait()?;
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        match status {
            None => hangs += 1,
            Some(s) if s.code().is_none() => crashes += 1,
            Some(_) => {}
        }
        let c = check_ingest_output(&out, &mutants)?;
        total.accounted += c.accounted;
        total.missing.extend(c.missing);
        total.duplicated.extend(c.duplicated);
        total.unknown.extend(c.unknown);
        total.without_reason += c.without_reason;
        total.spectra += c.spectra;
        total.bad_flux += c.bad_flux;
        total.bad_ivar += c.bad_ivar;
        for (k, v) in c.files {
            *total.files.entry(k).or_default() += v;
        }
        first += count;
        batches += 1;
    }
    let ok = total.holds() && crashes == 0 && hangs == 0;
    let line = serde_json::json!({
        "survey": survey,
        "mutants": n,
        "seed": seed,
        "batches": batches,
        "crashes": crashes,
        "hangs": hangs,
        "accounted": total.accounted,
        "missing": total.missing.len(),
        "duplicated": total.duplicated.len(),
        "without_reason": total.without_reason,
        "files": total.files,
        "spectra": total.spectra,
        "non_finite_flux": total.bad_flux,
        "bad_ivar": total.bad_ivar,
        "wall_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "ok": ok,
    });
    println!("{line}");
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
