//! Which files to ingest: a directory walk or a manifest, then this task's deterministic share.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Survey {
    /// LAMOST LRS single-spectrum files (spec-*.fits[.gz], any *.fits).
    Lamost,
    /// DESI coadd-*.fits with redrock-*.fits beside them.
    Desi,
}

impl Survey {
    pub fn as_str(self) -> &'static str {
        match self {
            Survey::Lamost => "lamost",
            Survey::Desi => "desi",
        }
    }

    /// Whether a file found in a directory walk is an input of this survey.
    pub fn wants(self, file_name: &str) -> bool {
        let lower = file_name.to_ascii_lowercase();
        let fits_like = [".fits", ".fits.gz", ".fit", ".fit.gz", ".fits.fz"].iter().any(|s| lower.ends_with(s));
        match self {
            Survey::Lamost => fits_like && !lower.starts_with('.'),
            Survey::Desi => fits_like && lower.starts_with("coadd-"),
        }
    }
}

/// One input file: where to open it and how to name it in outputs (as the user gave it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub display: String,
    /// Set when the directory walk could not read this entry (broken link, unreadable folder):
    /// the input is then reported as failed with this reason instead of stopping the run.
    pub walk_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("input {0} does not exist")]
    Missing(PathBuf),
    #[error("cannot read manifest {path}: {source}")]
    Manifest { path: PathBuf, source: std::io::Error },
    #[error("cannot walk {path}: {source}")]
    Walk { path: PathBuf, source: walkdir::Error },
    #[error("no {survey} input files in {path}{hint}")]
    NoInputs { survey: &'static str, path: PathBuf, hint: String },
}

/// Why a directory holds no input for `survey`, when its files say: the other survey's names,
/// or nothing FITS-like at all.
fn no_input_hint(survey: Survey, dir: &Path) -> String {
    let names: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.file_name().to_string_lossy().to_ascii_lowercase())
        .collect();
    let other = match survey {
        Survey::Lamost => Survey::Desi,
        Survey::Desi => Survey::Lamost,
    };
    if names.is_empty() {
        " (the directory is empty)".into()
    } else if names.iter().any(|n| other.wants(n)) {
        format!(
            " ({} file(s) there look like {} files: --survey {}?)",
            names.iter().filter(|n| other.wants(n)).count(),
            other.as_str(),
            other.as_str()
        )
    } else if survey == Survey::Desi && names.iter().any(|n| n.starts_with("spectra-") || n.starts_with("redrock-")) {
        " (DESI coadds are read from coadd-*.fits; per-exposure spectra-*.fits only from a manifest, and redrock-*.fits beside a coadd as its companion)".into()
    } else {
        format!(" ({} file(s), none named like {} FITS files)", names.len(), survey.as_str())
    }
}

impl Input {
    fn new(path: PathBuf, display: String) -> Self {
        Self { path, display, walk_error: None }
    }
}

/// Lists the inputs under `input`: every matching file below a directory, sorted by path, or the
/// lines of a manifest file (one path per line; blank lines and `#` comments ignored; relative paths
/// are relative to the manifest's directory), in manifest order.
pub fn discover(survey: Survey, input: &Path) -> Result<Vec<Input>, DiscoverError> {
    if !input.exists() {
        return Err(DiscoverError::Missing(input.to_path_buf()));
    }
    if input.is_dir() {
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(input).follow_links(true).sort_by_file_name() {
            match entry {
                Ok(entry) => {
                    let name = entry.file_name().to_string_lossy();
                    if entry.file_type().is_file() && survey.wants(&name) {
                        out.push(Input::new(entry.path().to_path_buf(), entry.path().display().to_string()));
                    }
                }
                // The root itself unreadable is a bad command line; anything below it is one bad input.
                Err(e) if e.depth() == 0 => return Err(DiscoverError::Walk { path: input.to_path_buf(), source: e }),
                Err(e) => {
                    let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| input.to_path_buf());
                    tracing::warn!(path = %path.display(), error = %e, "cannot read directory entry");
                    out.push(Input {
                        display: path.display().to_string(),
                        path,
                        walk_error: Some(format!("cannot read: {e}")),
                    });
                }
            }
        }
        if out.is_empty() {
            let hint = no_input_hint(survey, input);
            return Err(DiscoverError::NoInputs { survey: survey.as_str(), path: input.to_path_buf(), hint });
        }
        return Ok(out);
    }
    let text =
        std::fs::read_to_string(input).map_err(|e| DiscoverError::Manifest { path: input.to_path_buf(), source: e })?;
    let base = input.parent().unwrap_or(Path::new("."));
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let p = Path::new(line);
        let path = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        // The same file twice would write the same spectra twice; keep its first mention.
        if !seen.insert(path.clone()) {
            tracing::warn!(path = line, manifest = %input.display(), "listed more than once; ingesting it once");
            continue;
        }
        out.push(Input::new(path, line.to_string()));
    }
    if out.is_empty() {
        let hint = " (the manifest lists no file)".to_string();
        return Err(DiscoverError::NoInputs { survey: survey.as_str(), path: input.to_path_buf(), hint });
    }
    Ok(out)
}

