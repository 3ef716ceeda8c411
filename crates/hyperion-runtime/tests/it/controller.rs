//! The controller's seams: settings kept in the store, reports and stops by number from
//! anywhere, and trial processes that never outlive their run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyperion_core::{Change, FloatDistribution, Launch, SearchSpace, StopReason, TrialState};
use hyperion_runtime::{
    Budget, Error, OptimizeConfig, ProcessConfig, Recovery, RunControl, Study, TrialError, Verdict,
};
use hyperion_samplers::{SampleContext, Sampler, SamplerConfig, SamplerError, TpeConfig};
use hyperion_schedulers::{AshaConfig, SchedulerConfig};
use hyperion_store::{SqliteStore, Store};

fn space() -> SearchSpace {
    SearchSpace::builder()
        .param("x", FloatDistribution::new(-5.0, 5.0))
        .build()
        .unwrap()
}

fn sqlite(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir.join("h.db")).unwrap())
}

fn quick() -> Recovery {
    Recovery {
        heartbeat: Duration::from_millis(50),
        grace: Duration::from_millis(400),
        ..Recovery::default()
    }
}

#[test]
fn a_reopened_study_keeps_its_sampler_seed_and_budget() {
    let dir = tempfile::tempdir().unwrap();
    let created = Study::builder("s")
        .space(space())
        .sampler(SamplerConfig::Tpe(TpeConfig::default()))
        .seed(7)
        .budget(Budget::trials(12))
        .store(sqlite(dir.path()))
        .open()
        .unwrap();
    for _ in 0..12 {
        let t = created.ask().unwrap();
        let x = t.params()["x"].as_f64().unwrap();
        created
            .tell(
                t.number(),
                hyperion_runtime::Outcome::Completed(vec![x * x]),
            )
            .unwrap();
    }
    assert!(matches!(
        created.ask(),
        Err(Error::BudgetSpent { max_trials: 12 })
    ));

    let reopened = Study::open(sqlite(dir.path()), "s").unwrap();
    let settings = reopened.settings();
    assert_eq!(settings.seed, 7);
    assert!(matches!(settings.sampler, Some(SamplerConfig::Tpe(_))));
    assert_eq!(settings.budget.max_trials, Some(12));

    // Raising the budget is a change that is recorded and reported.
    let raised = Study::builder("s")
        .space(space())
        .budget(Budget::trials(13))
        .store(sqlite(dir.path()))
        .open()
        .unwrap();
    let changes: Vec<String> = raised
        .settings_changes()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(changes, ["budget.max_trials: 12 → 13"]);
    let suggested = raised.ask().unwrap().params().clone();
    // The same suggestion as a TPE study with the same history and seed would make.
    let twin = Study::builder("twin")
        .space(space())
        .sampler(SamplerConfig::Tpe(TpeConfig::default()))
        .seed(7)
        .open()
        .unwrap();
    for t in created
        .trials()
        .unwrap()
        .iter()
        .filter(|t| t.values.is_some())
    {
        let mut params = t.params.as_ref().clone();
        let value = t.values.clone().unwrap();
        let trial = twin.enqueue(std::mem::take(&mut params)).unwrap();
        twin.ask().unwrap();
        twin.tell(trial.number, hyperion_runtime::Outcome::Completed(value))
            .unwrap();
    }
    assert_eq!(*twin.ask().unwrap().params(), suggested);
}

#[test]
fn a_new_seed_or_a_switched_grid_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path());
    Study::builder("s")
        .space(space())
        .seed(1)
        .store(store.clone())
        .open()
        .unwrap();
    let id = store.study("s").unwrap().id;
    let before = store.changes_since(id, 0).unwrap().len();
    let seed = Study::builder("s")
        .space(space())
        .seed(2)
        .store(store.clone())
        .open()
        .unwrap_err();
    assert!(seed.to_string().contains("seed is 1, not 2"), "{seed}");
    let grid = Study::builder("s")
        .space(space())
        .sampler(SamplerConfig::grid())
        .store(store.clone())
        .open()
        .unwrap_err();
    assert!(
        grid.to_string().contains("a grid cannot be switched"),
        "{grid}"
    );
    assert_eq!(store.changes_since(id, 0).unwrap().len(), before);
    // Switching random to TPE mid-study is fine.
    let tpe = Study::builder("s")
        .space(space())
        .sampler(SamplerConfig::Tpe(TpeConfig::default()))
        .store(store.clone())
        .open()
        .unwrap();
    assert_eq!(tpe.settings_changes()[0].what, "sampler");
}

