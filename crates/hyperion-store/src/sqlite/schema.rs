//! The schema of a store file: telling a Hyperion store from any other file, creating and
//! migrating its tables, and setting up WAL mode and `synchronous` on each connection.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::{LOCK_PATIENCE, SqliteStore, is_busy};
use crate::StoreError;

/// Marks a file as a Hyperion store (`PRAGMA application_id`, "Hypr").
pub(super) const APPLICATION_ID: i32 = 0x4879_7072;

/// Migration `i` takes the schema from version `i` to `i + 1`; the last version is the current
/// one. Never edit a released migration: add one.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("v1.sql"),
    include_str!("v2.sql"),
    include_str!("v3.sql"),
    include_str!("v4.sql"),
    include_str!("v5.sql"),
    include_str!("v6.sql"),
];

impl SqliteStore {
    /// Checks what the file is, then initializes or migrates it. Reads before any write, so a
    /// file that is refused is never modified.
    pub(super) fn prepare(&self) -> Result<(), StoreError> {
        // Processes opening a new file together contend for it: wait, as for any write.
        let mut wait = Duration::from_millis(5);
        let started = std::time::Instant::now();
        loop {
            match self.try_prepare() {
                Err(Prepare::Busy(_)) if started.elapsed() < LOCK_PATIENCE => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(Prepare::Busy(e)) => return Err(self.classify(e)),
                Err(Prepare::Refused(e)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
    }

    fn try_prepare(&self) -> Result<(), Prepare> {
        let sqlite = |e: rusqlite::Error| {
            if is_busy(&e) {
                Prepare::Busy(e)
            } else {
                Prepare::Refused(self.classify(e))
            }
        };
        let mut inner = self.lock();
        let conn = &mut inner.conn;
        // One read transaction, so that the three reads see one state of the file even while
        // another process initializes it.
        let snapshot = conn.transaction().map_err(sqlite)?;
        let (app_id, version, tables) = probe(&snapshot).map_err(sqlite)?;
        drop(snapshot);
        let current = MIGRATIONS.len() as i32;
        match (app_id, version, tables) {
            (0, 0, 0) | (APPLICATION_ID, _, _) => {}
            _ => {
                return Err(Prepare::Refused(StoreError::NotAStore {
                    path: self.path.clone(),
                }));
            }
        }
        if version > current {
            return Err(Prepare::Refused(StoreError::NewerSchema {
                path: self.path.clone(),
                found: version,
                supported: current,
            }));
        }
        if version < current {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite)?;
            // Another process may have migrated while we waited for the lock.
            let (_, version, _) = probe(&tx).map_err(sqlite)?;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.execute_batch(sql).map_err(sqlite)?;
                tx.pragma_update(None, "user_version", i as i32 + 1)
                    .map_err(sqlite)?;
            }
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(sqlite)?;
            tx.commit().map_err(sqlite)?;
        }
        // WAL is a property of the file: only the first opener switches it.
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(sqlite)?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        Ok(())
    }
}

pub(super) fn probe(conn: &Connection) -> rusqlite::Result<(i32, i32, i64)> {
    let app_id = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tables = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    Ok((app_id, version, tables))
}

enum Prepare {
    /// Another process holds the file for now: try again.
    Busy(rusqlite::Error),
    Refused(StoreError),
}
