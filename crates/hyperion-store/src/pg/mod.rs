//! The PostgreSQL backend: one study shared by processes on many machines.
//!
//! [`PgStore`] keeps a small pool of connections. Every write is a transaction that first
//! locks its study's row (`SELECT … FOR UPDATE`), so the writers of one study take turns: trial
//! numbers are dense and never shared, `max_trials` is exact, and no two writers can deadlock
//! (each holds one lock, taken first). A lost connection, a server restart, a serialization
//! failure or a deadlock report is retried with backoff on a new connection, said once on
//! stderr and counted ([`PgStore::retries`]); a user never sees it. Times come from the
//! server's clock (machines' clocks differ): leases, stale deadlines and every timestamp.
//!
//! The hot writes make no round trip while they hold the lock: finishing a trial is one
//! statement that also returns it, and creating one is one statement too, with proposals made
//! beforehand for the numbers this process expects the study to give next (it learns how far
//! other writers tend to be ahead); only when none of them is the study's next number does it
//! lock first and propose for that number.
//!
//! `schema` creates and migrates the tables on connect, under an advisory lock, in a schema of
//! their own (`hyperion`, or the URL's `?schema=`); `url` parses URLs as libpq does, and `tls`
//! connects as its `sslmode` says.

mod schema;
pub mod tls;
pub mod url;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyperion_core::{
    Change, Decision, Distribution, LoggedChange, ParamValue, Params, Proposal, StudyId, StudySpec,
    Timestamp, Trial, TrialId, TrialNumber, TrialState,
};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use crate::columns::{from_json, parse_spec, state_columns, state_name, to_json};
use crate::{
    Created, Finish, NewTrial, Store, StoreError, StudyRecord, Succession, check_log_only,
    check_param, check_report, check_values, lease_end, retry_depth, rules, spec_difference,
    stale_error,
};
use url::PgUrl;

/// A trial's own columns, in [`trial_from_row`]'s order.
macro_rules! trial_columns {
    () => {
        "id, number, state, prune_step, message, params, objective_values, parent, depth, \
         retry_of, created_at, started_at, finished_at, metrics, launch, stages, objective_version"
    };
}

/// How many columns [`trial_columns!`] and [`extras!`] have.
const TRIAL_COLUMNS: usize = 17;
const EXTRAS: usize = 5;

/// The columns that follow a trial's own (17) in [`trial_from_row`]'s order: its intermediate
/// values and user attributes as arrays, for the trial `$2` (or the one given) of study `$1`.
macro_rules! extras {
    () => {
        extras!("$2")
    };
    ($number:literal) => {
        concat!(
            "ARRAY(SELECT step FROM intermediate WHERE study_id = $1 AND number = ",
            $number,
            " ORDER BY step), \
             ARRAY(SELECT value FROM intermediate WHERE study_id = $1 AND number = ",
            $number,
            " ORDER BY step), \
             ARRAY(SELECT others FROM intermediate WHERE study_id = $1 AND number = ",
            $number,
            " ORDER BY step), \
             ARRAY(SELECT key FROM user_attrs WHERE study_id = $1 AND number = ",
            $number,
            " ORDER BY key), \
             ARRAY(SELECT value FROM user_attrs WHERE study_id = $1 AND number = ",
            $number,
            " ORDER BY key)"
        )
    };
}

/// Connections kept open per process; more are opened when threads need them at once.
const POOL: usize = 4;
/// How long an operation keeps retrying a lost server before giving up.
const PATIENCE: Duration = Duration::from_secs(120);

/// A store in a PostgreSQL database, shared by threads, processes and machines.
#[derive(Debug)]
pub struct PgStore {
    url: PgUrl,
    /// The notification channel of the store's schema.
    channel: String,
    pool: Mutex<Vec<Conn>>,
    /// Specs never change after creation; parsed once per study.
    specs: Mutex<HashMap<StudyId, Arc<StudySpec>>>,
    retries: AtomicU64,
    /// Whether the loss of the server was said (once, until it is back).
    said: AtomicBool,
    /// The trial numbers this process expects each study to give next.
    expected: Mutex<HashMap<StudyId, Expected>>,
}

/// The number a study will likely give its next trial, as far as this process saw (its own
/// creations and the changes it read), and how far other writers were ahead of that the last
/// times: [`PgStore::create_expected`] proposes for that many numbers more.
#[derive(Clone, Copy, Debug, Default)]
struct Expected {
    next: u64,
    ahead: u64,
}

/// The most numbers [`PgStore::create_expected`] proposes for, and the longest it spends
/// proposing: about what a miss costs, one round trip.
const MAX_EXPECTED: u64 = 64;
const PROPOSING: Duration = Duration::from_micros(100);

/// How a logged trial creation begins (serde writes the tag, then the id), up to its id, and
/// with the placeholder id 0 the one-statement creation replaces.
const CREATED_ID: &str = r#"{"change":"trial_created","id":"#;
const CREATED_WITH_ID_0: &str = r#"{"change":"trial_created","id":0"#;

/// The proposals a one-statement creation takes: for the numbers from `expected.next` on,
/// each trial's params and its logged creation after the id.
#[derive(Debug, Default)]
struct Batch {
    expected: Expected,
    numbers: Vec<i64>,
    params: Vec<String>,
    changes: Vec<String>,
}

/// What [`PgStore::finish_and_create_expected`] settled: the finished trial, the creation if it
/// made it, and the changes if it brought them all.
type PartSuccession = (Trial, Option<Created>, Option<Vec<LoggedChange>>);

/// The parameters `$1`–`$14` of the one-statement creation.
struct CreateArgs<'a> {
    study: i64,
    batch: &'a Batch,
    takes_a_place: bool,
    max_trials: Option<i64>,
    state: &'static str,
    parent: Option<i64>,
    depth: i64,
    retry_of: Option<i64>,
    pending: bool,
    lease: Option<i64>,
    channel: &'a str,
}

impl<'a> CreateArgs<'a> {
    fn new(
        study: StudyId,
        batch: &'a Batch,
        new: &NewTrial,
        max_trials: Option<u64>,
        channel: &'a str,
    ) -> Self {
        let or_null = |v: Option<TrialNumber>| v.map(|n| n.0 as i64);
        CreateArgs {
            study: study.0 as i64,
            batch,
            takes_a_place: new.takes_a_place(),
            max_trials: max_trials.map(|m| m.min(i64::MAX as u64) as i64),
            state: new.state().name(),
            parent: or_null(new.parent),
            depth: i64::from(new.depth),
            retry_of: or_null(new.retry_of),
            pending: new.pending,
            lease: new
                .lease_end(Timestamp(0))
                .map(|end| end.0.min(i64::MAX as u64) as i64),
            channel,
        }
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.study,
            &self.batch.numbers,
            &self.batch.params,
            &self.batch.changes,
            &self.takes_a_place,
            &self.max_trials,
            &self.state,
            &self.parent,
            &self.depth,
            &self.retry_of,
            &self.pending,
            &self.lease,
            &self.channel,
            &CREATED_ID,
        ]
    }
}

/// The one-statement creation: it locks the study (`l`), picks the proposal for the study's
/// next number if the budget has room (`p`), inserts it (`t`), counts it (`s`), logs it (`c`)
/// and notifies (`n`). Returns the study's counts when locked, its time and the new id.
macro_rules! create_expected {
    ($guard:literal, $count:literal, $seq:literal, $tail:literal) => {
        concat!(
            "p AS (SELECT l.*, c.params, c.change, \
             nextval(pg_get_serial_sequence('trials', 'id')) AS id \
             FROM l JOIN unnest($2::bigint[], $3::text[], $4::text[]) \
             AS c(number, params, change) ON c.number = l.n_trials \
             WHERE ",
            $guard,
            "($5 OR $6::bigint IS NULL OR l.n_trials - l.n_retries < $6)), \
             t AS (INSERT INTO trials (id, study_id, number, state, params, parent, depth, \
             retry_of, created_at, started_at, heartbeat_at) \
             SELECT id, $1, n_trials, $7, params, $8, $9, $10, at, \
             CASE WHEN $11 THEN NULL ELSE at END, at + $12 FROM p), \
             s AS (UPDATE studies SET n_trials = n_trials + (SELECT count(*) FROM p), \
             n_retries = n_retries + (SELECT count(*) FROM p WHERE $5), \
             last_seq = last_seq + ",
            $count,
            "), c AS (INSERT INTO changes (study_id, seq, at, kind, change) \
             SELECT $1, last_seq + ",
            $seq,
            ", at, 'trial_created', $14 || id || change FROM p), ",
            $tail
        )
    };
}

