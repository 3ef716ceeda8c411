//! Which machine and process this is: what a [`Launch`] names, to tell later whether it is
//! still there.

use hyperion_core::{Job, Launch};
use nix::unistd::Pid;

/// Which machine this is, for [`Launch`]: a process group is named by its host, boot and
/// leader's start time as well as its id.
#[derive(Debug)]
pub(crate) struct Machine {
    host: String,
    boot_id: String,
}

/// This machine's host name, as launches record it (empty if it cannot be read); read once.
pub fn this_host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| read_trimmed("/proc/sys/kernel/hostname"))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Machine {
    pub(crate) fn this() -> Self {
        Machine {
            host: this_host().to_owned(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        }
    }

    pub(crate) fn launch(&self, pgid: Pid, dir: &std::path::Path) -> Option<Launch> {
        let (group, start_time) = leader(pgid.as_raw())?;
        (group == pgid.as_raw()).then(|| Launch {
            host: self.host.clone(),
            boot_id: self.boot_id.clone(),
            pgid: pgid.as_raw(),
            start_time,
            dir: Some(dir.display().to_string()),
            job: None,
        })
    }

    /// The launch of a batch job that this process submits: the job, and this process.
    pub(crate) fn submitter(&self, dir: &std::path::Path, job: Job) -> Launch {
        let pid = std::process::id() as i32;
        Launch {
            host: self.host.clone(),
            boot_id: self.boot_id.clone(),
            pgid: pid,
            start_time: leader(pid).map_or(0, |(_, start)| start),
            dir: Some(dir.display().to_string()),
            job: Some(job),
        }
    }

    /// Whether `launch` names a process of this machine, since this boot.
    pub(crate) fn runs_here(&self, launch: &Launch) -> bool {
        launch.host == self.host && launch.boot_id == self.boot_id && !self.boot_id.is_empty()
    }

    /// Whether the process `launch` names is known to be gone: it ran on this machine, since
    /// this boot, and no process with its pid and start time is alive. (On another machine
    /// nobody here can tell: its lease says.)
    pub(crate) fn outlived(&self, launch: &Launch) -> bool {
        self.runs_here(launch)
            && leader(launch.pgid).is_none_or(|(_, start)| start != launch.start_time)
    }

    /// Whether `launch`'s group is still there: on this machine since the same boot, its
    /// leader alive with the same start time.
    pub(crate) fn runs(&self, launch: &Launch) -> bool {
        self.runs_here(launch) && leader(launch.pgid) == Some((launch.pgid, launch.start_time))
    }
}

/// The process group and start time (clock ticks after boot) of process `pid`, from
/// `/proc/PID/stat`.
fn leader(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted after its end.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}
