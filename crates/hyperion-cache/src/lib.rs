//! The content-addressed cache of pipeline stages.
//!
//! A stage's output is kept under its key ([`KeyMaterial::key`]): `entries/<hex>/` holds its
//! `out/` directory, its logs and `done.json`. The index beside it (`index.sqlite`) says which
//! keys are ready, which are being computed and by whom, and what each key was made of (for
//! `explain`). It lives with the entries, not in a study's store, so that every study pointing at
//! one cache directory shares it whatever store each uses.
//!
//! A stage is computed once however many trials need it at the same moment: the first lookup
//! of a missing key claims it ([`Lookup::Run`], epoch 1, with a lease); the others get
//! [`Lookup::Wait`] and ask again when the claimant is done. The claimant runs in
//! `tmp/<hex>.<epoch>/` and commits by renaming that directory to `entries/<hex>`: a rename is
//! atomic, and when the target exists someone committed first and theirs is kept. A claim
//! whose owner died (a dead process on this host) or whose lease ran out is taken over with
//! the next epoch; a failed stage is retried by the next lookup, up to `retries` more times in
//! all, then each lookup of this process fails at once with the stage's error.

pub mod digest;
pub mod key;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

pub use key::KeyMaterial;

/// What a cache cannot do, with the path or key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {dir}: {reason}")]
    Open { dir: PathBuf, reason: String },
    #[error("cache index {path}: {source}")]
    Index {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cache entry {key}: {reason}")]
    Entry { key: String, reason: String },
}

type Result<T> = std::result::Result<T, CacheError>;

/// A cache directory and its index, shared by the threads of this process and by other
/// processes.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    index: PathBuf,
    conn: Mutex<Connection>,
    /// Who claims: this host and process.
    owner: String,
}

/// A ready entry: the stage's output is `dir/out`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub dir: PathBuf,
    /// The digest of `out/`.
    pub digest: String,
}

impl Entry {
    pub fn out(&self) -> PathBuf {
        self.dir.join("out")
    }
}

/// The right to compute a key, until committed, failed or taken over (a higher epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub key: String,
    pub epoch: i64,
    /// Who needs it (pinned with the entry once committed).
    pub holder: String,
    /// Its commit replaces a ready entry of the key ([`Cache::claim_again`]).
    pub replace: bool,
    /// Where the stage runs: its output goes to `dir/out`.
    pub dir: PathBuf,
}

impl Claim {
    pub fn out(&self) -> PathBuf {
        self.dir.join("out")
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// Computed before.
    Hit(Entry),
    /// Missing, and now claimed by the caller: run the stage into [`Claim::out`].
    Run(Claim),
    /// Someone else is computing it: ask again when they are done.
    Wait,
    /// It failed as many times as it may: the last error.
    Failed(String),
}

/// What [`Cache::gc`] did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Collected {
    /// Temporary directories of claims that are over.
    pub tmp_removed: usize,
    /// Entries removed to get under the size, least recently used first.
    pub evicted: usize,
    /// Entries over the size that a live run's unfinished trial needs.
    pub kept_in_use: usize,
    /// The ready entries' bytes before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// One stage's figures in `hyperion cache stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StageStats {
    pub stage: String,
    pub entries: u64,
    pub ready: u64,
    pub running: u64,
    pub failed: u64,
    pub bytes: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Times the stage was computed.
    pub runs: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    key           TEXT PRIMARY KEY,
    stage         TEXT NOT NULL,
    material      TEXT NOT NULL,        -- KeyMaterial as JSON, for explain
    state         TEXT NOT NULL,        -- running, ready, failed
    owner         TEXT,                 -- host:pid of the claimant
    epoch         INTEGER NOT NULL,
    lease_until   INTEGER,              -- milliseconds since the Unix epoch
    attempts      INTEGER NOT NULL DEFAULT 0,
    digest        TEXT,                 -- of out/, once ready
    bytes         INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    hits          INTEGER NOT NULL DEFAULT 0,
    runs          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_by_stage ON entries (stage, created_at);
-- The entries a live run's unfinished trials need (their stages' outputs so far): gc keeps them.
CREATE TABLE IF NOT EXISTS pins (
    key     TEXT NOT NULL,
    owner   TEXT NOT NULL,                -- host:pid of the run
    holder  TEXT NOT NULL,                -- the study and trial, as the run names them
    PRIMARY KEY (key, owner, holder)
);
CREATE INDEX IF NOT EXISTS pins_by_holder ON pins (owner, holder);
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn hex(key: &str) -> &str {
    key.strip_prefix("b3:").unwrap_or(key)
}

