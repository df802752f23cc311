//! What every request handler shares ([`State`]): the object store, the fault rules, the
//! timeline and request log, the exec settings, the commands exec left running
//! ([`KeptProcesses`]) and the snapshots the simulated snapshot controller is told to fail. The server and the exec session both read and write it; it calls
//! neither.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::faults::{Decision, Fault, Faults, RequestFacts};
use crate::store::Store;
use crate::timeline::{RequestLog, Timeline};

/// Claims whose snapshots the simulated snapshot controller fails, by `(namespace, claim)`,
/// with the error message.
pub(crate) type SnapshotFailures = Mutex<std::collections::BTreeMap<(String, String), String>>;

/// Everything the request handlers share.
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) timeline: Timeline,
    pub(crate) requests: RequestLog,
    pub(crate) work_root: PathBuf,
    pub(crate) server_address: String,
    pub(crate) started: Instant,
    /// Accept only `v4.channel.k8s.io` for exec, like API servers before 1.30.
    pub(crate) v4_only: bool,
    /// Leave a command running when its exec client disconnects, as a kubelet does.
    pub(crate) keep_processes_on_disconnect: bool,
    /// Commands left running that way, killed when the server handle drops.
    pub(crate) kept_processes: KeptProcesses,
    /// Claims whose snapshots the simulated snapshot controller fails, with the message.
    pub(crate) snapshot_failures: SnapshotFailures,
    next_exec_id: AtomicU64,
}

impl State {
    pub(crate) fn new(
        work_root: PathBuf,
        server_address: String,
        v4_only: bool,
        keep_processes_on_disconnect: bool,
    ) -> Self {
        let started = Instant::now();
        Self {
            store: Store::new(),
            faults: Mutex::new(Faults::default()),
            timeline: Timeline::new(started),
            requests: RequestLog::default(),
            work_root,
            server_address,
            started,
            v4_only,
            keep_processes_on_disconnect,
            kept_processes: Default::default(),
            snapshot_failures: Default::default(),
            next_exec_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn next_exec_id(&self) -> u64 {
        self.next_exec_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Consults the fault rules and waits out any delay they ask for.
    pub(crate) async fn apply_fault_rules(&self, facts: &RequestFacts<'_>) -> Option<Fault> {
        let Decision { delay, fault } = self.faults().decide(facts);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        fault
    }
}

/// Commands left running after their exec client disconnected (builder option
/// `keep_processes_on_disconnect`), by PID, which is also their process group. A PID leaves the
/// set when the command has exited and been reaped.
#[derive(Debug, Default)]
pub(crate) struct KeptProcesses {
    pids: Mutex<BTreeSet<u32>>,
}

impl KeptProcesses {
    /// The set itself; a poisoned lock is taken over (the set stays consistent).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        self.pids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The PIDs of the commands still running.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.lock().iter().copied().collect()
    }

    /// Kills every kept command's process group (SIGKILL). Their waiting tasks reap them.
    pub(crate) fn kill_all(&self) {
        for pid in self.lock().iter() {
            if let Ok(pgid) = i32::try_from(*pid) {
                // SAFETY: kill(2) with a negative pid signals a process group; no memory is
                // touched. The group's leader has not been reaped (its PID would have left the
                // set), so the group is still the command's.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
    }
}