#[test]
fn any_process_reports_by_number_and_reads_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let asha = SchedulerConfig::Asha(AshaConfig {
        min_resource: 1,
        reduction_factor: 2,
        ..Default::default()
    });
    let study = Study::builder("s")
        .space(space())
        .early_stopping(asha)
        .store(sqlite(dir.path()))
        .open()
        .unwrap();
    for value in [1.0, 2.0, 3.0, 4.0] {
        let mut t = study.ask().unwrap();
        t.report(1, value).unwrap();
        let n = t.number();
        drop(t);
        study
            .tell(n, hyperion_runtime::Outcome::Completed(vec![value]))
            .unwrap();
    }
    let number = study.ask().unwrap().number();
    // Another handle on the same file, as another process would have: its ASHA comes from
    // the store.
    let other = Study::open(sqlite(dir.path()), "s").unwrap();
    assert_eq!(other.verdict(number).unwrap(), Verdict::Continue);
    let verdict = other.report(number, 1, &[100.0]).unwrap();
    assert!(
        matches!(&verdict, Verdict::Stop { reason, .. } if reason.contains("rung")),
        "{verdict:?}"
    );
    assert_eq!(study.verdict(number).unwrap(), verdict);
    assert!(study.verdict(99.into()).is_err(), "no trial 99");
}

#[test]
fn a_stop_from_another_process_ends_optimize_within_a_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let study = Study::builder("s")
        .space(space())
        .store(sqlite(dir.path()))
        .open()
        .unwrap();
    let started = Instant::now();
    let summary = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            Study::open(sqlite(dir.path()), "s")
                .unwrap()
                .stop()
                .unwrap();
        });
        let config = OptimizeConfig::new(Budget::default())
            .threads(2)
            .recovery(quick());
        study
            .optimize(&config, |_| {
                std::thread::sleep(Duration::from_millis(20));
                Ok::<_, TrialError>(1.0)
            })
            .unwrap()
    });
    assert_eq!(summary.reason, StopReason::Stopped);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        study
            .trials()
            .unwrap()
            .iter()
            .all(|t| t.state == TrialState::Completed)
    );
    // A later run is not bound by the old request.
    let config = OptimizeConfig::new(Budget::trials(study.trials().unwrap().len() as u64 + 2));
    let later = study
        .optimize(&config, |_| Ok::<_, TrialError>(1.0))
        .unwrap();
    assert_eq!((later.reason, later.trials_run), (StopReason::MaxTrials, 2));
}

/// Random sampling that can panic at one trial (to end a run with an error mid-way) or take
/// its time (a fit longer than a trial's lease).
#[derive(Debug, Default)]
struct TestSampler {
    panics_at: Option<u64>,
    fit: Duration,
}

impl Sampler for TestSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        ctx: &SampleContext<'_>,
    ) -> Result<Option<hyperion_core::Params>, SamplerError> {
        if self.panics_at == Some(ctx.trial_number) {
            panic!("the sampler broke");
        }
        std::thread::sleep(self.fit);
        hyperion_samplers::RandomSampler::new(0).suggest(space, ctx)
    }
    fn suggest_param(
        &self,
        _: &str,
        _: &hyperion_core::Distribution,
        _: &SampleContext<'_>,
    ) -> Result<hyperion_core::ParamValue, SamplerError> {
        unreachable!()
    }
    fn fits_slowly(&self) -> bool {
        !self.fit.is_zero()
    }
}