/// The digest of `out/` that a committed entry's `done.json` in `dir` records.
fn committed_digest(dir: &Path) -> Option<String> {
    let done: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("done.json")).ok()?).ok()?;
    Some(done.get("digest")?.as_str()?.to_owned())
}

/// The digest of a stage's output in `dir` (an entry, or an uncached stage's directory): as
/// committed, or its `out/` as it is.
pub fn output_digest(dir: &Path) -> std::io::Result<String> {
    match committed_digest(dir) {
        Some(digest) => Ok(digest),
        None => digest::of_path(&dir.join("out")),
    }
}

/// Whether `owner` (host:pid) is a process of this host that is gone.
fn is_dead(owner: &str, here: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else {
        return false;
    };
    let this_host = here.rsplit_once(':').map(|(h, _)| h);
    if Some(host) != this_host {
        return false;
    }
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

impl Cache {
    /// Opens (creating) the cache in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Cache> {
        let dir = std::path::absolute(dir.as_ref()).unwrap_or_else(|_| dir.as_ref().to_path_buf());
        let fail = |reason: String| CacheError::Open {
            dir: dir.clone(),
            reason,
        };
        for sub in ["entries", "tmp"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| fail(format!("cannot create {sub}/: {e}")))?;
        }
        let index = dir.join("index.sqlite");
        let wrap = |source| CacheError::Index {
            path: index.clone(),
            source,
        };
        let conn = Connection::open(&index).map_err(wrap)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(wrap)?;
        // Processes opening a new cache together contend for it, and a switch to WAL does not
        // wait for a lock as other statements do: try again, as the store does.
        let prepare = || -> rusqlite::Result<()> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)
        };
        let (started, mut wait) = (std::time::Instant::now(), Duration::from_millis(5));
        loop {
            match prepare() {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) && started.elapsed() < Duration::from_secs(30) =>
                {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(wrap(e)),
            }
        }
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Ok(Cache {
            owner: format!("{host}:{}", std::process::id()),
            dir,
            index,
            conn: Mutex::new(conn),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        let hex = hex(key);
        self.dir
            .join("entries")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
    }

    fn tmp_dir(&self, key: &str, epoch: i64) -> PathBuf {
        self.dir.join("tmp").join(format!("{}.{epoch}", hex(key)))
    }

    fn wrap(&self, source: rusqlite::Error) -> CacheError {
        CacheError::Index {
            path: self.index.clone(),
            source,
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks `material`'s key up and claims it when it is missing (see [`Lookup`]); `lease`
    /// is how long the claim holds without a [`Cache::heartbeat`], `retries` how many more
    /// times a failed stage runs. A hit is pinned for `holder` in the same transaction, so
    /// that no [`Cache::gc`] evicts it in between (see [`Cache::pin`]).
    pub fn lookup(
        &self,
        material: &KeyMaterial,
        lease: Duration,
        retries: u32,
        holder: &str,
    ) -> Result<Lookup> {
        let key = material.key();
        let now = now_ms();
        let lease_until = now + lease.as_millis() as i64;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.wrap(e))?;
        type Row = (
            String,
            Option<String>,
            i64,
            Option<i64>,
            i64,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = tx
            .query_row(
                "SELECT state, owner, epoch, lease_until, attempts, digest, error \
                 FROM entries WHERE key = ?1",
                [&key],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.wrap(e))?;
        let claim = |epoch: i64| Claim {
            key: key.clone(),
            epoch,
            holder: holder.to_owned(),
            replace: false,
            dir: self.tmp_dir(&key, epoch),
        };
        let outcome = match row {
            None => {
                let text = serde_json::to_string(material).expect("key material serializes");
                tx.execute(
                    "INSERT INTO entries (key, stage, material, state, owner, epoch, lease_until, \
                     attempts, created_at, last_used_at, runs) \
                     VALUES (?1, ?2, ?3, 'running', ?4, 1, ?5, 1, ?6, ?6, 1)",
                    params![key, material.stage, text, self.owner, lease_until, now],
                )
                .map_err(|e| self.wrap(e))?;
                Lookup::Run(claim(1))
            }
            Some((state, owner, epoch, lease, attempts, digest, error)) => {
                let dir = self.entry_dir(&key);
                let owner = owner.unwrap_or_default();
                let take_over = match state.as_str() {
                    "ready" => match digest {
                        // Its files must still be there (a hand-deleted entry is a miss).
                        Some(digest) if dir.join("done.json").is_file() => {
                            tx.execute(
                                "UPDATE entries SET hits = hits + 1, last_used_at = ?2 \
                                 WHERE key = ?1",
                                params![key, now],
                            )
                            .map_err(|e| self.wrap(e))?;
                            self.pin_in(&tx, &key, holder)?;
                            tx.commit().map_err(|e| self.wrap(e))?;
                            return Ok(Lookup::Hit(Entry { key, dir, digest }));
                        }
                        _ => true,
                    },
                    "running" => lease.is_none_or(|l| l < now) || is_dead(&owner, &self.owner),
                    // Another process's failure gets attempts of its own: a failure may have
                    // been the machine's.
                    _ if owner != self.owner || attempts <= i64::from(retries) => true,
                    _ => {
                        tx.commit().map_err(|e| self.wrap(e))?;
                        return Ok(Lookup::Failed(error.unwrap_or_default()));
                    }
                };
                if !take_over {
                    Lookup::Wait
                } else if let Some(entry) = self.adopt(&key, epoch) {
                    // The dead claimant finished: its work is kept.
                    self.mark_ready(&tx, &entry, now)?;
                    self.pin_in(&tx, &key, holder)?;
                    tx.commit().map_err(|e| self.wrap(e))?;
                    return Ok(Lookup::Hit(entry));
                } else {
                    let attempts = if state == "failed" && owner != self.owner {
                        1
                    } else {
                        attempts + 1
                    };
                    tx.execute(
                        "UPDATE entries SET state = 'running', owner = ?2, epoch = ?3, \
                         lease_until = ?4, attempts = ?5, runs = runs + 1, error = NULL, \
                         last_used_at = ?6 WHERE key = ?1",
                        params![key, self.owner, epoch + 1, lease_until, attempts, now],
                    )
                    .map_err(|e| self.wrap(e))?;
                    Lookup::Run(claim(epoch + 1))
                }
            }
        };
        tx.commit().map_err(|e| self.wrap(e))?;
        if let Lookup::Run(claim) = &outcome {
            let _ = fs::remove_dir_all(&claim.dir);
            fs::create_dir_all(claim.out()).map_err(|e| CacheError::Entry {
                key: claim.key.clone(),
                reason: format!("cannot create {}: {e}", claim.out().display()),
            })?;
        }
        Ok(outcome)
    }

    /// Claims `material`'s key to compute it again even when it is ready (`--from-stage`): the
    /// commit replaces the entry. A key being computed by a live claimant is [`Lookup::Wait`].
    pub fn claim_again(
        &self,
        material: &KeyMaterial,
        lease: Duration,
        holder: &str,
    ) -> Result<Lookup> {
        let key = material.key();
        let now = now_ms();
        let row: Option<(String, Option<String>, i64, Option<i64>)> = self
            .conn()
            .query_row(
                "SELECT state, owner, epoch, lease_until FROM entries WHERE key = ?1",
                [&key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.wrap(e))?;
        let Some((state, owner, epoch, lease_until)) = row else {
            return self.lookup(material, lease, 0, holder);
        };
        let owner = owner.unwrap_or_default();
        let live = state == "running"
            && lease_until.is_some_and(|l| l >= now)
            && !is_dead(&owner, &self.owner);
        if live {
            return Ok(Lookup::Wait);
        }
        // Conditional on the epoch read: a claimant that came in between keeps its claim.
        let taken = self
            .conn()
            .execute(
                "UPDATE entries SET state = 'running', owner = ?2, epoch = ?3, lease_until = ?4, \
                 attempts = 1, runs = runs + 1, error = NULL, last_used_at = ?5 \
                 WHERE key = ?1 AND epoch = ?6",
                params![
                    key,
                    self.owner,
                    epoch + 1,
                    now + lease.as_millis() as i64,
                    now,
                    epoch
                ],
            )
            .map_err(|e| self.wrap(e))?;
        if taken == 0 {
            return Ok(Lookup::Wait);
        }
        let claim = Claim {
            key: key.clone(),
            epoch: epoch + 1,
            holder: holder.to_owned(),
            replace: true,
            dir: self.tmp_dir(&key, epoch + 1),
        };
        let _ = fs::remove_dir_all(&claim.dir);
        fs::create_dir_all(claim.out()).map_err(|e| CacheError::Entry {
            key: key.clone(),
            reason: format!("cannot create its temporary directory: {e}"),
        })?;
        Ok(Lookup::Run(claim))
    }

    /// A committed entry left by a claimant that died before marking it ready, or its
    /// finished work in `tmp/` (exit 0, outputs checked), moved into place.
    fn adopt(&self, key: &str, epoch: i64) -> Option<Entry> {
        let dir = self.entry_dir(key);
        if !dir.join("done.json").is_file() {
            let tmp = self.tmp_dir(key, epoch);
            if !tmp.join("done.json").is_file() {
                return None;
            }
            fs::create_dir_all(dir.parent()?).ok()?;
            if fs::rename(&tmp, &dir).is_err() && !dir.join("done.json").is_file() {
                return None;
            }
        }
        Some(Entry {
            key: key.to_owned(),
            digest: committed_digest(&dir)?,
            dir,
        })
    }

    fn mark_ready(&self, conn: &Connection, entry: &Entry, now: i64) -> Result<()> {
        conn.execute(
            "UPDATE entries SET state = 'ready', digest = ?2, bytes = ?3, lease_until = NULL, \
             error = NULL, last_used_at = ?4 WHERE key = ?1",
            params![
                entry.key,
                entry.digest,
                digest::size_of(&entry.dir) as i64,
                now
            ],
        )
        .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// Extends the leases of `claims`.
    pub fn heartbeat<'a>(&self, claims: impl IntoIterator<Item = &'a Claim>, lease: Duration) {
        let until = now_ms() + lease.as_millis() as i64;
        let conn = self.conn();
        for claim in claims {
            let _ = conn.execute(
                "UPDATE entries SET lease_until = ?3 WHERE key = ?1 AND epoch = ?2 \
                 AND state = 'running'",
                params![claim.key, claim.epoch, until],
            );
        }
    }

    /// Commits the claim's work: every one of `outputs` (paths under `out/`) must exist. The
    /// first commit of a key wins; a later one is dropped and the entry committed first is
    /// returned.
    pub fn commit(&self, claim: &Claim, outputs: &[String]) -> Result<Entry> {
        let fail = |reason: String| CacheError::Entry {
            key: claim.key.clone(),
            reason,
        };
        let out = claim.out();
        if let Some(missing) = outputs.iter().find(|o| !out.join(o).exists()) {
            return Err(fail(format!(
                "the stage exited 0 but did not write `{missing}`"
            )));
        }
        let digest = digest::of_path(&out)
            .map_err(|e| fail(format!("cannot read {}: {e}", out.display())))?;
        let done = serde_json::json!({"key": claim.key, "epoch": claim.epoch, "digest": digest});
        fs::write(claim.dir.join("done.json"), done.to_string())
            .map_err(|e| fail(format!("cannot write done.json: {e}")))?;
        let dir = self.entry_dir(&claim.key);
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        if claim.replace {
            // The entry computed again takes the place of the one before.
            let old =
                self.dir
                    .join("tmp")
                    .join(format!("{}.replaced.{}", hex(&claim.key), claim.epoch));
            if fs::rename(&dir, &old).is_ok() {
                let _ = fs::remove_dir_all(&old);
            }
        }
        let entry = match fs::rename(&claim.dir, &dir) {
            Ok(()) => Entry {
                key: claim.key.clone(),
                dir,
                digest,
            },
            // Someone committed first: theirs stays, so that every trial sees the same bytes.
            Err(_) if dir.join("done.json").is_file() => {
                let _ = fs::remove_dir_all(&claim.dir);
                self.adopt(&claim.key, claim.epoch)
                    .ok_or_else(|| fail("the committed entry is unreadable".into()))?
            }
            Err(e) => return Err(fail(format!("cannot move the output into place: {e}"))),
        };
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.wrap(e))?;
        self.mark_ready(&tx, &entry, now_ms())?;
        self.pin_in(&tx, &entry.key, &claim.holder)?;
        tx.commit().map_err(|e| self.wrap(e))?;
        Ok(entry)
    }

    /// Records that the claim's run failed with `error`; its temporary directory goes.
    pub fn fail(&self, claim: &Claim, error: &str) -> Result<()> {
        let _ = fs::remove_dir_all(&claim.dir);
        self.conn()
            .execute(
                "UPDATE entries SET state = 'failed', error = ?3, lease_until = NULL \
                 WHERE key = ?1 AND epoch = ?2",
                params![claim.key, claim.epoch, error],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// Gives a claim up without a verdict (the trial was stopped): the next lookup takes it.
    pub fn release(&self, claim: &Claim) -> Result<()> {
        let _ = fs::remove_dir_all(&claim.dir);
        self.conn()
            .execute(
                "UPDATE entries SET lease_until = 0, attempts = max(attempts - 1, 0) \
                 WHERE key = ?1 AND epoch = ?2 AND state = 'running'",
                params![claim.key, claim.epoch],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// The figures of each stage, by name.
    pub fn stats(&self) -> Result<Vec<StageStats>> {
        let conn = self.conn();
        let mut statement = conn
            .prepare(
                "SELECT stage, count(*), sum(state = 'ready'), sum(state = 'running'), \
                 sum(state = 'failed'), sum(bytes), sum(hits), sum(runs) \
                 FROM entries GROUP BY stage ORDER BY stage",
            )
            .map_err(|e| self.wrap(e))?;
        let rows = statement
            .query_map([], |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                Ok(StageStats {
                    stage: r.get(0)?,
                    entries: n(1)?,
                    ready: n(2)?,
                    running: n(3)?,
                    failed: n(4)?,
                    bytes: n(5)?,
                    hits: n(6)?,
                    runs: n(7)?,
                })
            })
            .map_err(|e| self.wrap(e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.wrap(e))
    }

    /// What `material`'s key differs in from the newest other entry of its stage: `None` when
    /// the key is in the cache already (nothing changed) or the stage has no other entry.
    pub fn explain(&self, material: &KeyMaterial) -> Result<Option<(String, Vec<String>)>> {
        let key = material.key();
        let conn = self.conn();
        let known: bool = conn
            .query_row("SELECT count(*) FROM entries WHERE key = ?1", [&key], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| self.wrap(e))?
            > 0;
        if known {
            return Ok(None);
        }
        let mut statement = conn
            .prepare(
                "SELECT key, material FROM entries WHERE stage = ?1 \
                 ORDER BY created_at DESC, key",
            )
            .map_err(|e| self.wrap(e))?;
        let others: Vec<(String, String)> = statement
            .query_map([&material.stage], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.wrap(e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.wrap(e))?;
        // The nearest: the fewest differences, the newest among equals.
        let nearest = others
            .into_iter()
            .filter_map(|(k, text)| {
                let earlier: KeyMaterial = serde_json::from_str(&text).ok()?;
                Some((k, material.differences(&earlier)))
            })
            .min_by_key(|(_, d)| d.len());
        Ok(nearest)
    }

    /// Removes the entry `what` (a key) or every entry of the stage `what`; returns how many.
    pub fn forget(&self, what: &str) -> Result<usize> {
        let conn = self.conn();
        let mut statement = conn
            .prepare("SELECT key FROM entries WHERE key = ?1 OR stage = ?1")
            .map_err(|e| self.wrap(e))?;
        let keys: Vec<String> = statement
            .query_map([what], |r| r.get(0))
            .map_err(|e| self.wrap(e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.wrap(e))?;
        for key in &keys {
            let _ = fs::remove_dir_all(self.entry_dir(key));
            conn.execute("DELETE FROM entries WHERE key = ?1", [key])
                .map_err(|e| self.wrap(e))?;
        }
        Ok(keys.len())
    }

    /// Notes that `holder` (a trial of this run) needs entry `key`, so that [`Cache::gc`]
    /// keeps it while this process lives. Lookups and commits pin what they return.
    fn pin_in(&self, conn: &Connection, key: &str, holder: &str) -> Result<()> {
        conn.execute(
            "INSERT OR IGNORE INTO pins (key, owner, holder) VALUES (?1, ?2, ?3)",
            params![key, self.owner, holder],
        )
        .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// `holder` of this run needs nothing any more.
    pub fn unpin(&self, holder: &str) -> Result<()> {
        self.conn()
            .execute(
                "DELETE FROM pins WHERE owner = ?1 AND holder = ?2",
                params![self.owner, holder],
            )
            .map_err(|e| self.wrap(e))?;
        Ok(())
    }

    /// Removes the temporary directories no live claim owns and, with `max_bytes`, the least
    /// recently used ready entries until the rest fit, never one a live run's trial needs.
    pub fn gc(&self, max_bytes: Option<u64>) -> Result<Collected> {
        let mut collected = Collected {
            tmp_removed: self.clean_tmp()?,
            ..Collected::default()
        };
        let conn = self.conn();
        fn query<T: rusqlite::types::FromSql>(
            conn: &Connection,
            sql: &str,
        ) -> rusqlite::Result<Vec<(String, T)>> {
            let mut statement = conn.prepare(sql)?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        }
        // Pins of runs that are gone hold nothing.
        let mut pinned = std::collections::BTreeSet::new();
        let pins =
            query::<String>(&conn, "SELECT key, owner FROM pins").map_err(|e| self.wrap(e))?;
        for (key, owner) in pins {
            if is_dead(&owner, &self.owner) {
                conn.execute("DELETE FROM pins WHERE owner = ?1", [&owner])
                    .map_err(|e| self.wrap(e))?;
            } else {
                pinned.insert(key);
            }
        }
        let sizes: Vec<(String, u64)> = query::<i64>(
            &conn,
            "SELECT key, bytes FROM entries WHERE state = 'ready' ORDER BY last_used_at, key",
        )
        .map_err(|e| self.wrap(e))?
        .into_iter()
        .map(|(key, bytes)| (key, bytes.max(0) as u64))
        .collect();
        let mut total: u64 = sizes.iter().map(|(_, b)| b).sum();
        collected.bytes_before = total;
        if let Some(max) = max_bytes {
            for (key, bytes) in sizes {
                if total <= max {
                    break;
                }
                if pinned.contains(&key) {
                    collected.kept_in_use += 1;
                    continue;
                }
                // The row first: a lookup that finds no row computes the stage again, one that
                // finds a row without its files does too (`done.json` is checked).
                conn.execute(
                    "DELETE FROM entries WHERE key = ?1 AND state = 'ready'",
                    [&key],
                )
                .map_err(|e| self.wrap(e))?;
                let _ = fs::remove_dir_all(self.entry_dir(&key));
                total -= bytes;
                collected.evicted += 1;
            }
        }
        collected.bytes_after = total;
        Ok(collected)
    }

    /// Removes the temporary directories no live claim owns; returns how many.
    pub fn clean_tmp(&self) -> Result<usize> {
        let conn = self.conn();
        let mut statement = conn
            .prepare("SELECT key, epoch FROM entries WHERE state = 'running' AND lease_until >= ?1")
            .map_err(|e| self.wrap(e))?;
        let live: BTreeMap<String, ()> = statement
            .query_map([now_ms()], |r| {
                let key: String = r.get(0)?;
                let epoch: i64 = r.get(1)?;
                Ok((format!("{}.{epoch}", hex(&key)), ()))
            })
            .map_err(|e| self.wrap(e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.wrap(e))?;
        let mut removed = 0;
        for entry in fs::read_dir(self.dir.join("tmp"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !live.contains_key(&*entry.file_name().to_string_lossy())
                && fs::remove_dir_all(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
