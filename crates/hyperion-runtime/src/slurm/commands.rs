//! Slurm's own commands, each call one process: `sbatch`, `squeue`, `scancel`, `sacct`.
//!
//! A controller that does not answer (restarting, overloaded, unreachable) is not an error of
//! the study: such calls are retried with backoff, said once on stderr, and said again when it
//! answers. Anything else Slurm refuses comes back with its own message.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Why a Slurm command did not do what was asked.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The command is not on PATH, or cannot start.
    Missing(String),
    /// The controller does not answer (for now).
    Unreachable(String),
    /// Slurm said no: its message.
    Refused(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing(m) | Refusal::Unreachable(m) | Refusal::Refused(m) => f.write_str(m),
        }
    }
}

/// What Slurm prints when its controller is away rather than when it refuses.
const UNREACHABLE: [&str; 7] = [
    "Unable to contact slurm controller",
    "Socket timed out",
    "Connection refused",
    "Zero Bytes were transmitted",
    "Communication connection failure",
    "Transport endpoint is not connected",
    "Slurm backup controller in standby mode",
];

/// Runs `program args…`; its stdout on success.
pub(crate) fn call(program: &str, args: &[String]) -> Result<String, Refusal> {
    call_with_env(program, args, &[])
}

/// Runs `program args…` with `env` added to this process's environment.
pub(crate) fn call_with_env(
    program: &str,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<String, Refusal> {
    let output = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Refusal::Missing(format!(
                "`{program}` is not on PATH: Slurm's commands must be installed where \
                 hyperion runs (a login node)"
            )),
            _ => Refusal::Missing(format!("cannot run `{program}`: {e}")),
        })?;
    judge(program, output)
}

fn judge(program: &str, output: Output) -> Result<String, Refusal> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr
        .lines()
        .map(|l| {
            let l = l.trim().trim_start_matches(&format!("{program}: "));
            l.strip_prefix("error: ").unwrap_or(l)
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let message = if message.is_empty() {
        format!("`{program}` failed ({})", output.status)
    } else {
        message
    };
    if UNREACHABLE.iter().any(|u| stderr.contains(u)) {
        Err(Refusal::Unreachable(message))
    } else {
        Err(Refusal::Refused(message))
    }
}

/// Says on stderr when Slurm stops and starts answering, once each time.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    since: Option<Instant>,
}

impl Outage {
    /// Notes a call's result; passes it on.
    pub(crate) fn note<T>(&mut self, what: &str, result: Result<T, Refusal>) -> Result<T, Refusal> {
        match (&result, self.since) {
            (Err(Refusal::Unreachable(message)), None) => {
                eprintln!("warning: Slurm does not answer ({what}: {message}); retrying");
                self.since = Some(Instant::now());
            }
            (Ok(_), Some(since)) => {
                eprintln!(
                    "note: Slurm answers again, after {}",
                    crate::human(since.elapsed())
                );
                self.since = None;
            }
            _ => {}
        }
        result
    }
}

/// How long a call that must happen (a submission, a cancellation) waits for a controller
/// that does not answer.
pub(crate) const PATIENCE: Duration = Duration::from_secs(600);

/// Calls until the controller answers (backoff from 0.5 s to 10 s), for up to [`PATIENCE`].
pub(crate) fn call_patiently(
    outage: &mut Outage,
    program: &str,
    args: &[String],
) -> Result<String, Refusal> {
    patiently(outage, program, || call(program, args))
}

fn patiently(
    outage: &mut Outage,
    what: &str,
    mut call: impl FnMut() -> Result<String, Refusal>,
) -> Result<String, Refusal> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        match outage.note(what, call()) {
            Err(Refusal::Unreachable(_)) if start.elapsed() < PATIENCE => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

/// `sbatch --parsable args…` with `env` added, patiently; returns the job's id.
pub(crate) fn sbatch(
    outage: &mut Outage,
    args: &[String],
    env: &[(&str, &str)],
) -> Result<String, Refusal> {
    let out = patiently(outage, "sbatch", || call_with_env("sbatch", args, env))?;
    // `--parsable` prints `id` or `id;cluster`.
    match out.trim().split(';').next() {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(Refusal::Refused(format!(
            "sbatch printed no job id: {out:?}"
        ))),
    }
}

/// A job as `squeue` shows it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JobState {
    pub id: String,
    pub name: String,
    pub state: String,
    pub reason: String,
    /// The wait status of the batch script (`exit 3` is 768).
    pub wait_status: i32,
    pub restarts: u32,
    pub nodes: String,
}

