//! The studies the server has been asked about, each folded once from its change log and kept
//! up to date by reading only what changed since (`changes_since(cursor)`).
//!
//! A request syncs the study it reads (one indexed query); the tail thread syncs the studies
//! someone follows live, every [`TAIL_EVERY`] or as soon as the store says another process
//! wrote (PostgreSQL's notifications), and tells their event streams the new sequence number.
//! The last [`RECENT`] changes stay in memory so that streams, and reconnects that resume with
//! `Last-Event-ID`, read them from here rather than from the store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use hyperion_core::{Change, Decision, LoggedChange, StudyId, StudyView, Timestamp, TrialNumber};
use hyperion_store::{Store, StoreError, StudyRecord, Watch};

/// How often the tail thread looks for changes when the store cannot notify.
const TAIL_EVERY: Duration = Duration::from_millis(50);

/// Changes kept in memory per study for event streams.
const RECENT: usize = 10_000;

/// Where a study's log is, for its event streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tip {
    /// The last sequence number folded.
    At(u64),
    /// The study was deleted.
    Gone,
}

#[derive(Debug)]
pub struct Studies {
    pub store: Arc<dyn Store>,
    open: Mutex<HashMap<String, Arc<Tracked>>>,
    /// Wakes the tail thread (a store's notification).
    wake: Mutex<Option<mpsc::Sender<()>>>,
}

#[derive(Debug)]
pub struct Tracked {
    pub record: StudyRecord,
    folded: Mutex<Folded>,
    tip: tokio::sync::watch::Sender<Tip>,
    /// The runtime's study, for the writes (ask, report, tell, stop), opened on the first one.
    study: OnceLock<Arc<hyperion_runtime::Study>>,
    /// The store's notification of this study's writes, while it lives.
    watch: Mutex<Option<Watch>>,
}

/// A study as folded so far.
#[derive(Debug)]
pub struct Folded {
    pub view: StudyView,
    /// The latest changes, oldest first.
    pub recent: VecDeque<Arc<LoggedChange>>,
    /// Decisions about each trial, in order; `None`: about the study.
    pub decisions: BTreeMap<Option<TrialNumber>, Vec<Decision>>,
    pub last_at: Option<Timestamp>,
    /// Plots already drawn, by request, with the cursor they were drawn at: a plot is drawn
    /// once per change of the study, however many pages ask for it.
    pub drawn: HashMap<String, (u64, Arc<str>)>,
}

