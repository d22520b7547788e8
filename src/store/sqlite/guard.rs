//! What keeps a database file safe to write: one hub per file (an
//! exclusive lock on `<db>.lock`), files the hub can write before SQLite
//! maps them, and the file it opened still being the one at its path.
//!
//! - Two hubs on one file each believed their own writes: the second now
//!   stops at start-up, naming the file.
//! - SQLite maps `<db>-shm`; a read-only one was mapped and the first write
//!   to it killed the hub with SIGBUS. Checked first, refused with words.
//! - A deleted or replaced file went unnoticed: SQLite kept writing to the
//!   unlinked inode and every pickup acknowledged after it was lost on
//!   restart. Each write now checks the path still names the file opened
//!   (device and inode), and refuses (`internal`, a log line, health 503)
//!   when it does not.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// The lock file next to `db`.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the exclusive lock on `<db>.lock`, held for as long as the file
/// returned is open; another hub holding it is a start-up error.
pub(super) fn lock(db: &Path) -> Result<File, StoreError> {
    let path = lock_path(db);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            StoreError::Unusable(format!(
                "cannot create the lock file {}: {e} (the database's folder must be writable)",
                path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unusable(format!(
            "another parcel-hub is using {} (it holds {}); stop it, or give this hub another --db",
            db.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unusable(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Refuses a database whose folder, file, `-wal` or `-shm` this process
/// cannot write.
pub(super) fn check_writable(db: &Path) -> Result<(), StoreError> {
    let unusable = |what: &Path, e: std::io::Error| {
        StoreError::Unusable(format!(
            "cannot write {}: {e}; the hub needs to write the database, its -wal and -shm files and their folder",
            what.display()
        ))
    };
    let folder = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let probe = folder.join(format!(".parcel-hub-probe-{}", std::process::id()));
    File::create(&probe).map_err(|e| unusable(&folder, e))?;
    std::fs::remove_file(&probe).map_err(|e| unusable(&folder, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        if path.exists() {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| unusable(&path, e))?;
        }
    }
    Ok(())
}

/// Which file a path named when the store opened it.
#[derive(Debug, Clone)]
pub(super) struct FileIdentity {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    pub(super) fn of(path: &Path) -> Result<Self, StoreError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| StoreError::Unusable(format!("cannot read {}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Whether the path still names the file opened.
    pub(super) fn still_there(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}