/// `--shard i/N`: task `i` (0-based) of `N` takes inputs `i, i+N, i+2N, …` of the ordered list, so
/// tasks get equal shares even when file sizes drift along the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

impl Default for ShardSpec {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl FromStr for ShardSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("'{s}' is not of the form i/N"))?;
        let index: usize = i.trim().parse().map_err(|_| format!("shard index '{i}' is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("shard count '{n}' is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= i < N"));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl ShardSpec {
    pub fn select<T: Clone>(&self, all: &[T]) -> Vec<T> {
        all.iter().skip(self.index).step_by(self.count).cloned().collect()
    }

    /// File-name tag, e.g. `00003-of-00010`.
    pub fn tag(&self) -> String {
        format!("{:05}-of-{:05}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_inputs() {
        let all: Vec<usize> = (0..23).collect();
        let mut union: Vec<usize> = (0..4).flat_map(|i| ShardSpec { index: i, count: 4 }.select(&all)).collect();
        union.sort();
        assert_eq!(union, all);
        assert_eq!(ShardSpec { index: 1, count: 4 }.select(&all)[..3], [1, 5, 9]);
    }

    #[test]
    fn shard_spec_parses_and_rejects() {
        assert_eq!("2/8".parse::<ShardSpec>(), Ok(ShardSpec { index: 2, count: 8 }));
        assert!("8/8".parse::<ShardSpec>().is_err());
        assert!("x/8".parse::<ShardSpec>().is_err());
        assert!("3".parse::<ShardSpec>().is_err());
    }

    #[test]
    fn manifest_duplicates_are_dropped_and_paths_resolved_against_it() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("m.txt");
        std::fs::write(&manifest, "# comment\na.fits\n\nb.fits\na.fits\n/abs/c.fits\n").unwrap();
        let inputs = discover(Survey::Lamost, &manifest).unwrap();
        let shown: Vec<&str> = inputs.iter().map(|i| i.display.as_str()).collect();
        assert_eq!(shown, ["a.fits", "b.fits", "/abs/c.fits"]);
        assert_eq!(inputs[0].path, dir.path().join("a.fits"));
    }

    #[test]
    fn a_broken_link_in_a_directory_is_an_input_that_fails_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.fits"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("missing"), dir.path().join("b.fits")).unwrap();
        let inputs = discover(Survey::Lamost, dir.path()).unwrap();
        assert_eq!(inputs.len(), 2);
        assert!(inputs[0].walk_error.is_none());
        assert!(inputs[1].walk_error.is_some(), "{inputs:?}");
    }

    #[test]
    fn survey_file_patterns() {
        assert!(Survey::Lamost.wants("spec-55859-F5902_sp01-005.fits.gz"));
        assert!(Survey::Lamost.wants("3703110.fits"));
        assert!(!Survey::Lamost.wants("labels.csv"));
        assert!(Survey::Desi.wants("coadd-sv3-bright-10145.fits"));
        assert!(!Survey::Desi.wants("redrock-sv3-bright-10145.fits"));
    }
}
