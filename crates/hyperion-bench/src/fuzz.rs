//! `hyperion-bench fuzz [SECONDS] [FINDINGS_FILE]`: the property tests' generators and checks
//! (crate `hyperion-fuzz`) run for a given time rather than a few hundred cases per target.
//!
//! The targets take turns of one second each, so each gets an equal share of the time however
//! slow its inputs are. Each has its own random source, seeded from the run's seed. A panic is
//! caught and counted; a check that fails without one (an error that does not name its file,
//! …) counts as a violation. Both are written in full, with their input, to FINDINGS_FILE, and
//! the first few are shown on stderr. The report is a table and one JSON line on stdout.
//!
//! Two failures cannot be caught and end the run instead: an input that runs for more than
//! [`HANG`] (a watchdog writes it to FINDINGS_FILE and exits), and a stack overflow (the checks
//! run on a thread with a test thread's 2 MiB stack, so they overflow where the tests would;
//! `HYPERION_FUZZ_SEED` repeats the run).

use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use hyperion_fuzz::{Case, Scratch, Target};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::json;

/// How long a target runs before the next one takes its turn.
const TURN: Duration = Duration::from_secs(1);
/// How long one input may run before the run stops on it as a hang.
const HANG: Duration = Duration::from_secs(30);
/// Findings shown on stderr per target; all of them go to the findings file.
const SHOWN: u64 = 3;

/// What the quiet panic hook saw last: the message and where it was raised.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// The input being checked, for the watchdog: its target, since when, and the input.
static CURRENT: Mutex<Option<Checking>> = Mutex::new(None);

type Checking = (&'static str, Instant, Arc<dyn Case>);

#[derive(Clone, Default)]
struct Tally {
    inputs: u64,
    panics: u64,
    violations: u64,
    slowest: Duration,
    slowest_input: String,
}

pub fn run(args: &[String]) -> ExitCode {
    let seconds: u64 = match args.first().map(|s| s.parse()) {
        None => 600,
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            eprintln!("usage: hyperion-bench fuzz [SECONDS] [FINDINGS_FILE]");
            return ExitCode::from(2);
        }
    };
    let findings_file = PathBuf::from(args.get(1).map_or("fuzz-findings.txt", String::as_str));
    std::fs::remove_file(&findings_file).ok();
    let seed = std::env::var("HYPERION_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("fuzz: {seconds} s, HYPERION_FUZZ_SEED={seed}");

    // The panics are expected to be caught here: keep their messages off the terminal.
    panic::set_hook(Box::new(|info| {
        *LAST_PANIC.lock().unwrap_or_else(PoisonError::into_inner) = Some(info.to_string());
    }));
    let watched = findings_file.clone();
    std::thread::spawn(move || watchdog(&watched));
    let tallies = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(scope, || run_targets(seconds, seed, &findings_file))
            .expect("start the fuzzing thread")
            .join()
            .expect("the fuzzing thread catches its panics")
    });
    drop(panic::take_hook());
    report(seconds, seed, &tallies, &findings_file)
}

/// Every target in turn for `seconds`: what each saw.
fn run_targets(seconds: u64, seed: u64, findings_file: &Path) -> Vec<(&'static str, Tally)> {
    let scratch = Scratch::new();
    let targets = hyperion_fuzz::targets();
    let mut runners: Vec<TestRunner> = (0..targets.len()).map(|k| runner(seed, k)).collect();
    let mut tallies = vec![Tally::default(); targets.len()];
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut next_progress = started + Duration::from_secs(60);
    while Instant::now() < end {
        for (k, target) in targets.iter().enumerate() {
            let turn_end = (Instant::now() + TURN).min(end);
            while Instant::now() < turn_end {
                one_input(
                    target,
                    &mut runners[k],
                    &scratch,
                    &mut tallies[k],
                    findings_file,
                );
            }
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(60);
            let inputs: u64 = tallies.iter().map(|t| t.inputs).sum();
            let panics: u64 = tallies.iter().map(|t| t.panics).sum();
            eprintln!(
                "fuzz: {}/{seconds} s, {inputs} inputs, {panics} panics",
                started.elapsed().as_secs()
            );
        }
    }
    targets.iter().map(|t| t.name).zip(tallies).collect()
}

