//! The process that kills the trials of a run that died.
//!
//! A dispatcher cannot clean up after a SIGKILL (or an OOM kill, or a crash): its trials, each a
//! process group of its own, would live on. So it starts one small `sh` beside them, in a group
//! of its own that ignores the terminal's signals, and tells it on its standard input the group
//! of each trial as it starts and as it ends. When that input closes — the dispatcher dropped,
//! or its process gone, however it ended — the watchdog kills the groups still listed and exits.
//! One process per run and one short write per trial start and end: the trial itself is
//! started as before.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// The watchdog's program. Only digits reach its list; nothing it reads is executed.
const SCRIPT: &str = r#"trap '' INT TERM HUP
groups=''
while read -r line; do
  case $line in
    ''|*[!0-9-]*|-|-*-*|?*-*) ;;
    -*) keep=''
        for g in $groups; do [ "$g" = "${line#-}" ] || keep="$keep $g"; done
        groups=$keep ;;
    *) groups="$groups $line" ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
"#;

#[derive(Debug)]
pub(super) struct Watchdog {
    process: Child,
    input: Mutex<Option<ChildStdin>>,
}

impl Watchdog {
    pub(super) fn start() -> std::io::Result<Self> {
        let mut process = Command::new("/bin/sh")
            .args(["-c", SCRIPT, "hyperion-watchdog"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let input = process.stdin.take();
        Ok(Watchdog {
            process,
            input: Mutex::new(input),
        })
    }

    /// Kill group `pgid` if this process dies.
    pub(super) fn watch(&self, pgid: i32) {
        self.tell(format_args!("{pgid}"));
    }

    /// Group `pgid` is gone (its id may be reused): leave it alone.
    pub(super) fn forget(&self, pgid: i32) {
        self.tell(format_args!("-{pgid}"));
    }

    fn tell(&self, line: std::fmt::Arguments<'_>) {
        let mut input = self.input.lock().unwrap_or_else(|e| e.into_inner());
        // A watchdog that is gone (someone killed it) costs the guarantee, not the run.
        if let Some(pipe) = input.as_mut()
            && writeln!(pipe, "{line}").is_err()
        {
            *input = None;
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // End of input: it kills what is still listed (nothing, once every group was forgotten)
        // and exits.
        drop(self.input.lock().unwrap_or_else(|e| e.into_inner()).take());
        let _ = self.process.wait();
    }
}
