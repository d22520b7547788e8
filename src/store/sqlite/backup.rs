//! `parcel-hub backup FILE`: a consistent copy of a database file, taken
//! while a hub serves it.
//!
//! SQLite's online backup copies every page in one step, inside one read
//! transaction, so the copy is the database as of one commit: every order
//! and queued message acknowledged before the backup began is in it, and
//! no write is half in it. In WAL mode the hub's writer does not wait for
//! the copy (readers never block the writer). The copy is written next to
//! the target, checked, switched out of WAL mode so that it is one
//! self-contained file, and only then renamed into place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{db, schema};
use crate::store::StoreError;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub orders: u64,
    pub queued_messages: u64,
    pub bytes: u64,
}

/// Where the copy is written before it is renamed into place.
fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

pub(super) fn backup(source: &Path, target: &Path) -> Result<BackupReport, StoreError> {
    if !source.exists() {
        return Err(StoreError::Unavailable("the database file does not exist"));
    }
    if target.exists() {
        return Err(StoreError::Unavailable(
            "the backup file exists already; remove it or choose another name",
        ));
    }
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db("opening the database to back up"))?;
    src.busy_timeout(Duration::from_secs(5))
        .map_err(db("opening the database to back up"))?;
    let version: i64 = src
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db("reading the schema version"))?;
    if version > schema::VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {version}, written by a newer parcel-hub"
        )));
    }
    let partial = partial_path(target);
    // A copy left over from an interrupted backup is ours to replace.
    for leftover in [partial.clone(), wal_of(&partial), shm_of(&partial)] {
        if leftover.exists() {
            std::fs::remove_file(&leftover).map_err(|e| io("removing an old partial copy", e))?;
        }
    }
    let result = copy_into(&src, &partial);
    if result.is_err() {
        let _best_effort = std::fs::remove_file(&partial);
    }
    let (orders, queued_messages) = result?;
    std::fs::rename(&partial, target).map_err(|e| io("renaming the copy into place", e))?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself must survive a crash too.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing the backup's folder", e))?;
    }
    let bytes = std::fs::metadata(target)
        .map_err(|e| io("reading the backup's size", e))?
        .len();
    Ok(BackupReport {
        orders,
        queued_messages,
        bytes,
    })
}

/// Copies every page of `src` into a new file at `path` in one step, checks
/// it, and leaves it as one file in rollback-journal mode (the hub turns
/// WAL back on when it opens it).
fn copy_into(src: &Connection, path: &Path) -> Result<(u64, u64), StoreError> {
    let mut dst = Connection::open(path).map_err(db("creating the backup file"))?;
    {
        let backup = Backup::new(src, &mut dst).map_err(db("starting the backup"))?;
        loop {
            // -1: every page in one step, so in one read transaction.
            match backup.step(-1).map_err(db("copying the database"))? {
                StepResult::Done => break,
                StepResult::More => {}
                // The hub held a lock for a moment (a checkpoint); try again.
                StepResult::Busy | StepResult::Locked | _ => {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    let check: String = dst
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(db("checking the backup"))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!(
            "the backup failed its check: {check}"
        )));
    }
    let count = |table: &str| -> Result<u64, StoreError> {
        dst.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(db("counting the backup's rows"))
    };
    let counts = (count("orders")?, count("messages")?);
    dst.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .map_err(db("making the backup one file"))?;
    dst.close().map_err(|(_, e)| db("closing the backup")(e))?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("syncing the backup", e))?;
    Ok(counts)
}

fn wal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn shm_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-shm");
    PathBuf::from(name)
}

fn io(what: &'static str, e: std::io::Error) -> StoreError {
    StoreError::backend(what)(Box::new(e))
}