const CREATE_EXPECTED: &str = concat!(
    "WITH l AS (SELECT id AS study, n_trials, n_retries, last_seq, \
     (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS at \
     FROM studies WHERE id = $1 FOR UPDATE), ",
    create_expected!(
        "",
        "1 WHERE id = $1 AND EXISTS (SELECT 1 FROM p)",
        "1",
        "n AS (SELECT pg_notify($13, $1::text) FROM p) \
         SELECT l.n_trials, l.n_retries, l.at, (SELECT id FROM p), \
         (SELECT count(*) FROM n) FROM l"
    )
);

/// [`CREATE_EXPECTED`] after the end of trial `$20` (`u`, logged in `f`), which it needs:
/// when that trial is not unfinished, nothing is written and the trial's columns are null.
/// With the changes after `$23` (at most `$24`) up to those it writes, read under the lock.
const FINISH_AND_CREATE: &str = concat!(
    "WITH l AS (SELECT id AS study, n_trials, n_retries, last_seq, \
     (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS at \
     FROM studies WHERE id = $1 FOR UPDATE), \
     u AS (UPDATE trials SET state = $15, prune_step = $16, message = $17, \
     objective_values = $18, value0 = $19, finished_at = (SELECT at FROM l) \
     WHERE study_id = (SELECT study FROM l) AND number = $20 \
     AND state IN ('pending', 'running') RETURNING ",
    trial_columns!(),
    "), f AS (INSERT INTO changes (study_id, seq, at, kind, change) \
     SELECT $1, l.last_seq + 1, l.at, $21, $22 FROM l, u), ",
    create_expected!(
        "EXISTS (SELECT 1 FROM u) AND ",
        "1 + (SELECT count(*) FROM p) WHERE id = $1 AND EXISTS (SELECT 1 FROM u)",
        "2",
        "n AS (SELECT pg_notify($13, $1::text) FROM u) \
         SELECT u.*, "
    ),
    extras!("$20"),
    ", l.n_trials, l.n_retries, l.at, (SELECT id FROM p), (SELECT count(*) FROM n), \
     l.last_seq, k.seqs, k.ats, k.texts \
     FROM l LEFT JOIN u ON true CROSS JOIN LATERAL changes_between($1, $23, l.last_seq, $24) AS k"
);

/// The most changes before its own that [`FINISH_AND_CREATE`] brings back: a worker's view is
/// a few behind; one far behind reads the rest.
const MOST: i64 = 1000;

/// One connection with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