impl Studies {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Studies {
            store,
            open: Mutex::new(HashMap::new()),
            wake: Mutex::new(None),
        }
    }

    /// The study named `name`, folded up to now.
    pub fn get(&self, name: &str) -> Result<Arc<Tracked>, StoreError> {
        let known = lock(&self.open).get(name).cloned();
        let tracked = match known {
            Some(tracked) => tracked,
            None => {
                let record = self.store.study(name)?;
                let spec = record.spec.clone();
                let (tip, _) = tokio::sync::watch::channel(Tip::At(0));
                let tracked = Arc::new(Tracked {
                    folded: Mutex::new(Folded {
                        view: StudyView::new(record.id, spec),
                        recent: VecDeque::new(),
                        decisions: BTreeMap::new(),
                        last_at: None,
                        drawn: HashMap::new(),
                    }),
                    record,
                    tip,
                    study: OnceLock::new(),
                    watch: Mutex::new(None),
                });
                let waker = lock(&self.wake).clone();
                if let Some(waker) = waker {
                    let wake = Box::new(move || {
                        let _ = waker.send(());
                    });
                    *lock(&tracked.watch) = self.store.watch(tracked.record.id, wake)?;
                }
                lock(&self.open)
                    .entry(name.to_owned())
                    .or_insert(tracked)
                    .clone()
            }
        };
        self.sync(&tracked)?;
        Ok(tracked)
    }

    /// Folds the study's changes since the last sync.
    pub fn sync(&self, tracked: &Tracked) -> Result<(), StoreError> {
        let mut folded = lock(&tracked.folded);
        let changes = match self
            .store
            .changes_since(tracked.record.id, folded.view.cursor())
        {
            Ok(changes) => changes,
            Err(e @ (StoreError::StudyNotFound { .. } | StoreError::StudyIdNotFound(_))) => {
                drop(folded);
                self.forget(tracked);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let Some(last) = changes.last().map(|c| c.seq) else {
            return Ok(());
        };
        for change in changes {
            if folded.view.apply(&change, &mut Vec::new()).is_err() {
                // A gap or a change out of order: it cannot come from one store's log.
                return Err(StoreError::Inconsistent(format!(
                    "study \"{}\": change {} does not follow {}",
                    tracked.record.spec.name,
                    change.seq,
                    folded.view.cursor()
                )));
            }
            if let Change::DecisionRecorded(decision) = &change.change {
                folded
                    .decisions
                    .entry(decision.trial)
                    .or_default()
                    .push(decision.clone());
            }
            folded.last_at = Some(change.at);
            if folded.recent.len() == RECENT {
                folded.recent.pop_front();
            }
            folded.recent.push_back(Arc::new(change));
        }
        drop(folded);
        tracked.tip.send_replace(Tip::At(last));
        Ok(())
    }

    /// A deleted study: its streams end, and the name may be a new study next time.
    fn forget(&self, tracked: &Tracked) {
        tracked.tip.send_replace(Tip::Gone);
        let mut open = lock(&self.open);
        if open
            .get(&tracked.record.spec.name)
            .is_some_and(|t| t.record.id == tracked.record.id)
        {
            open.remove(&tracked.record.spec.name);
        }
    }

    /// Syncs every study that someone follows live.
    fn tail(&self) {
        let followed: Vec<Arc<Tracked>> = lock(&self.open)
            .values()
            .filter(|t| t.tip.receiver_count() > 0)
            .cloned()
            .collect();
        for tracked in followed {
            // A failing store is retried at the next turn; a request reports the error.
            let _ = self.sync(&tracked);
        }
    }
}

impl Tracked {
    pub fn id(&self) -> StudyId {
        self.record.id
    }

    pub fn folded(&self) -> MutexGuard<'_, Folded> {
        lock(&self.folded)
    }

    pub fn follow(&self) -> tokio::sync::watch::Receiver<Tip> {
        self.tip.subscribe()
    }

    /// The changes after `cursor` from memory, or `None` when they are older than what is kept.
    pub fn recent_since(&self, cursor: u64) -> Option<Vec<Arc<LoggedChange>>> {
        let folded = self.folded();
        let first = folded
            .recent
            .front()
            .map_or(folded.view.cursor() + 1, |c| c.seq);
        if cursor + 1 < first {
            return None;
        }
        let skip = (cursor + 1 - first) as usize;
        Some(folded.recent.iter().skip(skip).cloned().collect())
    }

    pub fn study(
        &self,
        store: &Arc<dyn Store>,
    ) -> Result<Arc<hyperion_runtime::Study>, hyperion_runtime::Error> {
        if let Some(study) = self.study.get() {
            return Ok(study.clone());
        }
        let study = Arc::new(hyperion_runtime::Study::open(
            store.clone(),
            &self.record.spec.name,
        )?);
        Ok(self.study.get_or_init(|| study).clone())
    }
}

/// The thread that follows the log of every followed study; it stops when dropped.
#[derive(Debug)]
pub struct Tail {
    stop: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    studies: Arc<Studies>,
}

impl Tail {
    pub fn start(studies: Arc<Studies>) -> Tail {
        let (wake, woken) = mpsc::channel::<()>();
        *lock(&studies.wake) = Some(wake.clone());
        let (stop, stopped) = mpsc::channel::<()>();
        let following = studies.clone();
        let thread = std::thread::Builder::new()
            .name("hyperion-tail".into())
            .spawn(move || {
                while let Err(mpsc::TryRecvError::Empty) = stopped.try_recv() {
                    // A notification, or the next turn.
                    let _ = woken.recv_timeout(TAIL_EVERY);
                    while woken.try_recv().is_ok() {}
                    following.tail();
                }
            })
            .expect("starting the tail thread");
        Tail {
            stop,
            thread: Some(thread),
            studies,
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(wake) = lock(&self.studies.wake).take() {
            let _ = wake.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
