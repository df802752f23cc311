//! Kill-on-timeout ([`crate::hooks::Execution::kill_on_timeout`]).
//!
//! Closing the exec stream does not stop a command: the kubelet leaves it running, so a hung
//! freeze stays frozen. To be able to stop it, the hook is started as
//! `/bin/sh -c 'echo "@quiesce-pid=$$@" >&2; exec "$@"' quiesce-hook <argv…>` ([`wrap`]): the
//! shell prints its PID to stderr and replaces itself with the command, which keeps that PID.
//! The marker line is removed from the captured stderr ([`strip_marker`]). When the exec
//! times out, a second exec into the same container runs [`kill_command`]: TERM, then a poll
//! with `kill -0` once a second, then KILL after [`crate::hooks::KILL_GRACE`] if it is still
//! there; its output says which ([`KillReport`]).
//!
//! The signals go to the command's process group, so that what the command started (a
//! `sh -c 'sleep 20; touch /done'` hook's `sleep`, say) stops with it: the container runtime
//! starts every exec as the leader of a process group of its own (runc does, so the kubelet
//! with containerd or CRI-O does), and the wrapper's `exec` keeps that PID and group. Where
//! the PID leads no group, the PID alone is signalled.
//!
//! Limits, by design:
//! - The container needs `/bin/sh` (with the `kill` builtin, which every usual shell has:
//!   dash, bash, busybox ash). Without it the hook cannot even start in this mode
//!   ([`super::ExecError::KillNeedsShell`]); distroless images must not set kill-on-timeout.
//! - The PID is in the container's PID namespace; the kill exec runs in the same container,
//!   so it names the same process group. A child that moved to a group of its own (`setsid`)
//!   is not reached.
//! - A command that cannot be found is reported by the shell (`exec: …: not found`, exit code
//!   127) instead of by the runtime (`executable file not found in $PATH`).
//! - If the timeout fires before the marker arrived, the PID is unknown and nothing is killed
//!   (logged).

use std::time::Duration;

use super::Captured;

/// The wrapper script: print the marker with the shell's PID, then become the command.
pub const WRAPPER_SCRIPT: &str = r#"echo "@quiesce-pid=$$@" >&2; exec "$@""#;
/// `$0` of the wrapper (what the shell names itself in its own error messages).
pub const WRAPPER_NAME: &str = "quiesce-hook";
/// The kill script: `$1` the PID, `$2` the grace in whole seconds. Signals the process group
/// the PID leads (`kill -TERM -PID`: the one spelling busybox ash and dash both take), else
/// the PID alone. Whether anything of it still runs is read from `/proc` (zombies do not count:
/// an orphan waits there until the container's PID 1 reaps it), or asked with `kill -0` where
/// `/proc` cannot be read. Prints `gone` (nothing to signal), or `term` and then `exited` (all
/// of it is gone) or `killed`.
pub const KILL_SCRIPT: &str = r#"pid="$1"; grace="$2"
if kill -TERM -"$pid" 2>/dev/null; then group="$pid"; target=-"$pid"
elif kill -TERM "$pid" 2>/dev/null; then group=""; target="$pid"
else echo gone; exit 0; fi
echo term
running() {
  [ -r /proc/self/stat ] || { kill -0 "$target" 2>/dev/null; return; }
  for stat in /proc/[0-9]*/stat; do
    { read -r line < "$stat"; } 2>/dev/null || continue
    set -- ${line##*) }
    [ "$1" = Z ] && continue
    if [ -n "$group" ]; then [ "$3" = "$group" ] && return 0
    elif [ "$stat" = "/proc/$pid/stat" ]; then return 0; fi
  done
  return 1
}
i=0
while [ "$i" -lt "$grace" ]; do
  sleep 1
  running || { echo exited; exit 0; }
  i=$((i + 1))
done
if kill -KILL "$target" 2>/dev/null; then echo killed; else echo exited; fi"#;
/// `$0` of the kill script.
pub const KILL_NAME: &str = "quiesce-kill";
/// How much longer than the grace the kill exec may take (connecting, the shell starting).
pub const KILL_EXEC_SLACK: Duration = Duration::from_secs(10);

const MARKER_PREFIX: &[u8] = b"@quiesce-pid=";
const MARKER_SUFFIX: &[u8] = b"@\n";

/// The argv that runs `command` under the PID-revealing wrapper.
pub fn wrap(command: &[String]) -> Vec<String> {
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        WRAPPER_SCRIPT.to_owned(),
        WRAPPER_NAME.to_owned(),
    ];
    argv.extend(command.iter().cloned());
    argv
}

/// The length of the marker line at the start of `stderr` and the PID in it, if it is there.
fn marker(stderr: &[u8]) -> Option<(usize, u32)> {
    let rest = stderr.strip_prefix(MARKER_PREFIX)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || !rest[digits..].starts_with(MARKER_SUFFIX) {
        return None;
    }
    let pid = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    Some((MARKER_PREFIX.len() + digits + MARKER_SUFFIX.len(), pid))
}

/// The PID the wrapper announced at the start of `stderr`, if it arrived.
pub fn pid_from(stderr: &Captured) -> Option<u32> {
    marker(&stderr.bytes).map(|(_, pid)| pid)
}

/// Removes the wrapper's marker line from the start of `stderr` (nothing else is touched).
pub fn strip_marker(stderr: &mut Captured) {
    if let Some((length, _)) = marker(&stderr.bytes) {
        stderr.bytes.drain(..length);
    }
}