/// What fails inside a transaction: the server, or a rule of the store.
enum Fail {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

type Result<T, E = Fail> = std::result::Result<T, E>;

impl PgStore {
    /// Connects to the store `url` names (`postgresql://…` or `postgres://…`), creating its
    /// schema or migrating it forward; a schema of another program or of a newer Hyperion is
    /// refused and left untouched.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let url = url::parse(url).map_err(|reason| StoreError::Server {
            url: url::redact(url),
            reason,
        })?;
        let store = PgStore {
            channel: format!("hyperion_{}", url.schema),
            url,
            pool: Mutex::new(Vec::new()),
            specs: Mutex::new(HashMap::new()),
            retries: AtomicU64::new(0),
            said: AtomicBool::new(false),
            expected: Mutex::new(HashMap::new()),
        };
        let conn = store.connect().map_err(|e| match e {
            Fail::Pg(e) => store.error(e),
            Fail::Store(e) => e,
        })?;
        store.pool().push(conn);
        Ok(store)
    }

    /// The URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url.shown
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.url.schema
    }

    /// Operations retried after a lost connection, a serialization failure or a deadlock.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connect(&self) -> Result<Conn> {
        let mut client = self.url.config.connect(self.url.tls.clone())?;
        schema::prepare(&mut client, &self.url)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    /// Runs `f` on a pooled connection; what the server or the network got wrong is retried
    /// on a new one with backoff, and a rule of the store that `f` broke rolls its transaction
    /// back and keeps the connection.
    fn on_conn<T>(&self, mut f: impl FnMut(&mut Tx<'_>) -> Result<T>) -> Result<T, StoreError> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(5);
        loop {
            let pooled = self.pool().pop();
            let attempt = pooled
                .map(Ok)
                .unwrap_or_else(|| self.connect())
                .and_then(|mut conn| {
                    let out = f(&mut Tx::on(&mut conn, &self.channel));
                    let keep = match &out {
                        Ok(_) => true,
                        Err(Fail::Store(_)) => conn.client.batch_execute("ROLLBACK").is_ok(),
                        Err(Fail::Pg(_)) => false,
                    };
                    let mut pool = self.pool();
                    if keep && pool.len() < POOL {
                        pool.push(conn);
                    }
                    out
                });
            match attempt {
                Ok(out) => {
                    if self.said.swap(false, Ordering::Relaxed) {
                        eprintln!("note: the store {} is back", self.url.shown);
                    }
                    return Ok(out);
                }
                Err(Fail::Pg(e)) if transient(&e) && started.elapsed() < PATIENCE => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    if lost(&e) {
                        // Every pooled connection went with the server.
                        self.pool().clear();
                        if !self.said.swap(true, Ordering::Relaxed) {
                            eprintln!(
                                "warning: lost the store {} ({}); reconnecting",
                                self.url.shown,
                                reason(&e)
                            );
                        }
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(Fail::Pg(e)) => return Err(self.error(e)),
                Err(Fail::Store(e)) => return Err(e),
            }
        }
    }

    /// Runs `f` in a transaction that holds study `study`'s lock, with its spec, the server's
    /// time and the study's counters. The fewer round trips under the lock, the more writers a
    /// study takes: the lock is taken with the `BEGIN`, in one, and the changes `f` logs are
    /// sent with the `COMMIT`, in another.
    fn write<T>(
        &self,
        study: StudyId,
        f: impl FnMut(&mut Tx<'_>, &StudySpec, Locked) -> Result<T>,
    ) -> Result<T, StoreError> {
        self.write_locked(study, false, f)
    }

    /// [`PgStore::write`]; with `new_id`, [`Locked::new_id`] is an id for a new trial.
    fn write_locked<T>(
        &self,
        study: StudyId,
        new_id: bool,
        mut f: impl FnMut(&mut Tx<'_>, &StudySpec, Locked) -> Result<T>,
    ) -> Result<T, StoreError> {
        let spec = self.spec(study)?;
        // Integers only: safe in the text of a simple query, which takes no parameters.
        let sql = format!(
            "BEGIN; SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, \
             n_trials, n_retries, last_seq, {} FROM studies WHERE id = {} FOR UPDATE",
            if new_id {
                "nextval(pg_get_serial_sequence('trials', 'id'))"
            } else {
                "0"
            },
            study.0
        );
        self.on_conn(|tx| {
            let row = tx
                .client
                .simple_query(&sql)?
                .into_iter()
                .find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => Some(row),
                    _ => None,
                });
            let Some(row) = row else {
                return Err(StoreError::StudyIdNotFound(study).into());
            };
            let number = |i: usize| -> Result<i64> {
                row.get(i)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| StoreError::Inconsistent("the study's row".into()).into())
            };
            let locked = Locked {
                at: Timestamp(number(0)? as u64),
                n_trials: number(1)?,
                n_retries: number(2)?,
                new_id: number(4)?,
            };
            let last_seq = number(3)?;
            let out = f(tx, &spec, locked)?;
            tx.commit(study, last_seq)?;
            Ok(out)
        })
    }

    /// Runs `f` on one snapshot, so that a listing's trials and their values agree (reads of a
    /// single statement need none: they run on [`PgStore::on_conn`]).
    fn read<T>(
        &self,
        study: StudyId,
        mut f: impl FnMut(&mut Tx<'_>, &StudySpec) -> Result<T>,
    ) -> Result<T, StoreError> {
        let spec = self.spec(study)?;
        self.on_conn(|tx| {
            tx.client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
            let out = f(tx, &spec)?;
            tx.client.batch_execute("COMMIT")?;
            Ok(out)
        })
    }

    /// [`Store::create_trial`] without a round trip under the study's lock: the proposals for
    /// the numbers the study will likely give next are made first (into `made`), and one
    /// statement locks the study, inserts the proposal whose number is the study's next, logs
    /// it and unlocks. `None` when it did not settle the matter — no proposal had the study's
    /// next number (others wrote more than expected), one was declined or carries sampler
    /// state, or the budget looks spent: the locked path decides those, exactly as before, with
    /// the proposals already made.
    fn create_expected(
        &self,
        study: StudyId,
        new: &NewTrial,
        max_trials: Option<u64>,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
        made: &mut Vec<(TrialNumber, Option<Proposal>)>,
    ) -> Result<Option<Created>, StoreError> {
        let Some(batch) = self.batch(study, new, propose, made) else {
            return Ok(None);
        };
        let row = self.on_conn(|tx| {
            let args = CreateArgs::new(study, &batch, new, max_trials, tx.channel);
            tx.one(CREATE_EXPECTED, &args.refs())
        })?;
        self.created_from(study, new, max_trials, &batch, &row, 0, made)
    }

    /// [`Store::finish_and_create`] in one statement, with the proposals of
    /// [`PgStore::create_expected`]: the trial's end, the next trial and the changes since
    /// `cursor`, one commit and one round trip. The creation is `None` when that statement did
    /// not settle it, and the changes are then those up to the finish. `Err` when the trial
    /// was not unfinished: then nothing was written.
    #[allow(clippy::too_many_arguments)]
    fn finish_and_create_expected(
        &self,
        study: StudyId,
        finish: &Finish,
        new: &NewTrial,
        max_trials: Option<u64>,
        cursor: u64,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
        made: &mut Vec<(TrialNumber, Option<Proposal>)>,
    ) -> Result<PartSuccession, StoreError> {
        // An empty batch (no proposal fits) still finishes the trial, in the same statement.
        let batch = self.batch(study, new, propose, made).unwrap_or_default();
        let (name, step, message) = state_columns(&finish.state);
        let values = finish.values.as_ref().map(to_json);
        let first = finish.values.as_ref().and_then(|v| v.first().copied());
        let change = Change::TrialFinished {
            number: finish.number,
            state: finish.state.clone(),
            values: finish.values.clone(),
        };
        let (kind, text) = (change.kind(), to_json(&change));
        let (number, after) = (finish.number.0 as i64, cursor.min(i64::MAX as u64) as i64);
        let row = self.on_conn(|tx| {
            let args = CreateArgs::new(study, &batch, new, max_trials, tx.channel);
            let mut refs = args.refs();
            refs.extend::<[&(dyn ToSql + Sync); 10]>([
                &name, &step, &message, &values, &first, &number, &kind, &text, &after, &MOST,
            ]);
            tx.one(FINISH_AND_CREATE, &refs)
        })?;
        if row.get::<_, Option<i64>>(0).is_none() {
            return self.on_conn(|tx| Err(tx.not_finishable(study, finish.number)));
        }
        let finished = with_extras(trial_from_row(&row)?, &row)?;
        // The columns after the trial's and its extras: `l.n_trials, l.n_retries, l.at, …`.
        const L: usize = TRIAL_COLUMNS + EXTRAS;
        let created = if batch.numbers.is_empty() {
            None
        } else {
            self.created_from(study, new, max_trials, &batch, &row, L, made)?
        };
        // The changes before its own, read under the lock, if they are all there.
        let last_seq = row.get::<_, i64>(L + 5) as u64;
        let (seqs, ats, texts): (Vec<i64>, Vec<i64>, Vec<String>) =
            (row.get(L + 6), row.get(L + 7), row.get(L + 8));
        if seqs.len() as u64 != last_seq.saturating_sub(cursor) {
            return Ok((finished, created, None));
        }
        let mut changes = Vec::with_capacity(seqs.len() + 2);
        for ((seq, at), text) in seqs.into_iter().zip(ats).zip(texts) {
            changes.push(LoggedChange {
                seq: seq as u64,
                at: Timestamp(at as u64),
                change: from_json("change", &text)?,
            });
        }
        let at = Timestamp(row.get::<_, i64>(L + 2) as u64);
        changes.push(LoggedChange {
            seq: last_seq + 1,
            at,
            change,
        });
        if let Some(Created::Trial(trial)) = &created {
            changes.push(LoggedChange {
                seq: last_seq + 2,
                at,
                change: crate::created(trial),
            });
        }
        Ok((finished, created, Some(changes)))
    }

    /// The proposals for the numbers the study will likely give next, made into `made`, as
    /// the one-statement creation takes them; `None` when one of them cannot go in it.
    fn batch(
        &self,
        study: StudyId,
        new: &NewTrial,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
        made: &mut Vec<(TrialNumber, Option<Proposal>)>,
    ) -> Option<Batch> {
        let expected = self.expected_of(study);
        let started = Instant::now();
        let mut batch = Batch {
            expected,
            ..Batch::default()
        };
        for number in (expected.next..).take((2 * expected.ahead + 1) as usize) {
            let number = TrialNumber(number);
            let proposal = propose(number);
            let plain = proposal.as_ref().filter(|p| p.state.is_empty());
            let Some(plain) = plain else {
                made.push((number, proposal));
                return None;
            };
            let params = Arc::new(plain.params.clone());
            // The id is the server's: the statement writes it in front of the rest.
            let trial = new.trial(TrialId(0), number, params.clone(), Timestamp(0));
            let change = to_json(&crate::created(&trial));
            let Some(rest) = change.strip_prefix(CREATED_WITH_ID_0) else {
                made.push((number, proposal));
                return None;
            };
            batch.changes.push(rest.to_owned());
            batch.params.push(to_json(&*params));
            batch.numbers.push(number.0 as i64);
            made.push((number, proposal));
            if started.elapsed() > PROPOSING {
                break;
            }
        }
        Some(batch)
    }

    /// What the one-statement creation did, from its columns from `at` on (the study's count
    /// of trials and of retries when locked, its time, the new trial's id if one was made).
    #[allow(clippy::too_many_arguments)]
    fn created_from(
        &self,
        study: StudyId,
        new: &NewTrial,
        max_trials: Option<u64>,
        batch: &Batch,
        row: &Row,
        at: usize,
        made: &mut [(TrialNumber, Option<Proposal>)],
    ) -> Result<Option<Created>, StoreError> {
        let count = row.get::<_, i64>(at) as u64;
        let retries = row.get::<_, i64>(at + 1) as u64;
        let id: Option<i64> = row.get(at + 3);
        let expected = batch.expected;
        let gap = count.saturating_sub(expected.next);
        self.update_expected(study, |now| {
            now.next = now.next.max(count + u64::from(id.is_some()));
            now.ahead = gap.max(now.ahead - now.ahead / 8).min(MAX_EXPECTED);
        });
        let Some(id) = id else {
            if !rules::fits_budget(new, count - retries, max_trials) {
                return Ok(Some(Created::LimitReached));
            }
            return Ok(None);
        };
        let time = Timestamp(row.get::<_, i64>(at + 2) as u64);
        let proposal = made[(count - expected.next) as usize].1.take();
        let params = Arc::new(proposal.map(|p| p.params).unwrap_or_default());
        let trial = new.trial(TrialId(id as u64), TrialNumber(count), params, time);
        Ok(Some(Created::Trial(trial)))
    }

    /// [`Store::create_trial`] under the study's lock, with the proposals made already: the
    /// path that settles what the one-statement creation could not.
    fn create_locked(
        &self,
        study: StudyId,
        new: &NewTrial,
        max_trials: Option<u64>,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
        made: Vec<(TrialNumber, Option<Proposal>)>,
    ) -> Result<Created, StoreError> {
        self.write_locked(study, true, |tx, _, locked| {
            let (count, retries) = (locked.n_trials, locked.n_retries);
            if !rules::fits_budget(new, (count - retries) as u64, max_trials) {
                return Ok(Created::LimitReached);
            }
            let number = TrialNumber(count as u64);
            // A number is proposed for once.
            let proposal = match made.iter().find(|(n, _)| *n == number) {
                Some((_, proposal)) => proposal.clone(),
                None => propose(number),
            };
            let Some(proposal) = proposal else {
                return Ok(Created::Declined);
            };
            let params = Arc::new(proposal.params);
            let trial = tx.insert_trial(study, number, new, params, locked.at, locked.new_id)?;
            for (key, value) in proposal.state {
                tx.append(locked.at, &Change::SamplerStateSet { key, value });
            }
            Ok(Created::Trial(trial))
        })
        .inspect(|created| {
            if let Created::Trial(trial) = created {
                self.saw(study, trial.number.0 + 1);
            }
        })
    }

    fn expected_of(&self, study: StudyId) -> Expected {
        let all = self.expected.lock().unwrap_or_else(|e| e.into_inner());
        all.get(&study).copied().unwrap_or_default()
    }

    /// Takes note of trials created, up to `next`.
    fn saw(&self, study: StudyId, next: u64) {
        self.update_expected(study, |e| e.next = e.next.max(next));
    }

    fn update_expected(&self, study: StudyId, f: impl FnOnce(&mut Expected)) {
        let mut all = self.expected.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(study).or_default());
    }

    fn spec(&self, study: StudyId) -> Result<Arc<StudySpec>, StoreError> {
        if let Some(spec) = self
            .specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&study)
        {
            return Ok(spec.clone());
        }
        let json = self.on_conn(|tx| {
            let row = tx.opt(
                "SELECT spec FROM studies WHERE id = $1",
                &[&(study.0 as i64)],
            )?;
            Ok(row.map(|r| r.get::<_, String>(0)))
        })?;
        let spec = Arc::new(parse_spec(
            &json.ok_or(StoreError::StudyIdNotFound(study))?,
        )?);
        let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        specs.insert(study, spec.clone());
        Ok(spec)
    }

    /// A server error as the user reads it: what went wrong, where (password hidden).
    fn error(&self, e: postgres::Error) -> StoreError {
        StoreError::Server {
            url: self.url.shown.clone(),
            reason: schema::explain(&e, &self.url),
        }
    }
}

