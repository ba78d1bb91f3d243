//! The MILES library shipped in `data/miles/`, compiled into the binary, and the shipped emulator's
//! split of its stars (`data/emulator/*_ids.txt`), so the calibration every shipped pipeline ends in
//! runs from any directory, on a compute node with nothing beside the binary.
//!
//! A pipeline names them `library = "builtin:miles"` and `library_ids = "builtin:held-out"` (stars
//! the emulator was never fitted on: calibration) or `"builtin:training"` (stars it was fitted on,
//! inside the mock's label domain: training renders).

use super::MockError;
use super::library::Library;
use std::path::{Path, PathBuf};

/// `--library` value naming the compiled-in MILES v9.1 library.
pub const MILES: &str = "builtin:miles";

/// The files of `data/miles/` (provenance and checksums in its PROVENANCE.md).
const MILES_FILES: [(&str, &[u8]); 7] = [
    ("miles_v9.1_flux_part1of6.npz", include_bytes!("../../data/miles/miles_v9.1_flux_part1of6.npz")),
    ("miles_v9.1_flux_part2of6.npz", include_bytes!("../../data/miles/miles_v9.1_flux_part2of6.npz")),
    ("miles_v9.1_flux_part3of6.npz", include_bytes!("../../data/miles/miles_v9.1_flux_part3of6.npz")),
    ("miles_v9.1_flux_part4of6.npz", include_bytes!("../../data/miles/miles_v9.1_flux_part4of6.npz")),
    ("miles_v9.1_flux_part5of6.npz", include_bytes!("../../data/miles/miles_v9.1_flux_part5of6.npz")),
    ("miles_v9.1_flux_part6of6.npz", include_bytes!("../../data/miles/miles_v9.1_flux_part6of6.npz")),
    ("miles_v9.1_params.csv", include_bytes!("../../data/miles/miles_v9.1_params.csv")),
];

/// `--library-ids` values naming the shipped emulator's split of MILES, with their id lists.
pub const ID_LISTS: [(&str, &str); 2] = [
    ("builtin:held-out", include_str!("../../data/emulator/held_out_ids.txt")),
    ("builtin:training", include_str!("../../data/emulator/training_ids.txt")),
];

/// True when `name` is a built-in name (`builtin:…`) rather than a path.
pub fn is_builtin(name: &Path) -> bool {
    name.to_str().is_some_and(|s| s.starts_with("builtin:"))
}

/// The library a `--library` value names: the compiled-in MILES or a directory.
pub fn open_library(name: &Path) -> Result<Library, MockError> {
    if !is_builtin(name) {
        return Library::open(name);
    }
    if name != Path::new(MILES) {
        return Err(library_error(name, unknown(&[MILES])));
    }
    // The npz reader wants files: unpack into a private temporary directory, read, delete.
    let dir = tempfile::tempdir().map_err(|e| library_error(name, format!("cannot unpack: {e}")))?;
    for (file, bytes) in MILES_FILES {
        std::fs::write(dir.path().join(file), bytes).map_err(|e| library_error(name, format!("cannot unpack: {e}")))?;
    }
    let mut library = Library::open(dir.path())?;
    library.dir = PathBuf::from(MILES);
    Ok(library)
}

/// The text of the id list a `--library-ids` value names: a built-in list or a file.
pub fn id_list_text(name: &Path) -> Result<String, MockError> {
    if !is_builtin(name) {
        return std::fs::read_to_string(name).map_err(|e| id_list_error(name, cannot_read(e)));
    }
    ID_LISTS
        .iter()
        .find(|(n, _)| Path::new(n) == name)
        .map(|(_, text)| text.to_string())
        .ok_or_else(|| id_list_error(name, unknown(&ID_LISTS.map(|(n, _)| n))))
}

fn unknown(known: &[&str]) -> String {
    format!("no such built-in; known: {}", known.join(", "))
}

fn cannot_read(e: std::io::Error) -> String {
    format!("cannot read: {e}")
}

fn library_error(name: &Path, message: String) -> MockError {
    MockError::Library { path: name.to_path_buf(), message }
}

fn id_list_error(name: &Path, message: String) -> MockError {
    MockError::IdList { path: name.to_path_buf(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_miles_is_the_shipped_directory() {
        let builtin = open_library(Path::new(MILES)).unwrap();
        let dir = Library::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/miles")).unwrap();
        assert_eq!(builtin.dir, Path::new(MILES));
        assert_eq!(builtin.stars.len(), dir.stars.len());
        for (a, b) in builtin.stars.iter().zip(&dir.stars) {
            assert_eq!(
                (a.id, a.labels.teff, a.labels.logg, a.labels.feh),
                (b.id, b.labels.teff, b.labels.logg, b.labels.feh)
            );
        }
        assert_eq!(builtin.rest_spectrum(7).flux, dir.rest_spectrum(7).flux);
    }

    #[test]
    fn builtin_id_lists_are_the_shipped_files_and_unknown_names_are_refused() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/emulator");
        for (name, file) in [("builtin:held-out", "held_out_ids.txt"), ("builtin:training", "training_ids.txt")] {
            assert_eq!(id_list_text(Path::new(name)).unwrap(), std::fs::read_to_string(root.join(file)).unwrap());
        }
        let e = id_list_text(Path::new("builtin:heldout")).unwrap_err().to_string();
        assert!(e.contains("builtin:heldout") && e.contains("builtin:held-out"), "{e}");
        assert!(e.starts_with("library id list"), "said of the id list, not of a library: {e}");
        let e = open_library(Path::new("builtin:elodie")).unwrap_err().to_string();
        assert!(e.contains("builtin:elodie") && e.contains(MILES), "{e}");
        // A path that merely contains the word is a path.
        assert!(open_library(Path::new("no/builtin:miles")).is_err());
    }
}