/// The argv of the second exec that stops `pid`: TERM, then KILL after `grace` (rounded up to
/// whole seconds, at least one: `sleep` takes integers everywhere).
pub fn kill_command(pid: u32, grace: Duration) -> Vec<String> {
    let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        KILL_SCRIPT.to_owned(),
        KILL_NAME.to_owned(),
        pid.to_string(),
        seconds.max(1).to_string(),
    ]
}

/// What the kill exec reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillReport {
    /// The process was no longer there when TERM was to be sent.
    AlreadyGone,
    /// TERM was sent and the process exited within the grace.
    ExitedAfterTerm,
    /// TERM was sent, the process outlived the grace and was sent KILL.
    Killed,
    /// The kill exec failed or said something unexpected.
    Failed(String),
}

/// Reads the kill script's stdout.
pub fn parse_kill_output(stdout: &str) -> KillReport {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    match words.as_slice() {
        ["gone"] => KillReport::AlreadyGone,
        ["term", "exited"] => KillReport::ExitedAfterTerm,
        ["term", "killed"] => KillReport::Killed,
        _ => KillReport::Failed(format!("unexpected output of the kill script: {stdout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::OUTPUT_LIMIT;

    fn captured(bytes: &[u8]) -> Captured {
        let mut captured = Captured::default();
        captured.push(bytes, OUTPUT_LIMIT);
        captured
    }

    #[test]
    fn the_wrapper_passes_the_argv_untouched_after_its_name() {
        let argv = wrap(&[
            "/sbin/fsfreeze".into(),
            "--freeze".into(),
            "/my data".into(),
        ]);
        assert_eq!(argv[..2], ["/bin/sh", "-c"]);
        assert_eq!(argv[3], "quiesce-hook");
        assert_eq!(argv[4..], ["/sbin/fsfreeze", "--freeze", "/my data"]);
    }

    #[test]
    fn the_marker_gives_the_pid_and_is_stripped() {
        let mut stderr = captured(b"@quiesce-pid=4242@\nwarning: slow disk\n");
        assert_eq!(pid_from(&stderr), Some(4242));
        strip_marker(&mut stderr);
        assert_eq!(stderr.bytes, b"warning: slow disk\n");
    }

    #[test]
    fn a_partial_or_foreign_first_line_is_not_a_marker() {
        for bytes in [
            &b"@quiesce-pid=42"[..],
            b"@quiesce-pid=@\n",
            b"x@quiesce-pid=42@\n",
            b"@quiesce-pid=4x2@\n",
            b"",
        ] {
            let mut stderr = captured(bytes);
            assert_eq!(pid_from(&stderr), None, "{bytes:?}");
            strip_marker(&mut stderr);
            assert_eq!(stderr.bytes, bytes);
        }
    }

    #[test]
    fn the_grace_is_rounded_up_to_whole_seconds() {
        assert_eq!(kill_command(7, Duration::from_secs(5))[4..], ["7", "5"]);
        assert_eq!(kill_command(7, Duration::from_millis(1500))[5], "2");
        assert_eq!(kill_command(7, Duration::ZERO)[5], "1");
    }

    #[test]
    fn kill_script_output_is_read() {
        assert_eq!(parse_kill_output("gone\n"), KillReport::AlreadyGone);
        assert_eq!(
            parse_kill_output("term\nexited\n"),
            KillReport::ExitedAfterTerm
        );
        assert_eq!(parse_kill_output("term\nkilled\n"), KillReport::Killed);
        assert!(matches!(parse_kill_output("term\n"), KillReport::Failed(_)));
    }

    /// The scripts are real shell: run them here against a real process.
    #[test]
    fn the_scripts_work_in_a_posix_shell() {
        let output = std::process::Command::new("/bin/sh")
            .args(&wrap(&["sh".into(), "-c".into(), "echo $$".into()])[1..])
            .output()
            .unwrap();
        let stderr = captured(&output.stderr);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            pid_from(&stderr).map(|pid| pid.to_string()),
            Some(stdout.trim().to_owned()),
            "the command keeps the wrapper's PID"
        );

        // A sleeper whose parent shell reaps it, as a container runtime would.
        let mut parent = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(parent.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let pid: u32 = line.trim().parse().unwrap();
        let kill = std::process::Command::new("/bin/sh")
            .args(&kill_command(pid, Duration::from_secs(5))[1..])
            .output()
            .unwrap();
        assert_eq!(
            parse_kill_output(&String::from_utf8_lossy(&kill.stdout)),
            KillReport::ExitedAfterTerm
        );
        parent.wait().unwrap();
    }

    /// As a container runtime starts an exec, the hook leads a process group of its own: the
    /// kill stops the processes it started too, not only the command.
    #[test]
    fn the_kill_reaches_what_the_command_started() {
        use std::os::unix::process::CommandExt;
        let mut hook = std::process::Command::new("/bin/sh")
            .args(&wrap(&["sh".into(), "-c".into(), "sleep 30 & echo $!; wait".into()])[1..])
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(hook.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let child = line.trim().to_owned();
        let kill = std::process::Command::new("/bin/sh")
            .args(&kill_command(hook.id(), Duration::from_secs(5))[1..])
            .output()
            .unwrap();
        assert_eq!(
            parse_kill_output(&String::from_utf8_lossy(&kill.stdout)),
            KillReport::ExitedAfterTerm
        );
        hook.wait().unwrap();
        // The orphaned `sleep` is reaped by whoever adopts it; until then it is a zombie.
        let alive = || {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive(), "the hook's child {child} outlived the kill");
    }
}