/// Whether an operation that failed with `e` can simply be run again.
fn transient(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    lost(e)
        || e.code().is_some_and(|c| {
            [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(c)
        })
}

/// Whether `e` says the connection is gone (the server restarted, the network failed, or the
/// backend was terminated), rather than that a statement failed.
fn lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.is_closed()
        || e.code().is_some_and(|c| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(c)
        })
        || (e.code().is_none() && e.as_db_error().is_none() && !is_auth(e))
}

fn is_auth(e: &postgres::Error) -> bool {
    e.to_string().contains("password")
}

fn reason(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// What a write learns with its study's lock.
#[derive(Clone, Copy)]
struct Locked {
    /// The server's time.
    at: Timestamp,
    n_trials: i64,
    n_retries: i64,
    /// An id for a new trial ([`PgStore::write_locked`]), else 0.
    new_id: i64,
}

/// A connection with its statement cache, and what a write sends with its `COMMIT`.
struct Tx<'c> {
    client: &'c mut Client,
    statements: &'c mut HashMap<&'static str, Statement>,
    /// The changes to log.
    changes: Vec<(Timestamp, Change)>,
    /// Statements to run before the `COMMIT`, their values written as [`literal`]s.
    deferred: String,
    /// The trials and the retries among them that `deferred` inserts.
    added: (i64, i64),
    /// Where writes are announced (`LISTEN`).
    channel: &'c str,
}

impl<'c> Tx<'c> {
    fn on(conn: &'c mut Conn, channel: &'c str) -> Self {
        Tx {
            client: &mut conn.client,
            statements: &mut conn.statements,
            changes: Vec::new(),
            deferred: String::new(),
            added: (0, 0),
            channel,
        }
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.query(&s, params)?)
    }

    fn opt(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.query_opt(&s, params)?)
    }

    fn one(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let s = self.statement(sql)?;
        Ok(self.client.query_one(&s, params)?)
    }

    fn exec(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let s = self.statement(sql)?;
        Ok(self.client.execute(&s, params)?)
    }

    /// Logs `change` when the write commits, with the next sequence number.
    fn append(&mut self, at: Timestamp, change: &Change) {
        self.changes.push((at, change.clone()));
    }

    /// Sends the deferred statements, the logged changes (numbered after `last_seq`, the
    /// study's when it was locked), the notification and the `COMMIT`, in one round trip.
    fn commit(&mut self, study: StudyId, last_seq: i64) -> Result<()> {
        use std::fmt::Write;
        let mut sql = std::mem::take(&mut self.deferred);
        let changes = std::mem::take(&mut self.changes);
        if !changes.is_empty() {
            sql += "INSERT INTO changes (study_id, seq, at, kind, change) VALUES ";
            for (i, (at, change)) in (1..).zip(&changes) {
                let comma = if i == 1 { "" } else { ", " };
                let _ = write!(
                    sql,
                    "{comma}({}, {}, {}, {}, {})",
                    study.0,
                    last_seq + i,
                    at.0,
                    literal(change.kind())?,
                    literal(&to_json(change))?
                );
            }
            // The notification reaches the watchers when the write commits. A new trial is
            // always logged: its counts go with the log's end.
            let (trials, retries) = std::mem::take(&mut self.added);
            let _ = write!(
                sql,
                "; SELECT pg_notify({}, '{}'); \
                 UPDATE studies SET last_seq = {}, n_trials = n_trials + {trials}, \
                 n_retries = n_retries + {retries} WHERE id = {}; ",
                literal(self.channel)?,
                study.0,
                last_seq + changes.len() as i64,
                study.0
            );
        }
        sql += "COMMIT";
        Ok(self.client.batch_execute(&sql)?)
    }

    /// Why trial `number`, which a finishing write found no unfinished row of, cannot be
    /// finished: it is finished already, or missing.
    fn not_finishable(&mut self, study: StudyId, number: TrialNumber) -> Fail {
        let state = match self.state_of(study, number) {
            Ok(state) => state,
            Err(fail) => return fail,
        };
        match rules::check_unfinished(number, state_name(&state)) {
            Err(e) => e.into(),
            Ok(()) => StoreError::TrialNotFound { number }.into(),
        }
    }

    fn state_of(&mut self, study: StudyId, number: TrialNumber) -> Result<String> {
        Ok(self
            .opt(
                "SELECT state FROM trials WHERE study_id = $1 AND number = $2",
                &[&(study.0 as i64), &(number.0 as i64)],
            )?
            .ok_or(StoreError::TrialNotFound { number })?
            .get(0))
    }

    fn require_running(&mut self, study: StudyId, number: TrialNumber) -> Result<()> {
        match self.state_of(study, number)?.as_str() {
            "running" => Ok(()),
            other => Err(StoreError::NotRunning {
                number,
                state: state_name(other),
            }
            .into()),
        }
    }

    /// Inserts trial `number` (the study's next) with id `id` at the commit, and logs its
    /// creation.
    fn insert_trial(
        &mut self,
        study: StudyId,
        number: TrialNumber,
        new: &NewTrial,
        params: Arc<Params>,
        at: Timestamp,
        id: i64,
    ) -> Result<Trial> {
        use std::fmt::Write;
        let or_null = |v: Option<u64>| v.map_or("NULL".to_owned(), |v| v.to_string());
        let _ = write!(
            self.deferred,
            "INSERT INTO trials (id, study_id, number, state, params, parent, depth, retry_of, \
             created_at, started_at, heartbeat_at) \
             VALUES ({id}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}); ",
            study.0,
            number.0,
            literal(new.state().name())?,
            literal(&to_json(&*params))?,
            or_null(new.parent.map(|p| p.0)),
            new.depth,
            or_null(new.retry_of.map(|p| p.0)),
            at.0,
            or_null((!new.pending).then_some(at.0)),
            or_null(new.lease_end(at).map(|t| t.0)),
        );
        self.added.0 += 1;
        self.added.1 += i64::from(new.takes_a_place());
        let trial = new.trial(TrialId(id as u64), number, params, at);
        self.append(at, &crate::created(&trial));
        Ok(trial)
    }

    /// Trial `number` with its intermediate values and user attributes, in one statement.
    fn load_trial(&mut self, study: StudyId, number: TrialNumber) -> Result<Trial> {
        let row = self
            .opt(
                concat!(
                    "SELECT ",
                    trial_columns!(),
                    ", ",
                    extras!(),
                    " FROM trials WHERE study_id = $1 AND number = $2"
                ),
                &[&(study.0 as i64), &(number.0 as i64)],
            )?
            .ok_or(StoreError::TrialNotFound { number })?;
        Ok(with_extras(trial_from_row(&row)?, &row)?)
    }
}

