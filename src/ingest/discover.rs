//! Which files to ingest: a directory walk or a manifest (this task's share:
//! [`crate::artifacts::ShardSpec`]).

use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;

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
