//! Writing and removing configuration files safely: an exclusive `flock` on the directory
//! itself (nothing left behind, works for every tool that takes the same lock), a temporary
//! file in the same directory, `fsync`, an explicit 0644 mode, `rename` into place, `fsync` of
//! the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// A filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Creating, opening, writing or renaming failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The target exists already.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// The directory lock could not be taken.
    #[error("cannot lock {path}")]
    Lock {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// An exclusive lock on a configuration directory, released on drop.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
}

/// Creates `dir` (0755) when missing and locks it exclusively, waiting for other holders.
pub fn lock_dir(dir: &Path) -> Result<DirLock, StoreError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io("cannot create directory", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .map_err(io("cannot set the mode of", dir))?;
    }
    let file = File::open(dir).map_err(io("cannot open directory", dir))?;
    let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| StoreError::Lock {
        path: dir.to_owned(),
        source: e,
    })?;
    Ok(DirLock { _lock: lock })
}

/// Writes `bytes` to `path` atomically with `mode`; refuses when `path` exists and
/// `replace` is false. The caller holds the directory lock.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), StoreError> {
    if !replace && path.exists() {
        return Err(StoreError::Exists(path.to_owned()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Hidden and not ending in .conflist/.conf/.json: no CNI runtime reads a half-written file.
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io("cannot create", &tmp))?;
        file.write_all(bytes).map_err(io("cannot write", &tmp))?;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("cannot set the mode of", &tmp))?;
        file.sync_all().map_err(io("cannot sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io("cannot rename into place", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes a file (the caller holds the directory lock).
pub fn remove(path: &Path) -> Result<(), StoreError> {
    fs::remove_file(path).map_err(io("cannot remove", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_mode_and_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("net.d");
        let _lock = lock_dir(&sub).unwrap();
        let path = sub.join("a.conflist");
        write_atomic(&path, b"{}", 0o644, false).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert!(matches!(
            write_atomic(&path, b"{}", 0o644, false),
            Err(StoreError::Exists(_))
        ));
        write_atomic(&path, b"[]", 0o600, true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"[]");
        let names: Vec<_> = fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }
}
