//! Write to a temporary name beside the final one, then rename: a reader, or a resumed run, never
//! sees half a file or half a directory under its final name.

use super::WriteError;
use std::path::{Path, PathBuf};

/// The temporary name of `final_path` while it is being written (`NAME.tmp`, same directory, so
/// the rename stays on one file system).
pub fn tmp_path(final_path: &Path) -> PathBuf {
    let mut name = final_path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    final_path.with_file_name(name)
}

/// Runs `write` on the temporary name of `final_path` (a file or a directory), then renames the
/// result into place. When `write` fails, what it left at the temporary name is removed and its
/// error returned.
pub fn write_atomically<T, E: From<WriteError>>(
    final_path: &Path,
    write: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    write_atomically_via(&tmp_path(final_path), final_path, write)
}

/// [`write_atomically`] through an explicit temporary path (mock surveys use hidden names, so a
/// directory walk never picks up a file being written).
pub fn write_atomically_via<T, E: From<WriteError>>(
    tmp: &Path,
    final_path: &Path,
    write: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    match write(tmp) {
        Ok(value) => {
            std::fs::rename(tmp, final_path).map_err(|e| WriteError::io(final_path, e))?;
            Ok(value)
        }
        Err(e) => {
            remove_leftover(tmp);
            Err(e)
        }
    }
}

/// Renames the temporary file of `final_path` into place: the last step of a streaming writer
/// that wrote to [`tmp_path`] itself.
pub fn commit(final_path: &Path) -> Result<(), WriteError> {
    std::fs::rename(tmp_path(final_path), final_path).map_err(|e| WriteError::io(final_path, e))
}

/// Writes `bytes` to `final_path` atomically.
pub fn write_bytes_atomically(final_path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomically(final_path, |tmp| std::fs::write(tmp, bytes).map_err(|e| WriteError::io(tmp, e)))
}

fn remove_leftover(tmp: &Path) {
    let _ = if tmp.is_dir() { std::fs::remove_dir_all(tmp) } else { std::fs::remove_file(tmp) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_neither_the_final_nor_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("table.parquet");
        let r: Result<(), WriteError> = write_atomically(&out, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(WriteError::io(tmp, std::io::Error::other("disk full")))
        });
        assert!(r.unwrap_err().to_string().contains("disk full"));
        assert!(!out.exists() && !tmp_path(&out).exists());
        write_bytes_atomically(&out, b"whole").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"whole");
        assert!(!tmp_path(&out).exists());
    }
}