/// The `squeue --Format` that [`parse_squeue`] reads.
pub(crate) const SQUEUE_FORMAT: &str =
    "JobID:|,Name:|,State:|,Reason:|,exit_code:|,RestartCnt:|,NodeList:|";

/// The jobs in `squeue -h -O SQUEUE_FORMAT` output.
pub(crate) fn parse_squeue(text: &str) -> Vec<JobState> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('|').map(str::trim).collect();
            Some(JobState {
                id: fields.first()?.to_string(),
                name: fields.get(1)?.to_string(),
                state: fields.get(2)?.to_string(),
                reason: fields.get(3)?.to_string(),
                wait_status: fields.get(4)?.parse().unwrap_or(0),
                restarts: fields.get(5)?.parse().unwrap_or(0),
                nodes: fields.get(6).unwrap_or(&"").to_string(),
            })
        })
        .filter(|job| !job.id.is_empty())
        .collect()
}

/// The jobs among `ids` that Slurm still knows, finished ones included (within `MinJobAge`),
/// in one call.
pub(crate) fn squeue(ids: &[String]) -> Result<Vec<JobState>, Refusal> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let args = [
        "--noheader".to_owned(),
        "--states=all".to_owned(),
        format!("--jobs={}", ids.join(",")),
        format!("--Format={SQUEUE_FORMAT}"),
    ];
    match call("squeue", &args) {
        // Every one of them is gone (with one still known, squeue lists it and says nothing).
        Err(Refusal::Refused(m)) if m.contains("Invalid job id") => Ok(Vec::new()),
        other => other.map(|text| parse_squeue(&text)),
    }
}

/// This user's jobs named `names`, finished ones included, in one call.
pub(crate) fn squeue_named(names: &[String]) -> Result<Vec<JobState>, Refusal> {
    let args = [
        "--noheader".to_owned(),
        "--states=all".to_owned(),
        "--me".to_owned(),
        format!("--name={}", names.join(",")),
        format!("--Format={SQUEUE_FORMAT}"),
    ];
    call("squeue", &args).map(|text| parse_squeue(&text))
}

/// How jobs that `squeue` no longer knows ended, from accounting: `(id, state, wait status)`.
/// Refused where accounting is off.
pub(crate) fn sacct(ids: &[String]) -> Result<Vec<(String, String, i32)>, Refusal> {
    let args = [
        "--noheader".to_owned(),
        "--parsable2".to_owned(),
        "--allocations".to_owned(),
        format!("--jobs={}", ids.join(",")),
        "--format=JobID,State,ExitCode".to_owned(),
    ];
    let text = call("sacct", &args)?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('|');
            let id = fields.next()?.to_owned();
            // `CANCELLED by 0` is a state with its author.
            let state = fields.next()?.split(' ').next()?.to_owned();
            let (code, signal) = fields.next()?.split_once(':')?;
            let (code, signal): (i32, i32) = (code.parse().ok()?, signal.parse().ok()?);
            Some((id, state, (code << 8) | signal))
        })
        .collect())
}

/// Slurm's time format for a limit: `D-HH:MM:SS`, at least one minute (Slurm counts minutes).
pub(crate) fn time_limit(limit: Duration) -> String {
    let secs = limit.as_secs().max(60);
    // Slurm rounds seconds up to the minute: say so by asking for whole minutes.
    let minutes = secs.div_ceil(60);
    let (days, rest) = (minutes / 1440, minutes % 1440);
    format!("{days}-{:02}:{:02}:00", rest / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_become_jobs() {
        let text = "7|hyperion-s-3|FAILED|NonZeroExitCode|768|0|vm|\n\
                    8|hyperion-s-4|PENDING|BeginTime   |0|1||\n\n";
        let jobs = parse_squeue(text);
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].wait_status, 768);
        assert_eq!(jobs[0].nodes, "vm");
        assert_eq!(jobs[1].reason, "BeginTime");
        assert_eq!(jobs[1].restarts, 1);
    }

    #[test]
    fn limits_are_whole_minutes() {
        assert_eq!(time_limit(Duration::from_secs(5)), "0-00:01:00");
        assert_eq!(time_limit(Duration::from_secs(61)), "0-00:02:00");
        assert_eq!(time_limit(Duration::from_secs(86400 + 3600)), "1-01:00:00");
    }
}
