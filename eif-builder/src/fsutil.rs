//! Writing output files atomically: a temporary file beside the target, renamed into place on success.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Creates `path` by running `fill` on a fresh temporary file in the same directory, then
/// renaming it over `path`. On any error the temporary file is removed and `path` is untouched,
/// so a failed build never leaves a half-written image behind.
pub fn write_atomically<T>(path: &Path, fill: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("output {}", path.display()), "has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let mut candidate = tmp_name.clone();
        candidate.push(format!(".tmp{}-{attempt}", std::process::id()));
        let tmp = dir.join(candidate);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(Error::io("cannot create", Some(&tmp), e)),
        }
    };
    let result = fill(&mut file).and_then(|value| {
        file.sync_all().map_err(Error::io_at("cannot sync", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(Error::io_at("cannot rename into place", path))?;
        Ok(value)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn success_renames_and_failure_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("eifb-fsutil-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("out.bin");
        write_atomically(&target, |f| {
            f.write_all(b"one").map_err(|e| Error::io("w", None, e))
        })
        .unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"one");
        let err = write_atomically(&target, |f| {
            f.write_all(b"two").map_err(|e| Error::io("w", None, e))?;
            Err::<(), _>(Error::invalid("test", "fails on purpose"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&target).unwrap(), b"one", "old file kept");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.bin"], "no temporary file left");
        fs::remove_dir_all(&dir).unwrap();
    }
}