/// A runner whose random source depends on the run's seed and on the target.
fn runner(seed: u64, target: usize) -> TestRunner {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..].copy_from_slice(&(target as u64 + 1).to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::XorShift, &bytes),
    )
}

fn one_input(
    target: &Target,
    runner: &mut TestRunner,
    scratch: &Scratch,
    tally: &mut Tally,
    findings_file: &Path,
) {
    let case: Arc<dyn Case> = target.draw(runner).into();
    let started = Instant::now();
    *lock(&CURRENT) = Some((target.name, started, case.clone()));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| case.check(scratch)));
    *lock(&CURRENT) = None;
    let took = started.elapsed();
    tally.inputs += 1;
    if took > tally.slowest {
        tally.slowest = took;
        tally.slowest_input = format!("{case:?}");
    }
    let (kind, message, count) = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(violation)) => {
            tally.violations += 1;
            ("violation", violation, tally.violations)
        }
        Err(_) => {
            tally.panics += 1;
            let message = lock(&LAST_PANIC).take();
            ("panic", message.unwrap_or_default(), tally.panics)
        }
    };
    let input = format!("{case:?}");
    record(findings_file, target.name, kind, &message, &input);
    if count <= SHOWN {
        eprintln!(
            "fuzz: {} {kind}: {message}\n  input: {}",
            target.name,
            shorten(&input, findings_file)
        );
    }
}

/// Stops the run when an input has been checked for longer than [`HANG`].
fn watchdog(findings_file: &Path) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Some((name, started, case)) = lock(&CURRENT).as_ref()
            && started.elapsed() > HANG
        {
            let input = format!("{case:?}");
            let message = format!("still running after {} s", HANG.as_secs());
            record(findings_file, name, "hang", &message, &input);
            eprintln!(
                "fuzz: {name} hang: {message}\n  input: {}",
                shorten(&input, findings_file)
            );
            std::process::exit(1);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn record(findings_file: &Path, target: &str, kind: &str, message: &str, input: &str) {
    let finding = format!("{target} {kind}: {message}\ninput: {input}\n\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(findings_file)
        .and_then(|mut f| f.write_all(finding.as_bytes()));
    if let Err(e) = written {
        eprintln!("fuzz: cannot write {}: {e}", findings_file.display());
    }
}

/// The start of a long input, and where the rest is.
fn shorten(input: &str, findings_file: &Path) -> String {
    let shown: String = input.chars().take(600).collect();
    match input.len() - shown.len() {
        0 => shown,
        more => format!(
            "{shown} … ({more} more bytes in {})",
            findings_file.display()
        ),
    }
}

fn report(
    seconds: u64,
    seed: u64,
    tallies: &[(&'static str, Tally)],
    findings_file: &Path,
) -> ExitCode {
    let mut table = format!(
        "{:<12} {:>10} {:>7} {:>10} {:>12}\n",
        "target", "inputs", "panics", "violations", "slowest (ms)"
    );
    let mut per_target = serde_json::Map::new();
    for (name, t) in tallies {
        let slowest_ms = t.slowest.as_secs_f64() * 1e3;
        let _ = writeln!(
            table,
            "{:<12} {:>10} {:>7} {:>10} {:>12.1}",
            name, t.inputs, t.panics, t.violations, slowest_ms
        );
        per_target.insert(
            (*name).into(),
            json!({"inputs": t.inputs, "panics": t.panics, "violations": t.violations,
                   "slowest_ms": (slowest_ms * 10.0).round() / 10.0}),
        );
        let slowest: String = t.slowest_input.chars().take(300).collect();
        eprintln!("fuzz: slowest {name} input ({slowest_ms:.1} ms): {slowest}");
    }
    let inputs: u64 = tallies.iter().map(|(_, t)| t.inputs).sum();
    let panics: u64 = tallies.iter().map(|(_, t)| t.panics).sum();
    let violations: u64 = tallies.iter().map(|(_, t)| t.violations).sum();
    let _ = writeln!(
        table,
        "{:<12} {:>10} {:>7} {:>10}",
        "total", inputs, panics, violations
    );
    print!("{table}");
    if panics + violations > 0 {
        println!("findings, with their inputs: {}", findings_file.display());
    }
    println!(
        "{}",
        json!({"suite": "fuzz", "seconds": seconds, "seed": seed, "inputs": inputs,
               "panics": panics, "violations": violations, "targets": per_target})
    );
    if panics + violations > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