/// A trial that starts a grandchild and sleeps; each writes its pid to `pids/`.
fn sleeper(dir: &Path) -> ProcessConfig {
    std::fs::create_dir_all(dir.join("pids")).unwrap();
    let script = "sleep 60 & echo $! > pids/$HYPERION_TRIAL_NUMBER.child; \
                  echo $$ > pids/$HYPERION_TRIAL_NUMBER.leader; wait";
    let mut config = ProcessConfig::new(
        vec!["sh".into(), "-c".into(), script.into()],
        dir.to_path_buf(),
        dir.join("trials"),
    );
    config.max_concurrent = 2;
    config
}

/// The pids the trials wrote, once each trial of `expected` wrote both of its own.
fn trial_pids(dir: &Path, expected: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pids: Vec<i32> = std::fs::read_dir(dir.join("pids"))
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        if pids.len() >= 2 * expected || Instant::now() > deadline {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process (not a zombie waiting to be reaped).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

fn wait_until_dead(pids: &[i32]) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pids.iter().copied().filter(|&p| alive(p)).collect()
}

#[test]
fn a_sampler_panic_mid_run_leaves_no_trial_process() {
    let dir = tempfile::tempdir().unwrap();
    let study = Study::builder("s")
        .space(space())
        .custom_sampler(Box::new(TestSampler {
            panics_at: Some(2),
            ..Default::default()
        }))
        .store(sqlite(dir.path()))
        .open()
        .unwrap();
    let config = sleeper(dir.path());
    let error = std::thread::scope(|s| {
        let run = s.spawn(|| {
            study.run_processes(
                &config,
                &Budget::trials(5),
                &quick(),
                &RunControl::default(),
            )
        });
        // Trials 0 and 1 run; trial 2 is asked for when one of them ends.
        let pids = trial_pids(dir.path(), 2);
        assert_eq!(
            pids.len(),
            4,
            "both trials started with their grandchildren"
        );
        let leader: i32 = std::fs::read_to_string(dir.path().join("pids/0.leader"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(leader),
            nix::sys::signal::SIGKILL,
        )
        .unwrap();
        let error = run.join().unwrap().unwrap_err();
        assert_eq!(
            wait_until_dead(&pids),
            Vec::<i32>::new(),
            "processes left behind"
        );
        error
    });
    assert!(error.to_string().contains("the sampler broke"), "{error}");
}

#[test]
fn a_store_error_mid_run_leaves_no_trial_process() {
    let dir = tempfile::tempdir().unwrap();
    let study = Study::builder("s")
        .space(space())
        .store(sqlite(dir.path()))
        .open()
        .unwrap();
    let config = sleeper(dir.path());
    std::thread::scope(|s| {
        let run = s.spawn(|| {
            study.run_processes(
                &config,
                &Budget::trials(5),
                &quick(),
                &RunControl::default(),
            )
        });
        let pids = trial_pids(dir.path(), 2);
        assert_eq!(pids.len(), 4);
        // The study disappears under the run: its next write fails.
        sqlite(dir.path()).delete_study("s").unwrap();
        let result = run.join().unwrap();
        assert!(result.is_err(), "{result:?}");
        assert_eq!(
            wait_until_dead(&pids),
            Vec::<i32>::new(),
            "processes left behind"
        );
    });
}

/// Starts `sleep 60` as the leader of its own process group.
fn group_leader() -> std::process::Child {
    Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn launch_of(pid: u32, start_shift: u64) -> Launch {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_owned();
    Launch {
        host: read("/proc/sys/kernel/hostname"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
        pgid: pid as i32,
        start_time: fields[19].parse::<u64>().unwrap() + start_shift,
        dir: None,
        job: None,
    }
}

use std::os::unix::process::CommandExt;

#[test]
fn a_dead_runs_groups_are_killed_before_their_retries_but_never_a_reused_pid() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path());
    let study = Study::builder("s")
        .space(space())
        .store(store.clone())
        .open()
        .unwrap();
    let id = store.study("s").unwrap().id;
    // Two trials of a run that died: one's group is still there; the other's pid now
    // belongs to an unrelated process (its start time differs).
    let mut orphan = group_leader();
    let mut unrelated = group_leader();
    for (child, shift) in [(&orphan, 0), (&unrelated, 1)] {
        let new = hyperion_store::NewTrial {
            lease: Some(Duration::from_millis(100)),
            ..Default::default()
        };
        let created = store
            .create_trial(id, &new, None, &mut |_| {
                Some(
                    hyperion_core::Params::from([(
                        "x".to_owned(),
                        hyperion_core::ParamValue::Float(0.5),
                    )])
                    .into(),
                )
            })
            .unwrap();
        let hyperion_store::Created::Trial(trial) = created else {
            panic!()
        };
        let launch = launch_of(child.id(), shift);
        store
            .log(
                id,
                &Change::TrialLaunched {
                    number: trial.number,
                    launch,
                },
            )
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(150));
    let mut config = ProcessConfig::new(
        vec![
            "sh".into(),
            "-c".into(),
            "echo 'HYPERION_METRIC {{\"value\": 1}}'".into(),
        ],
        dir.path().to_path_buf(),
        dir.path().join("trials"),
    );
    config.max_concurrent = 2;
    let summary = study
        .run_processes(
            &config,
            &Budget::trials(2),
            &quick(),
            &RunControl::default(),
        )
        .unwrap();
    assert_eq!(summary.reason, StopReason::MaxTrials);
    let orphan_status = orphan.try_wait().unwrap();
    assert!(orphan_status.is_some(), "the dead run's group was killed");
    assert_eq!(
        unrelated.try_wait().unwrap(),
        None,
        "a reused pid is untouched"
    );
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
    let trials = study.trials().unwrap();
    let completed = trials
        .iter()
        .filter(|t| t.state == TrialState::Completed)
        .count();
    assert_eq!(
        (trials.len(), completed),
        (4, 2),
        "both retried and completed: {:?}",
        trials.iter().map(|t| &t.state).collect::<Vec<_>>()
    );
}

#[test]
fn a_slow_fit_holds_no_lock_and_misses_no_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let study = Study::builder("s")
        .space(space())
        .custom_sampler(Box::new(TestSampler {
            fit: Duration::from_millis(600),
            ..Default::default()
        }))
        .store(sqlite(dir.path()))
        .open()
        .unwrap();
    // Two threads: while one fits for longer than the lease, the other's trial runs and
    // must stay alive; reports and views are not blocked by the fit.
    let config = OptimizeConfig::new(Budget::trials(4))
        .threads(2)
        .recovery(quick());
    let summary = study
        .optimize(&config, |t| {
            let started = Instant::now();
            t.report(0, 1.0)?;
            assert!(
                started.elapsed() < Duration::from_millis(300),
                "a report waited"
            );
            std::thread::sleep(Duration::from_millis(700));
            Ok::<_, TrialError>(1.0)
        })
        .unwrap();
    assert_eq!(summary.reason, StopReason::MaxTrials);
    let trials = study.trials().unwrap();
    assert_eq!(trials.len(), 4);
    assert!(
        trials.iter().all(|t| t.state == TrialState::Completed),
        "{:?}",
        trials.iter().map(|t| &t.state).collect::<Vec<_>>()
    );
}

/// With random sampling, a trial's end and the next trial are one write; a trial enqueued
/// meanwhile still runs first, and the budget stays exact.
#[test]
fn an_enqueued_trial_runs_before_new_ones_when_each_end_starts_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let study = Study::builder("s")
        .space(space())
        .sampler(SamplerConfig::Random)
        .seed(3)
        .store(sqlite(dir.path()))
        .open()
        .unwrap();
    let fixed = hyperion_core::Params::from([("x".to_owned(), 4.5.into())]);
    let order = std::sync::Mutex::new(Vec::new());
    study
        .optimize(&OptimizeConfig::new(Budget::trials(6)), |trial| {
            order.lock().unwrap().push(trial.number().0);
            if trial.number().0 == 2 {
                trial.study().enqueue(fixed.clone()).unwrap();
            }
            Ok::<_, TrialError>(trial.params()["x"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
    let trials = study.trials().unwrap();
    assert_eq!(*trials[3].params, fixed, "the enqueued trial ran next");
    assert_eq!(trials.len(), 6);
    assert!(trials.iter().all(|t| t.state == TrialState::Completed));
}