/// `text` as an SQL string literal, for the statements a write sends with its `COMMIT` (a
/// simple query, which takes no parameters). Doubling the quotes is the whole escaping, as in
/// libpq's `PQescapeLiteral`, because every connection sets `standard_conforming_strings` (a
/// backslash is a plain character) and speaks UTF-8; a NUL, which no text value holds, is
/// refused.
fn literal(text: &str) -> Result<String> {
    if text.contains('\0') {
        return Err(StoreError::Inconsistent(format!("a NUL character in {text:?}")).into());
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

/// `trial` with its intermediate values and user attributes from the [`extras!`] of `row`.
fn with_extras(mut trial: Trial, row: &Row) -> Result<Trial, StoreError> {
    let steps: Vec<i64> = row.get(TRIAL_COLUMNS);
    let values: Vec<f64> = row.get(TRIAL_COLUMNS + 1);
    let others: Vec<Option<String>> = row.get(TRIAL_COLUMNS + 2);
    for ((step, value), others) in steps.into_iter().zip(values).zip(others) {
        add_intermediate(&mut trial, step, value, others)?;
    }
    let keys: Vec<String> = row.get(TRIAL_COLUMNS + 3);
    let values: Vec<String> = row.get(TRIAL_COLUMNS + 4);
    for (key, value) in keys.into_iter().zip(values) {
        trial
            .user_attrs
            .insert(key, from_json("user attribute", &value)?);
    }
    Ok(trial)
}

fn trial_from_row(r: &Row) -> Result<Trial, StoreError> {
    crate::columns::TrialRow {
        id: r.get(0),
        number: r.get(1),
        state: r.get(2),
        prune_step: r.get(3),
        message: r.get(4),
        params: r.get(5),
        values: r.get(6),
        parent: r.get(7),
        depth: r.get(8),
        retry_of: r.get(9),
        created_at: r.get(10),
        started_at: r.get(11),
        finished_at: r.get(12),
        metrics: r.get(13),
        launch: r.get(14),
        stages: r.get(15),
        objective_version: r.get(16),
    }
    .into_trial()
}

fn add_intermediate(
    trial: &mut Trial,
    step: i64,
    value: f64,
    others: Option<String>,
) -> Result<(), StoreError> {
    trial.intermediate.insert(step as u64, value);
    if let Some(others) = others {
        trial
            .intermediate_others
            .insert(step as u64, from_json("intermediate values", &others)?);
    }
    Ok(())
}

fn study_record(row: &Row) -> Result<StudyRecord, StoreError> {
    Ok(StudyRecord {
        id: StudyId(row.get::<_, i64>(0) as u64),
        spec: parse_spec(row.get(1))?,
        created_at: Timestamp(row.get::<_, i64>(2) as u64),
    })
}

impl Store for PgStore {
    fn location(&self) -> String {
        self.url.shown.clone()
    }

    fn create_study(&self, spec: &StudySpec) -> Result<StudyRecord, StoreError> {
        spec.validate()?;
        self.on_conn(|tx| {
            tx.client.batch_execute("BEGIN")?;
            // Creators of one name take turns, so that exactly one inserts it.
            tx.exec(
                "SELECT pg_advisory_xact_lock(hashtext('hyperion study ' || $1))",
                &[&spec.name],
            )?;
            let existing = tx.opt(
                "SELECT id, spec, created_at FROM studies WHERE name = $1",
                &[&spec.name],
            )?;
            let record = match existing {
                Some(row) => {
                    let record = study_record(&row)?;
                    if let Some(what) = spec_difference(&record.spec, spec) {
                        return Err(StoreError::SpecMismatch {
                            name: spec.name.clone(),
                            what,
                        }
                        .into());
                    }
                    record
                }
                None => {
                    let row = tx.one(
                        "INSERT INTO studies (name, spec, created_at) VALUES \
                         ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) \
                         RETURNING id, spec, created_at",
                        &[&spec.name, &to_json(spec)],
                    )?;
                    study_record(&row)?
                }
            };
            tx.client.batch_execute("COMMIT")?;
            Ok(record)
        })
    }

    fn study(&self, name: &str) -> Result<StudyRecord, StoreError> {
        let row = self.on_conn(|tx| {
            tx.opt(
                "SELECT id, spec, created_at FROM studies WHERE name = $1",
                &[&name],
            )
        })?;
        let row = row.ok_or_else(|| StoreError::StudyNotFound {
            name: name.to_owned(),
        })?;
        study_record(&row)
    }

    fn studies(&self) -> Result<Vec<StudyRecord>, StoreError> {
        let rows = self.on_conn(|tx| {
            tx.query(
                "SELECT id, spec, created_at FROM studies ORDER BY name",
                &[],
            )
        })?;
        rows.iter().map(study_record).collect()
    }

    fn delete_study(&self, name: &str) -> Result<(), StoreError> {
        let id = self.on_conn(|tx| {
            tx.client.batch_execute("BEGIN")?;
            let id: i64 = tx
                .opt(
                    "SELECT id FROM studies WHERE name = $1 FOR UPDATE",
                    &[&name],
                )?
                .ok_or_else(|| StoreError::StudyNotFound {
                    name: name.to_owned(),
                })?
                .get(0);
            for sql in [
                "DELETE FROM changes WHERE study_id = $1",
                "DELETE FROM intermediate WHERE study_id = $1",
                "DELETE FROM user_attrs WHERE study_id = $1",
                "DELETE FROM registered_params WHERE study_id = $1",
                "DELETE FROM trials WHERE study_id = $1",
                "DELETE FROM studies WHERE id = $1",
            ] {
                tx.exec(sql, &[&id])?;
            }
            tx.client.batch_execute("COMMIT")?;
            Ok(id)
        })?;
        let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        specs.remove(&StudyId(id as u64));
        Ok(())
    }

    fn create_trial(
        &self,
        study: StudyId,
        new: &NewTrial,
        max_trials: Option<u64>,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
    ) -> Result<Created, StoreError> {
        let mut made = Vec::new();
        if let Some(created) = self.create_expected(study, new, max_trials, propose, &mut made)? {
            return Ok(created);
        }
        self.create_locked(study, new, max_trials, propose, made)
    }

    fn finish_and_create(
        &self,
        study: StudyId,
        finish: Finish,
        new: &NewTrial,
        max_trials: Option<u64>,
        cursor: u64,
        propose: &mut dyn FnMut(TrialNumber) -> Option<Proposal>,
    ) -> Result<Succession, StoreError> {
        let spec = self.spec(study)?;
        let values = finish.values.as_deref();
        check_values(finish.number, &finish.state, values, spec.objectives.len())?;
        let mut made = Vec::new();
        let (finished, created, changes) = self.finish_and_create_expected(
            study, &finish, new, max_trials, cursor, propose, &mut made,
        )?;
        let (created, changes) = match (created, changes) {
            (Some(created), Some(changes)) => (created, changes),
            // Settled by the locked path, or more changes than one statement brings: read them.
            (created, _) => {
                let created = match created {
                    Some(created) => created,
                    None => self.create_locked(study, new, max_trials, propose, made)?,
                };
                (created, self.changes_since(study, cursor)?)
            }
        };
        Ok(Succession {
            finished,
            created,
            changes,
        })
    }

    fn claim_pending(
        &self,
        study: StudyId,
        lease: Option<Duration>,
    ) -> Result<Option<Trial>, StoreError> {
        self.write(study, |tx, _, locked| {
            let at = locked.at;
            let Some(row) = tx.opt(
                "SELECT number FROM trials WHERE study_id = $1 AND state = 'pending' \
                 ORDER BY number LIMIT 1",
                &[&(study.0 as i64)],
            )?
            else {
                return Ok(None);
            };
            let number = TrialNumber(row.get::<_, i64>(0) as u64);
            let until = lease.map(|lease| lease_end(at, lease).0 as i64);
            tx.exec(
                "UPDATE trials SET state = 'running', started_at = $3, heartbeat_at = $4 \
                 WHERE study_id = $1 AND number = $2",
                &[
                    &(study.0 as i64),
                    &(number.0 as i64),
                    &(at.0 as i64),
                    &until,
                ],
            )?;
            tx.append(at, &Change::TrialStarted { number });
            tx.load_trial(study, number).map(Some)
        })
    }

    fn set_param(
        &self,
        study: StudyId,
        number: TrialNumber,
        name: &str,
        value: &ParamValue,
        distribution: &Distribution,
    ) -> Result<(), StoreError> {
        self.write(study, |tx, spec, locked| {
            let at = locked.at;
            tx.require_running(study, number)?;
            let key: [&(dyn ToSql + Sync); 2] = [&(study.0 as i64), &(number.0 as i64)];
            let json: String = tx
                .one(
                    "SELECT params FROM trials WHERE study_id = $1 AND number = $2",
                    &key,
                )?
                .get(0);
            let mut params: Params = from_json("params", &json)?;
            let registered = tx.opt(
                "SELECT distribution FROM registered_params WHERE study_id = $1 AND name = $2",
                &[&(study.0 as i64), &name],
            )?;
            let registered = match registered {
                Some(row) => Some(from_json::<Distribution>("distribution", row.get(0))?),
                None => spec.space.get(name).map(|p| p.distribution.clone()),
            };
            let new = check_param(
                number,
                name,
                value,
                distribution,
                params.contains_key(name),
                registered.as_ref(),
            )?;
            if new {
                tx.exec(
                    "INSERT INTO registered_params (study_id, name, distribution) \
                     VALUES ($1, $2, $3)",
                    &[&(study.0 as i64), &name, &to_json(distribution)],
                )?;
                let change = Change::ParamRegistered {
                    name: name.to_owned(),
                    distribution: distribution.clone(),
                };
                tx.append(at, &change);
            }
            params.insert(name.to_owned(), value.clone());
            tx.exec(
                "UPDATE trials SET params = $3 WHERE study_id = $1 AND number = $2",
                &[&(study.0 as i64), &(number.0 as i64), &to_json(&params)],
            )?;
            let change = Change::ParamSet {
                number,
                name: name.to_owned(),
                value: value.clone(),
            };
            tx.append(at, &change);
            Ok(())
        })
    }

    fn heartbeat(
        &self,
        study: StudyId,
        numbers: &[TrialNumber],
        lease: Duration,
    ) -> Result<(), StoreError> {
        let numbers: Vec<i64> = numbers.iter().map(|n| n.0 as i64).collect();
        self.write(study, |tx, _, locked| {
            let at = locked.at;
            let until = lease_end(at, lease).0 as i64;
            tx.exec(
                "UPDATE trials SET heartbeat_at = $3 \
                 WHERE study_id = $1 AND number = ANY($2) AND state = 'running'",
                &[&(study.0 as i64), &numbers, &until],
            )?;
            Ok(())
        })
    }

    fn fail_stale(&self, study: StudyId, max_retries: u32) -> Result<Vec<TrialNumber>, StoreError> {
        self.write(study, |tx, _, locked| {
            let now = locked.at;
            let stale: Vec<(TrialNumber, i64)> = tx
                .query(
                    "SELECT number, heartbeat_at FROM trials WHERE study_id = $1 \
                     AND state = 'running' AND heartbeat_at < $2 ORDER BY number",
                    &[&(study.0 as i64), &(now.0 as i64)],
                )?
                .iter()
                .map(|r| (TrialNumber(r.get::<_, i64>(0) as u64), r.get(1)))
                .collect();
            let mut next = locked.n_trials;
            for &(number, until) in &stale {
                let error = stale_error(Timestamp(until as u64));
                tx.exec(
                    "UPDATE trials SET state = 'failed', message = $3, finished_at = $4 \
                     WHERE study_id = $1 AND number = $2",
                    &[
                        &(study.0 as i64),
                        &(number.0 as i64),
                        &error,
                        &(now.0 as i64),
                    ],
                )?;
                let state = TrialState::Failed {
                    error: error.clone(),
                };
                let change = Change::TrialFinished {
                    number,
                    state,
                    values: None,
                };
                tx.append(now, &change);
                let trial = tx.load_trial(study, number)?;
                let depth = retry_depth(number, |n| {
                    let row = tx.opt(
                        "SELECT retry_of FROM trials WHERE study_id = $1 AND number = $2",
                        &[&(study.0 as i64), &(n.0 as i64)],
                    );
                    let retry_of = row.ok()??.get::<_, Option<i64>>(0)?;
                    Some(TrialNumber(retry_of as u64))
                });
                if let Some(new) = rules::retry(&trial, depth, max_retries) {
                    let params = trial.params.clone();
                    let id = tx
                        .one(
                            "SELECT nextval(pg_get_serial_sequence('trials', 'id'))",
                            &[],
                        )?
                        .get(0);
                    tx.insert_trial(study, TrialNumber(next as u64), &new, params, now, id)?;
                    next += 1;
                }
            }
            Ok(stale.into_iter().map(|(n, _)| n).collect())
        })
    }

    fn log(&self, study: StudyId, change: &Change) -> Result<(), StoreError> {
        check_log_only(change)?;
        self.write(study, |tx, _, locked| {
            // Kept with the trial too, for who inspects it from elsewhere.
            let kept = match change {
                Change::TrialLaunched { number, launch } => Some((
                    "UPDATE trials SET launch = $3 WHERE study_id = $1 AND number = $2",
                    number,
                    to_json(launch),
                )),
                Change::StagesRecorded { number, stages } => Some((
                    "UPDATE trials SET stages = $3 WHERE study_id = $1 AND number = $2",
                    number,
                    to_json(stages),
                )),
                _ => None,
            };
            if let Some((update, number, value)) = kept {
                tx.exec(update, &[&(study.0 as i64), &(number.0 as i64), &value])?;
            }
            tx.append(locked.at, change);
            Ok(())
        })
    }

    fn decisions(&self, study: StudyId) -> Result<Vec<Decision>, StoreError> {
        self.spec(study)?;
        self.on_conn(|tx| {
            let rows = tx.query(
                "SELECT change FROM changes WHERE study_id = $1 AND kind = 'decision_recorded' \
                 ORDER BY seq",
                &[&(study.0 as i64)],
            )?;
            let decisions = rows.iter().map(|r| match from_json("change", r.get(0))? {
                Change::DecisionRecorded(d) => Ok(d),
                other => Err(StoreError::Inconsistent(format!(
                    "a {} logged as a decision",
                    other.kind()
                ))),
            });
            Ok(decisions.collect::<Result<_, StoreError>>()?)
        })
    }

    fn report(
        &self,
        study: StudyId,
        number: TrialNumber,
        step: u64,
        values: &[f64],
    ) -> Result<(), StoreError> {
        self.write(study, |tx, spec, locked| {
            let at = locked.at;
            tx.require_running(study, number)?;
            check_report(number, step, values, spec.objectives.len())?;
            let (value, others) = (values[0], values[1..].to_vec());
            let others_json = (!others.is_empty()).then(|| to_json(&others));
            tx.exec(
                "INSERT INTO intermediate (study_id, number, step, value, others) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (study_id, number, step) \
                 DO UPDATE SET value = EXCLUDED.value, others = EXCLUDED.others",
                &[
                    &(study.0 as i64),
                    &(number.0 as i64),
                    &(step as i64),
                    &value,
                    &others_json,
                ],
            )?;
            let change = Change::MetricReported {
                number,
                step,
                value,
                others,
            };
            tx.append(at, &change);
            Ok(())
        })
    }

    fn set_user_attr(
        &self,
        study: StudyId,
        number: TrialNumber,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.write(study, |tx, _, locked| {
            let at = locked.at;
            tx.state_of(study, number)?;
            tx.exec(
                "INSERT INTO user_attrs (study_id, number, key, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (study_id, number, key) DO UPDATE SET value = EXCLUDED.value",
                &[&(study.0 as i64), &(number.0 as i64), &key, &to_json(value)],
            )?;
            let change = Change::UserAttrSet {
                number,
                key: key.to_owned(),
                value: value.clone(),
            };
            tx.append(at, &change);
            Ok(())
        })
    }

    fn keep_metrics(
        &self,
        study: StudyId,
        number: TrialNumber,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<(), StoreError> {
        let metrics = &rules::finite(metrics);
        self.write(study, |tx, _, locked| {
            let at = locked.at;
            tx.state_of(study, number)?;
            tx.exec(
                "UPDATE trials SET metrics = $3 WHERE study_id = $1 AND number = $2",
                &[&(study.0 as i64), &(number.0 as i64), &to_json(metrics)],
            )?;
            let change = Change::MetricsKept {
                number,
                metrics: metrics.clone(),
            };
            tx.append(at, &change);
            Ok(())
        })
    }

    fn revise_values(
        &self,
        study: StudyId,
        number: TrialNumber,
        values: &[f64],
        version: u32,
    ) -> Result<(), StoreError> {
        self.write(study, |tx, spec, locked| {
            let state = tx.state_of(study, number)?;
            crate::check_revision(number, &state, values, spec.objectives.len())?;
            tx.exec(
                "UPDATE trials SET objective_values = $3, value0 = $4, objective_version = $5 \
                 WHERE study_id = $1 AND number = $2",
                &[
                    &(study.0 as i64),
                    &(number.0 as i64),
                    &to_json(&values),
                    &values.first().copied(),
                    &i64::from(version),
                ],
            )?;
            let change = Change::ValuesRevised {
                number,
                values: values.to_vec(),
                version,
            };
            tx.append(locked.at, &change);
            Ok(())
        })
    }

    fn finish_trial(
        &self,
        study: StudyId,
        number: TrialNumber,
        state: TrialState,
        values: Option<Vec<f64>>,
    ) -> Result<Trial, StoreError> {
        let spec = self.spec(study)?;
        check_values(number, &state, values.as_deref(), spec.objectives.len())?;
        let (name, step, message) = state_columns(&state);
        let first = values.as_ref().and_then(|v| v.first().copied());
        let change = Change::TrialFinished {
            number,
            state: state.clone(),
            values: values.clone(),
        };
        let key = (study.0 as i64, number.0 as i64);
        self.on_conn(|tx| {
            let channel = tx.channel;
            // One statement, its own transaction: only an unfinished trial is updated, and its
            // change logged with the next number. The study's row is locked first (the
            // update's condition needs it), as every write locks it: in one order, two writes
            // never deadlock. The trial comes back from the same statement, with what the
            // update left alone (its intermediate values and attributes) read beside it.
            let updated = tx.opt(
                concat!(
                    "WITH l AS (SELECT id FROM studies WHERE id = $1 FOR UPDATE), \
                     u AS (UPDATE trials SET state = $3, prune_step = $4, message = $5, \
                     objective_values = $6, value0 = $7, \
                     finished_at = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint \
                     WHERE study_id = (SELECT id FROM l) AND number = $2 \
                     AND state IN ('pending', 'running') RETURNING ",
                    trial_columns!(),
                    "), s AS (UPDATE studies SET last_seq = last_seq + 1 \
                     WHERE id = $1 AND EXISTS (SELECT 1 FROM u) RETURNING last_seq), \
                     c AS (INSERT INTO changes (study_id, seq, at, kind, change) \
                     SELECT $1, s.last_seq, u.finished_at, $8, $9 FROM s, u), \
                     n AS (SELECT pg_notify($10, $1::text) FROM s) \
                     SELECT u.*, ",
                    extras!(),
                    ", (SELECT count(*) FROM n) FROM u"
                ),
                &[
                    &key.0,
                    &key.1,
                    &name,
                    &step,
                    &message,
                    &values.as_ref().map(to_json),
                    &first,
                    &change.kind(),
                    &to_json(&change),
                    &channel,
                ],
            )?;
            let Some(row) = updated else {
                return Err(tx.not_finishable(study, number));
            };
            Ok(with_extras(trial_from_row(&row)?, &row)?)
        })
    }

    fn last_activity(&self, study: StudyId) -> Result<Option<Timestamp>, StoreError> {
        self.spec(study)?;
        self.on_conn(|tx| {
            let row = tx.opt(
                "SELECT at FROM changes WHERE study_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&(study.0 as i64)],
            )?;
            Ok(row.map(|r| Timestamp(r.get::<_, i64>(0) as u64)))
        })
    }

    fn changes_since(&self, study: StudyId, cursor: u64) -> Result<Vec<LoggedChange>, StoreError> {
        self.spec(study)?;
        // One statement, one snapshot: no transaction needed (the hot path of every sync).
        self.on_conn(|tx| {
            let rows = tx.query(
                "SELECT seq, at, change FROM changes WHERE study_id = $1 AND seq > $2 \
                 ORDER BY seq",
                &[&(study.0 as i64), &(cursor as i64)],
            )?;
            let changes = rows.iter().map(|r| {
                Ok(LoggedChange {
                    seq: r.get::<_, i64>(0) as u64,
                    at: Timestamp(r.get::<_, i64>(1) as u64),
                    change: from_json("change", r.get(2))?,
                })
            });
            Ok(changes.collect::<Result<Vec<_>, StoreError>>()?)
        })
        .inspect(|changes| {
            let created = changes.iter().rev().find_map(|c| match c.change {
                Change::TrialCreated { number, .. } => Some(number.0 + 1),
                _ => None,
            });
            if let Some(next) = created {
                self.saw(study, next);
            }
        })
    }

    fn trial(&self, study: StudyId, number: TrialNumber) -> Result<Trial, StoreError> {
        self.read(study, |tx, _| tx.load_trial(study, number))
    }

    fn trials(&self, study: StudyId) -> Result<Vec<Trial>, StoreError> {
        self.trials_page(study, 0, i64::MAX as u64)
    }

    fn trials_page(
        &self,
        study: StudyId,
        first: u64,
        limit: u64,
    ) -> Result<Vec<Trial>, StoreError> {
        let (lo, hi) = crate::columns::number_range(first, limit);
        self.read(study, |tx, _| {
            let id = study.0 as i64;
            let range: [&(dyn ToSql + Sync); 3] = [&id, &lo, &hi];
            let rows = tx.query(
                concat!(
                    "SELECT ",
                    trial_columns!(),
                    " FROM trials WHERE study_id = $1 AND number >= $2 AND number < $3 \
                     ORDER BY number"
                ),
                &range,
            )?;
            let mut trials = rows
                .iter()
                .map(trial_from_row)
                .collect::<Result<Vec<Trial>, StoreError>>()?;
            let at = |number: i64| (number - lo) as usize;
            for r in tx.query(
                "SELECT number, step, value, others FROM intermediate \
                 WHERE study_id = $1 AND number >= $2 AND number < $3",
                &range,
            )? {
                if let Some(t) = trials.get_mut(at(r.get(0))) {
                    add_intermediate(t, r.get(1), r.get(2), r.get(3))?;
                }
            }
            for r in tx.query(
                "SELECT number, key, value FROM user_attrs \
                 WHERE study_id = $1 AND number >= $2 AND number < $3",
                &range,
            )? {
                if let Some(t) = trials.get_mut(at(r.get(0))) {
                    t.user_attrs
                        .insert(r.get(1), from_json("user attribute", r.get(2))?);
                }
            }
            Ok(trials)
        })
    }

    fn counts(&self, study: StudyId) -> Result<hyperion_core::Counts, StoreError> {
        self.spec(study)?;
        let rows = self.on_conn(|tx| {
            tx.query(
                "SELECT state, count(*) FROM trials WHERE study_id = $1 GROUP BY state",
                &[&(study.0 as i64)],
            )
        })?;
        Ok(crate::columns::counts_of(
            rows.iter().map(|r| (r.get(0), r.get(1))),
        ))
    }

    fn phases(
        &self,
        study: StudyId,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        self.spec(study)?;
        let rows = self.on_conn(|tx| {
            tx.query(
                "SELECT stages FROM trials WHERE study_id = $1 AND state = 'running' \
                 AND stages IS NOT NULL",
                &[&(study.0 as i64)],
            )
        })?;
        crate::columns::phases_of(rows.iter().map(|r| r.get(0)))
    }

    fn best_trial(&self, study: StudyId) -> Result<Option<Trial>, StoreError> {
        self.read(study, |tx, spec| {
            let [objective] = spec.objectives.as_slice() else {
                return Ok(None);
            };
            // Two index lookups: the best value, then the earliest trial with it.
            let sql = match objective.direction {
                hyperion_core::Direction::Minimize => {
                    "SELECT number FROM trials WHERE study_id = $1 AND state = 'completed' \
                     AND value0 = (SELECT min(value0) FROM trials \
                     WHERE study_id = $1 AND state = 'completed') ORDER BY number LIMIT 1"
                }
                hyperion_core::Direction::Maximize => {
                    "SELECT number FROM trials WHERE study_id = $1 AND state = 'completed' \
                     AND value0 = (SELECT max(value0) FROM trials \
                     WHERE study_id = $1 AND state = 'completed') ORDER BY number LIMIT 1"
                }
            };
            match tx.opt(sql, &[&(study.0 as i64)])? {
                Some(row) => Ok(Some(
                    tx.load_trial(study, TrialNumber(row.get::<_, i64>(0) as u64))?,
                )),
                None => Ok(None),
            }
        })
    }

    fn watch(
        &self,
        study: StudyId,
        wake: Box<dyn Fn() + Send>,
    ) -> Result<Option<crate::Watch>, StoreError> {
        let mut client = (self.url.config)
            .connect(self.url.tls.clone())
            .map_err(|e| self.error(e))?;
        // A plain name (checked when the URL was parsed), so safe to quote into SQL.
        let listen = format!("LISTEN \"{}\"", self.channel);
        client.batch_execute(&listen).map_err(|e| self.error(e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let watching = Watching(stop.clone());
        let (url, payload) = (self.url.clone(), study.0.to_string());
        std::thread::Builder::new()
            .name("hyperion-listen".into())
            .spawn(move || listen_for(client, &url, &listen, &payload, &stop, &*wake))
            .map_err(|e| StoreError::Server {
                url: self.url.shown.clone(),
                reason: format!("cannot start the thread that listens for changes: {e}"),
            })?;
        Ok(Some(Box::new(watching)))
    }
}

/// Ends its listening thread when dropped.
struct Watching(Arc<AtomicBool>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How long the listener waits before looking whether it should stop.
const LISTEN_PATIENCE: Duration = Duration::from_millis(250);
/// Writes in this window wake the run once: each wake costs it a read.
const WAKE_WINDOW: Duration = Duration::from_millis(10);

/// Calls `wake` after notifications with `payload` (the study), at most once per
/// [`WAKE_WINDOW`]; a lost connection is reopened with backoff, and `wake` called once it is
/// back (writes may have been missed meanwhile).
fn listen_for(
    mut client: Client,
    url: &PgUrl,
    listen: &str,
    payload: &str,
    stop: &AtomicBool,
    wake: &dyn Fn(),
) {
    let mut wait = Duration::from_millis(50);
    while !stop.load(Ordering::Relaxed) {
        let mut woken = false;
        let mut broken = false;
        {
            let mut notes = client.notifications();
            match notes.timeout_iter(LISTEN_PATIENCE).next() {
                Ok(Some(note)) => woken = note.payload() == payload,
                Ok(None) => {}
                Err(_) => broken = true,
            }
            if woken {
                // The rest of the window's notifications, whatever their study.
                std::thread::sleep(WAKE_WINDOW);
                let mut more = notes.iter();
                while let Ok(Some(_)) = more.next() {}
            }
        }
        if broken || client.is_closed() {
            match (url.config)
                .connect(url.tls.clone())
                .and_then(|mut c| c.batch_execute(listen).map(|_| c))
            {
                Ok(fresh) => {
                    client = fresh;
                    wait = Duration::from_millis(50);
                    woken = true;
                }
                Err(_) => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
        if woken {
            wake();
        }
    }
}

pub mod testing {
    //! A schema of its own for each test on the test server: `HYPERION_TEST_POSTGRES` names the
    //! server (`postgresql://hyperion:hyperion@127.0.0.1:5432/hyperion` by default, as
    //! `infra/postgres-up.sh` starts it), or is `skip` to skip the PostgreSQL tests, which
    //! then say so on stderr.

    use std::io::Write;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The test server when none is named.
    pub const DEFAULT_URL: &str = "postgresql://hyperion:hyperion@127.0.0.1:5432/hyperion";

    /// A fresh schema on the test server, dropped with everything in it when this is dropped.
    #[derive(Debug)]
    pub struct TestSchema {
        /// The storage URL of a store in this schema.
        pub url: String,
        server: String,
        schema: String,
    }

    impl TestSchema {
        /// A new schema, or `None` when the PostgreSQL tests are skipped. Panics, saying how
        /// to start one, when the server cannot be reached.
        pub fn new() -> Option<Self> {
            let server =
                std::env::var("HYPERION_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_owned());
            if server == "skip" {
                static SAID: std::sync::Once = std::sync::Once::new();
                // Past the test harness's capture, so that the run shows it.
                SAID.call_once(|| {
                    let _ = writeln!(
                        std::io::stderr(),
                        "note: PostgreSQL tests skipped (HYPERION_TEST_POSTGRES=skip)"
                    );
                });
                return None;
            }
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let schema = format!(
                "test_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let joiner = if server.contains('?') { '&' } else { '?' };
            let url = format!("{server}{joiner}schema={schema}");
            let mut client =
                postgres::Client::connect(&server, postgres::NoTls).unwrap_or_else(|e| {
                    panic!(
                        "the PostgreSQL tests need the server {} ({}): start it with \
                         infra/postgres-up.sh, name another with HYPERION_TEST_POSTGRES=URL, \
                         or skip them with HYPERION_TEST_POSTGRES=skip",
                        super::url::redact(&server),
                        super::reason(&e)
                    )
                });
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .expect("drop a leftover test schema");
            Some(TestSchema {
                url,
                server,
                schema,
            })
        }

        /// A client on the test server, for what a test does behind the store's back.
        pub fn client(&self) -> postgres::Client {
            postgres::Client::connect(&self.server, postgres::NoTls).expect("connect")
        }
    }

    impl Drop for TestSchema {
        fn drop(&mut self) {
            if let Ok(mut client) = postgres::Client::connect(&self.server, postgres::NoTls) {
                let _ =
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
            }
        }
    }
}
