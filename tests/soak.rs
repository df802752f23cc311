//! Soak under faults (issue #9): 1 000 pods backed up by 8 concurrent callers in Velero's call
//! order — GetRelatedItems(pod), Execute(PV) per claim, the snapshot, Execute(pod), the
//! PodVolumeBackups of fs-backup pods, Shutdown — against the real binary and the fake API
//! server, while the server refuses, breaks, slows down and loses execs, pods vanish mid-backup
//! and hooks fail on their own.
//!
//! Every pod's story is drawn up front from a seeded generator ([`SplitMix64`]), so a run is
//! reproducible, and every expectation is derived from that story — which faults were injected,
//! which hooks were scripted to fail, which `on-error` they carry — never from what the run
//! observed. Then the run is checked against it:
//! - from fake-kube's exec records: each hook attempted exactly as often as the engine's rule
//!   says (post hooks run once unless a `Fail` pre hook failed before it could have run), with
//!   the server-side outcome the injection implies, freeze before snapshot before thaw, and an
//!   fs-backup pod thawed only after its PodVolumeBackup completed;
//! - from the plugin's stderr: exactly one error line per failed `Fail` hook (plus the one
//!   injected ConfigMap failure), one warning per failed `Continue` hook, none elsewhere;
//! - the pod `Execute`s that fail are exactly those of the failed `Fail` pre hooks;
//! - the plugin's peak RSS (VmHWM) stays under a generous bound, also when hooks print 1 MiB.
//!
//! A third run stops half-way, as an aborted backup does — some pods frozen whose Execute
//! never comes, fs-backup pods waiting for PodVolumeBackups that never complete — and sends
//! Shutdown: every frozen pod must be thawed before the process exits 0. Two one-pod tests
//! pin what the soak turned up: a freeze arriving while Shutdown drains, and a refused exec.
//!
//! Numbers (pods, execs, faults, peak RSS, duration) are printed with `eprintln!` for the
//! README (`cargo test --test soak -- --nocapture`); nothing here asserts on wall-clock time.

// The integration tests' shared helpers; this target uses only part of them, and the rest
// would be dead code here (the integration binary itself uses every one).
#[allow(dead_code)]
#[path = "integration/util/mod.rs"]
mod util;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_kube::objects::{persistent_volume, PodBuilder};
use fake_kube::{exec_records, ExecOutcome, ExecRecord, FakeKube, Fault, FaultRule};
use quiesce::proto::plugin::grpc_controller_client::GrpcControllerClient;
use serde_json::{json, Value};
use util::velero::{pod_volume_backup, shop_pod, Velero, Worker, NAMESPACE};
use util::{execute_request, launch_with_cluster, related_items_request};

/// Pods per soak, and Velero's concurrent item-block workers.
const PODS: usize = 1000;
const CALLERS: usize = 8;
/// The seed of every pod's story. Change it to explore; keep it fixed in the suite.
const SEED: u64 = 0x9_5EED_50A4;
/// Generous bound for "it happens at all" waits; never a performance assertion.
const EVENTUALLY: Duration = Duration::from_secs(60);
/// The plugin's peak RSS must stay below this (a memory bound, not a timing one).
const PEAK_RSS_BOUND_KIB: u64 = 30 * 1024;
/// What a loud hook prints on stdout.
const LOUD_BYTES: usize = 1 << 20;

// ----- the generator -----

/// SplitMix64: a tiny, well-mixed deterministic generator (no dependency needed).
struct SplitMix64(u64);

impl SplitMix64 {
    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

// ----- a pod's story -----

/// The hook's `on-error` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnErrorKey {
    /// No annotation: quiesce defaults to `Fail`.
    Unset,
    Fail,
    Continue,
}

impl OnErrorKey {
    /// Whether a failure stops the chain (`Fail`, also when unset).
    fn is_fail(self) -> bool {
        self != OnErrorKey::Continue
    }
}

/// A fault injected into one exec of one hook (a counted, per-pod rule: which exec it hits
/// does not depend on the callers' interleaving).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecFault {
    None,
    /// The upgrade is refused with this code (503, 403).
    Reject(u16),
    /// The upgrade is answered with 500.
    ServerError,
    /// Upgraded, then the connection is closed before the command runs.
    DropStream,
    /// The command runs, then the connection is closed before its status.
    DropStreamAfterOutput,
    /// The exec is served this many milliseconds late (well within the hook's timeout).
    Delay(u64),
}

impl ExecFault {
    /// The fault rule to install for this exec, if any.
    fn fault(self) -> Option<Fault> {
        match self {
            ExecFault::None => None,
            ExecFault::Reject(code) => Some(Fault::Reject { code }),
            ExecFault::ServerError => Some(Fault::ServerError),
            ExecFault::DropStream => Some(Fault::DropStream),
            ExecFault::DropStreamAfterOutput => Some(Fault::DropStreamAfterOutput),
            ExecFault::Delay(ms) => Some(Fault::Delay(Duration::from_millis(ms))),
        }
    }

    /// How the README tally names this fault.
    fn label(self) -> &'static str {
        match self {
            ExecFault::None => "none",
            ExecFault::Reject(503) => "upgrade rejected 503",
            ExecFault::Reject(403) => "upgrade rejected 403",
            ExecFault::Reject(_) => "upgrade rejected",
            ExecFault::ServerError => "server error 500",
            ExecFault::DropStream => "stream dropped before the command",
            ExecFault::DropStreamAfterOutput => "stream dropped before the status",
            ExecFault::Delay(_) => "slow exec (delay)",
        }
    }
}

/// One hook of a pod: what its command does and what the server does to its exec.
#[derive(Debug, Clone, Copy)]
struct HookCase {
    exits_one: bool,
    on_error: OnErrorKey,
    fault: ExecFault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Volumes {
    None,
    /// This many claims, each snapshotted (Execute(PV), then the snapshot).
    Claims(usize),
    /// One claim whose volume is backed up by file-system backup (a PodVolumeBackup).
    FsBackup,
}

/// When the pod disappears from the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deletion {
    None,
    /// After block formation, before its volumes: the pre hook finds no pod.
    BeforeFreeze,
    /// After its volumes were snapshotted, before its own item: the post hook finds no pod.
    BeforeThaw,
}

/// Everything that will happen to one pod, drawn before the run.
#[derive(Debug, Clone)]
struct PodCase {
    index: usize,
    name: String,
    hooks: bool,
    volumes: Volumes,
    pre: HookCase,
    post: HookCase,
    deletion: Deletion,
    /// Both hooks print [`LOUD_BYTES`] on stdout.
    loud: bool,
    /// Shutdown test: Velero never gets to this pod's own item (Execute(pod) not sent).
    held: bool,
}

/// How an exec ends on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerEnd {
    Exited(i32),
    Rejected(u16),
    Dropped { command_ran: bool },
}

impl ServerEnd {
    /// Whether the server recorded this end.
    fn matches(self, outcome: &ExecOutcome) -> bool {
        match (self, outcome) {
            (ServerEnd::Exited(want), ExecOutcome::Exited { code }) => want == *code,
            (ServerEnd::Rejected(want), ExecOutcome::Rejected { code, .. }) => want == *code,
            (ServerEnd::Dropped { command_ran: want }, ExecOutcome::Dropped { command_ran }) => {
                want == *command_ran
            }
            _ => false,
        }
    }
}

/// What one hook must come to, derived from the story.
#[derive(Debug, Clone, Copy)]
struct HookExpectation {
    fails: bool,
    /// The engine's `may_have_run`: false only when the command certainly never started.
    may_have_run: bool,
    /// How the exec ends on the server.
    end: ServerEnd,
}

impl HookExpectation {
    /// An expectation from its three facts.
    fn new(fails: bool, may_have_run: bool, end: ServerEnd) -> Self {
        HookExpectation {
            fails,
            may_have_run,
            end,
        }
    }
}

impl HookCase {
    /// What this hook must come to, given whether its pod is gone by then.
    fn expect(&self, pod_deleted: bool) -> HookExpectation {
        if pod_deleted {
            // The API server answers 404 before any fault rule is consulted.
            return HookExpectation::new(true, false, ServerEnd::Rejected(404));
        }
        match self.fault {
            ExecFault::Reject(code) => HookExpectation::new(true, false, ServerEnd::Rejected(code)),
            ExecFault::ServerError => HookExpectation::new(true, false, ServerEnd::Rejected(500)),
            // The client cannot tell a drop before the command from one after it.
            ExecFault::DropStream => {
                HookExpectation::new(true, true, ServerEnd::Dropped { command_ran: false })
            }
            ExecFault::DropStreamAfterOutput => {
                HookExpectation::new(true, true, ServerEnd::Dropped { command_ran: true })
            }
            ExecFault::None | ExecFault::Delay(_) => HookExpectation::new(
                self.exits_one,
                true,
                ServerEnd::Exited(i32::from(self.exits_one)),
            ),
        }
    }
}

/// How far Velero got with a pod before Shutdown (the plain soak gets every pod to `Full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Untouched,
    /// GetRelatedItems only (block formed ahead, never backed up).
    Indexed,
    /// GetRelatedItems and Execute(PV) of its claims; its own Execute never came.
    VolumesOnly,
    /// Everything, Execute(pod) included.
    Full,
}

/// What must be seen of one pod, derived from its story and stage.
#[derive(Debug, Clone, Copy, Default)]
struct PodExpectation {
    pre: Option<HookExpectation>,
    post: Option<HookExpectation>,
    /// Execute(pod) answers an error (a failed `Fail` pre hook).
    execute_fails: bool,
    errors: usize,
    warnings: usize,
}

impl PodCase {
    /// The claims of the pod's volumes.
    fn claims(&self) -> Vec<String> {
        match self.volumes {
            Volumes::None => vec![],
            Volumes::Claims(n) => (0..n).map(|c| format!("c-{}-{c}", self.name)).collect(),
            Volumes::FsBackup => vec![format!("c-{}-fs", self.name)],
        }
    }

    /// The hook's command annotation: `true`/`false` with the verb, or a loud `sh -c`.
    fn command(&self, hook: &HookCase, phase: &str) -> Value {
        let argv: Vec<String> = match (self.loud, hook.exits_one) {
            (false, false) => vec!["true".into(), phase.into()],
            (false, true) => vec!["false".into(), phase.into()],
            (true, exits_one) => vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "yes quiesce-soak-output | head -c {LOUD_BYTES}{}",
                    if exits_one { "; exit 1" } else { "" }
                ),
                phase.into(),
            ],
        };
        json!(serde_json::to_string(&argv).unwrap())
    }

    /// The pod as the API server holds it and Velero sends it.
    fn json(&self) -> Value {
        let mut annotations = serde_json::Map::new();
        if self.hooks {
            for (phase, hook, verb) in [("pre", &self.pre, "freeze"), ("post", &self.post, "thaw")]
            {
                annotations.insert(
                    format!("{phase}.hook.backup.quiesce.dev/command"),
                    self.command(hook, verb),
                );
                let on_error = match hook.on_error {
                    OnErrorKey::Unset => None,
                    OnErrorKey::Fail => Some("Fail"),
                    OnErrorKey::Continue => Some("Continue"),
                };
                if let Some(on_error) = on_error {
                    annotations.insert(
                        format!("{phase}.hook.backup.quiesce.dev/on-error"),
                        json!(on_error),
                    );
                }
            }
        }
        if self.volumes == Volumes::FsBackup {
            annotations.insert("backup.velero.io/backup-volumes".into(), json!("data"));
        }
        let volume_name = |i: usize| {
            if self.volumes == Volumes::FsBackup {
                "data".to_owned()
            } else {
                format!("vol-{i}")
            }
        };
        shop_pod(&self.name)
            .label("app", "soak")
            .annotations(Value::Object(annotations))
            .volumes(
                self.claims()
                    .into_iter()
                    .enumerate()
                    .map(|(i, claim)| (volume_name(i), claim)),
            )
            .build()
    }

    /// Applies the rule of `src/engine/` to the story: pre hooks run at the first of
    /// Execute(PV)/Execute(pod); a failed `Fail` pre hook stops the chain — at the pod's first
    /// volume, which is refused (a warning) and the pod thawed right there, or at the pod's
    /// Execute — and the chain's answer is an error; post hooks run then only if the pre hook
    /// may have run; a failed `Continue` pre hook goes on to a normal freeze, so post hooks
    /// run. Failures of `Fail` hooks are error lines, of `Continue` hooks warnings.
    fn expect(&self, stage: Stage) -> PodExpectation {
        let mut expected = PodExpectation::default();
        let pre_attempted = self.hooks
            && match stage {
                Stage::Untouched | Stage::Indexed => false,
                Stage::VolumesOnly => !self.claims().is_empty(),
                Stage::Full => true,
            };
        if !pre_attempted {
            return expected;
        }
        let pre = self.pre.expect(self.deletion == Deletion::BeforeFreeze);
        expected.pre = Some(pre);
        let pre_stopped_the_chain = pre.fails && self.pre.on_error.is_fail();
        if pre.fails {
            if self.pre.on_error.is_fail() {
                expected.errors += 1;
            } else {
                expected.warnings += 1;
            }
        }
        expected.execute_fails = pre_stopped_the_chain && stage == Stage::Full;
        // Refused at its first volume: thawed there, before a deletion "before the thaw".
        let refused = pre_stopped_the_chain && !self.claims().is_empty();
        let post_runs = !pre_stopped_the_chain || pre.may_have_run;
        if !post_runs {
            return expected;
        }
        let deleted_before_thaw = match self.deletion {
            Deletion::None => false,
            Deletion::BeforeFreeze => true,
            Deletion::BeforeThaw => !refused,
        };
        let post = self.post.expect(deleted_before_thaw);
        expected.post = Some(post);
        if post.fails {
            if self.post.on_error.is_fail() {
                expected.errors += 1;
            } else {
                expected.warnings += 1;
            }
        }
        expected
    }
}

/// Draws the stories of `PODS` pods from [`SEED`].
fn draw_cases(loud_per_mille: u64, held_per_mille: u64) -> Vec<PodCase> {
    let mut rng = SplitMix64(SEED);
    (0..PODS)
        .map(|index| {
            let hooks = !rng.chance(50);
            let volumes = match rng.below(100) {
                0..=39 => Volumes::Claims(1),
                40..=49 => Volumes::Claims(2),
                50..=84 => Volumes::None,
                _ => Volumes::FsBackup,
            };
            let mut hook = |script_failure_per_mille: u64| HookCase {
                exits_one: rng.chance(script_failure_per_mille),
                on_error: match rng.below(100) {
                    0..=59 => OnErrorKey::Unset,
                    60..=74 => OnErrorKey::Fail,
                    _ => OnErrorKey::Continue,
                },
                fault: if rng.chance(120) {
                    match rng.below(6) {
                        0 => ExecFault::Reject(503),
                        1 => ExecFault::Reject(403),
                        2 => ExecFault::ServerError,
                        3 => ExecFault::DropStream,
                        4 => ExecFault::DropStreamAfterOutput,
                        _ => ExecFault::Delay(100 + rng.below(300)),
                    }
                } else {
                    ExecFault::None
                },
            };
            let mut pre = hook(40);
            let mut post = hook(30);
            let deletion = match (hooks, volumes, rng.below(1000)) {
                (true, Volumes::Claims(_), 0..=9) => Deletion::BeforeFreeze,
                (true, Volumes::Claims(_), 10..=24) => Deletion::BeforeThaw,
                _ => Deletion::None,
            };
            if deletion != Deletion::None {
                // A vanished pod is its own fault: no exec fault on top.
                pre.fault = ExecFault::None;
                post.fault = ExecFault::None;
            }
            let loud = rng.chance(loud_per_mille);
            let held = rng.chance(held_per_mille);
            PodCase {
                index,
                name: format!("p{index:04}"),
                hooks,
                volumes,
                pre,
                post,
                deletion,
                loud,
                held,
            }
        })
        .collect()
}

// ----- Velero, replayed -----

/// Velero's node agent finishing a file-system backup. The marker goes first: the thaw may
/// start the moment the object says Completed.
fn complete_pod_volume_backup(cluster: &FakeKube, case: &PodCase) {
    cluster.mark(format!("pvb completing {}", case.name));
    cluster
        .add_object(pod_volume_backup(&case.name, &case.name, "Completed"))
        .unwrap();
}

/// The stage each pod reaches when every caller stops before pod `stop_at` (each caller then
/// forms one more block: the next pod is indexed, never backed up).
fn stage_of(case: &PodCase, stop_at: usize) -> Stage {
    if case.index < stop_at {
        if case.held {
            Stage::VolumesOnly
        } else {
            Stage::Full
        }
    } else if stop_at < PODS && case.index < stop_at + CALLERS {
        Stage::Indexed
    } else {
        Stage::Untouched
    }
}

/// One of Velero's item-block workers: its share of the pods, in order, up to `stop_at`.
/// Returns the answer of each Execute(pod) it sent.
async fn replay(
    caller: usize,
    cases: Arc<Vec<PodCase>>,
    cluster: Arc<FakeKube>,
    mut worker: Worker,
    stop_at: usize,
) -> Vec<(usize, Result<(), String>)> {
    let mut answers = Vec::new();
    let mut pvb_in_progress: Option<&PodCase> = None;
    for case in cases.iter().skip(caller).step_by(CALLERS) {
        let pod = case.json();
        worker.related_items(&pod).await;
        if case.index >= stop_at {
            break; // indexed ahead; Velero stops before backing it up
        }
        if case.deletion == Deletion::BeforeFreeze {
            cluster.remove_pod(NAMESPACE, &case.name).unwrap();
        }
        // A refused volume ends the pod's chain in Velero: no further volume, no Execute(pod).
        let mut refused = None;
        for claim in case.claims() {
            if let Err(status) = worker.volume(&format!("pv-{claim}"), &claim).await {
                refused = Some(status.message().to_owned());
                break;
            }
        }
        if case.deletion == Deletion::BeforeThaw {
            cluster.remove_pod(NAMESPACE, &case.name).unwrap();
        }
        // The node agent finishes the previous fs-backup pod while this one is backed up.
        if let Some(done) = pvb_in_progress.take() {
            complete_pod_volume_backup(&cluster, done);
        }
        if case.held {
            continue;
        }
        if let Some(error) = refused {
            answers.push((case.index, Err(error)));
            continue;
        }
        let answer = worker
            .pod(&pod)
            .await
            .map_err(|status| status.message().to_owned());
        answers.push((case.index, answer));
        if case.volumes == Volumes::FsBackup {
            // Velero creates the PodVolumeBackups right after the pod's actions return.
            cluster
                .add_object(pod_volume_backup(&case.name, &case.name, "InProgress"))
                .unwrap();
            pvb_in_progress = Some(case);
        }
    }
    if stop_at >= cases.len() {
        if let Some(done) = pvb_in_progress {
            complete_pod_volume_backup(&cluster, done);
        }
    }
    answers
}

/// Velero plus the fault plan: launches the plugin and fake cluster, installs every pod and
/// every fault, and runs the callers.
struct Soak {
    velero: Velero,
    cases: Arc<Vec<PodCase>>,
    rss: PeakRss,
    started: Instant,
}

impl Soak {
    /// Launches the plugin and fake cluster, adds every pod, then every fault.
    async fn start(cases: Vec<PodCase>) -> Soak {
        let velero = Velero::start().await;
        let rss = PeakRss::watch(velero.plugin.child.id());
        let cluster = &velero.cluster;
        for case in &cases {
            cluster.add_pod(case.json()).unwrap();
            for (hook, verb) in [(&case.pre, "freeze"), (&case.post, "thaw")] {
                if let Some(fault) = hook.fault.fault().filter(|_| case.hooks) {
                    cluster.add_fault(
                        FaultRule::exec(fault)
                            .pod(NAMESPACE, &case.name)
                            .command_contains(verb)
                            .times(1),
                    );
                }
            }
        }
        // The plugin ConfigMap cannot be listed (one error line: rules would be missing), and
        // the PodVolumeBackups cannot be listed a few times (deferred thaws keep waiting).
        cluster.add_fault(
            FaultRule::any_request(Fault::ServerError)
                .path_prefix("/api/v1/namespaces/velero/configmaps")
                .times(1),
        );
        cluster.add_fault(
            FaultRule::any_request(Fault::ServerError)
                .path_prefix("/apis/velero.io/v1/namespaces/velero/podvolumebackups")
                .times(3),
        );
        Soak {
            velero,
            cases: Arc::new(cases),
            rss,
            started: Instant::now(),
        }
    }

    /// Runs [`CALLERS`] callers over the pods up to `stop_at`; the Execute(pod) answers by pod.
    async fn run_callers(&self, stop_at: usize) -> BTreeMap<usize, Result<(), String>> {
        let callers: Vec<_> = (0..CALLERS)
            .map(|caller| {
                tokio::spawn(replay(
                    caller,
                    Arc::clone(&self.cases),
                    Arc::clone(&self.velero.cluster),
                    self.velero.worker(),
                    stop_at,
                ))
            })
            .collect();
        let mut answers = BTreeMap::new();
        for caller in callers {
            answers.extend(caller.await.unwrap());
        }
        answers
    }

    /// `plugin.GRPCController/Shutdown` as go-plugin's `Kill` sends it (it ignores the answer
    /// and waits for the exit); the plugin must exit 0.
    async fn shutdown(&mut self) {
        let status = self
            .velero
            .stop(EVENTUALLY)
            .await
            .expect("the plugin exits after Shutdown");
        assert_eq!(status.code(), Some(0), "the plugin exits 0");
    }

    /// The plugin's stderr, every line parsed as JSON (a line that is not fails the test).
    fn stderr(&self) -> Vec<Value> {
        let lines = self.velero.plugin.stderr_lines();
        lines
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"))
            })
            .collect()
    }
}

// ----- what the exec records say -----

/// The hook phase an exec belongs to: its last argv element (`freeze` or `thaw`).
fn verb(record: &ExecRecord) -> &str {
    record.exec.argv.last().map(String::as_str).unwrap_or("")
}

/// Exec records by (pod, verb), in start order.
fn records_by_hook(records: &[ExecRecord]) -> BTreeMap<(String, String), Vec<&ExecRecord>> {
    let mut by_hook: BTreeMap<(String, String), Vec<&ExecRecord>> = BTreeMap::new();
    for record in records {
        by_hook
            .entry((record.exec.pod.clone(), verb(record).to_owned()))
            .or_default()
            .push(record);
    }
    by_hook
}

/// The timeline position of the marker `label`, if it was set.
fn marker_seq(events: &[fake_kube::TimelineEvent], label: &str) -> Option<u64> {
    events.iter().find_map(|e| match &e.kind {
        fake_kube::TimelineEventKind::Marker { label: l } if l == label => Some(e.seq),
        _ => None,
    })
}

/// Whether the command was started for this exec record.
fn command_started(record: &ExecRecord) -> bool {
    record.pid.is_some()
}

/// Checks one hook's exec records against its expectation: one record when expected (no hook
/// here asks for retries, and exec must not be retried behind quiesce's back), none
/// otherwise, ended the way the injection implies, and the command started at most once.
fn check_attempts<'a>(
    case: &PodCase,
    verb: &str,
    expected: Option<HookExpectation>,
    by_hook: &BTreeMap<(String, String), Vec<&'a ExecRecord>>,
    problems: &mut Vec<String>,
) -> Option<&'a ExecRecord> {
    let records = by_hook
        .get(&(case.name.clone(), verb.to_owned()))
        .cloned()
        .unwrap_or_default();
    let started = records.iter().filter(|r| command_started(r)).count();
    if started > 1 {
        problems.push(format!(
            "{}: the {verb} command ran {started} times ({case:?})",
            case.name
        ));
    }
    let wanted = usize::from(expected.is_some());
    if records.len() != wanted {
        problems.push(format!(
            "{}: {} {verb} exec records, expected {wanted} ({case:?}): {records:#?}",
            case.name,
            records.len()
        ));
        return None;
    }
    let expected = expected?;
    let record: &'a ExecRecord = records.last().copied()?;
    match &record.outcome {
        Some(outcome) if expected.end.matches(outcome) => Some(record),
        other => {
            problems.push(format!(
                "{}: {verb} ended {other:?}, expected {:?} ({case:?})",
                case.name, expected.end
            ));
            None
        }
    }
}

/// Totals of a run, for the assertions and for the README.
#[derive(Debug, Default)]
struct Totals {
    pods_with_hooks: usize,
    attempts: usize,
    failures: usize,
    errors: usize,
    warnings: usize,
    exec_faults: BTreeMap<&'static str, usize>,
    scripted_failures: usize,
    deleted: usize,
}

/// Checks every pod's exec records against its expectation, and the timeline's order.
fn check_timeline(
    cases: &[PodCase],
    expectations: &[PodExpectation],
    events: &[fake_kube::TimelineEvent],
    exited_at: Option<u64>,
) -> Totals {
    let records = exec_records(events);
    let by_hook = records_by_hook(&records);
    let mut problems = Vec::new();
    let mut totals = Totals::default();
    for (case, expected) in cases.iter().zip(expectations) {
        totals.pods_with_hooks += usize::from(case.hooks);
        let pre = check_attempts(case, "freeze", expected.pre, &by_hook, &mut problems);
        let post = check_attempts(case, "thaw", expected.post, &by_hook, &mut problems);
        for (hook, expectation) in [(&case.pre, expected.pre), (&case.post, expected.post)] {
            let Some(expectation) = expectation else {
                continue;
            };
            totals.attempts += 1;
            totals.failures += usize::from(expectation.fails);
            if hook.fault != ExecFault::None {
                *totals.exec_faults.entry(hook.fault.label()).or_default() += 1;
            }
            totals.scripted_failures += usize::from(expectation.end == ServerEnd::Exited(1));
        }
        totals.errors += expected.errors;
        totals.warnings += expected.warnings;
        totals.deleted += usize::from(case.deletion != Deletion::None && expected.pre.is_some());
        if let (Some(pre), Some(post)) = (pre, post) {
            if pre.end_seq.is_none_or(|end| end > post.start_seq) {
                problems.push(format!(
                    "{}: thaw started before the freeze ended",
                    case.name
                ));
            }
        }
        // Freeze before every snapshot of the pod, thaw after all of them.
        for claim in case.claims() {
            let Some(snapshot) = marker_seq(events, &format!("snapshot pv-{claim}")) else {
                continue;
            };
            if pre.is_some_and(|pre| pre.end_seq.is_none_or(|end| end > snapshot)) {
                problems.push(format!("{}: freeze did not end before {claim}", case.name));
            }
            if post.is_some_and(|post| post.start_seq < snapshot) {
                problems.push(format!("{}: thaw started before {claim}", case.name));
            }
        }
        // A frozen fs-backup pod thaws only once its PodVolumeBackup is terminal.
        let frozen = expected
            .pre
            .is_some_and(|pre| !(pre.fails && case.pre.on_error.is_fail()));
        if case.volumes == Volumes::FsBackup && frozen {
            if let (Some(post), Some(completing)) = (
                post,
                marker_seq(events, &format!("pvb completing {}", case.name)),
            ) {
                if post.start_seq < completing {
                    problems.push(format!(
                        "{}: thawed before its PodVolumeBackup completed",
                        case.name
                    ));
                }
            }
        }
        // Nothing of a pod may still be running, or end after, when the plugin exited.
        if let Some(exited_at) = exited_at {
            for record in [pre, post].into_iter().flatten() {
                if record.end_seq.is_none_or(|end| end > exited_at) {
                    problems.push(format!(
                        "{}: {} exec ended after the plugin exited",
                        case.name,
                        verb(record)
                    ));
                }
            }
        }
    }
    assert_no_problems(&problems);
    totals
}

/// Fails with the count and the first 20 problems, if any.
fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problems, first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
}

/// Error and warning lines of failed hooks per pod, against the expectation; every error line
/// must be accounted for: the failed `Fail` hooks plus the one injected ConfigMap failure.
fn check_log(
    lines: &[Value],
    cases: &[PodCase],
    expectations: &[PodExpectation],
    totals: &Totals,
) -> (usize, usize) {
    let errors: Vec<&Value> = lines.iter().filter(|l| l["@level"] == "error").collect();
    let hook_lines = |level: &str| {
        let mut by_pod: BTreeMap<String, usize> = BTreeMap::new();
        for line in lines.iter().filter(|l| {
            l["@level"] == level && l["@message"] == "Error executing hook" && l["pod"].is_string()
        }) {
            *by_pod
                .entry(line["pod"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        by_pod
    };
    let (hook_errors, hook_warnings) = (hook_lines("error"), hook_lines("warn"));
    let mut problems = Vec::new();
    for (case, expected) in cases.iter().zip(expectations) {
        let errors = hook_errors.get(&case.name).copied().unwrap_or(0);
        let warnings = hook_warnings.get(&case.name).copied().unwrap_or(0);
        if (errors, warnings) != (expected.errors, expected.warnings) {
            problems.push(format!(
                "{}: {errors} error and {warnings} warning hook lines, expected {} and {} ({case:?})",
                case.name, expected.errors, expected.warnings
            ));
        }
    }
    assert_no_problems(&problems);
    let config_errors = errors
        .iter()
        .filter(|l| {
            l["@message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cannot read the plugin ConfigMap"))
        })
        .count();
    assert_eq!(
        config_errors, 1,
        "the injected ConfigMap failure is one error line"
    );
    let expected_errors = totals.errors + 1;
    assert_eq!(
        errors.len(),
        expected_errors,
        "error lines: the failed Fail hooks ({}) and the unreadable ConfigMap (1), nothing else: {:#?}",
        totals.errors,
        errors
            .iter()
            .filter(|l| l["@message"] != "Error executing hook")
            .collect::<Vec<_>>()
    );
    let warnings = hook_warnings.values().sum();
    assert_eq!(warnings, totals.warnings);
    (errors.len(), warnings)
}

// ----- peak RSS -----

/// Memory of the plugin process over its lifetime, from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    /// VmHWM: the kernel's exact peak resident set, in KiB.
    peak_kib: u64,
    /// The most RssAnon seen (sampled every 20 ms): the heap and stacks.
    peak_anon_kib: u64,
    /// RssFile when last seen: file-backed pages, mostly the binary's own code.
    file_kib: u64,
}

impl Memory {
    /// The peak, less the binary's code pages in an unoptimised build (32 MB of text, of
    /// which ~25 MiB end up resident whatever the workload: nothing the soak controls). A
    /// release binary is held to the bound with everything counted.
    fn bounded_kib(&self) -> u64 {
        if cfg!(debug_assertions) {
            self.peak_kib.saturating_sub(self.file_kib)
        } else {
            self.peak_kib
        }
    }

    /// Asserts that the bounded peak stays under [`PEAK_RSS_BOUND_KIB`].
    fn assert_bounded(&self) {
        assert!(
            self.bounded_kib() < PEAK_RSS_BOUND_KIB,
            "peak RSS {} KiB ({} KiB of it file-backed), bound {PEAK_RSS_BOUND_KIB} KiB",
            self.peak_kib,
            self.file_kib
        );
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |kib: u64| kib as f64 / 1024.0;
        write!(
            f,
            "peak RSS (VmHWM) {:.1} MiB, of which file-backed {:.1} MiB; peak anonymous {:.1} MiB",
            mib(self.peak_kib),
            mib(self.file_kib),
            mib(self.peak_anon_kib)
        )
    }
}

/// Follows a process's memory in /proc until it exits (or [`PeakRss::finish`]).
struct PeakRss {
    memory: Arc<std::sync::Mutex<Memory>>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakRss {
    /// Starts following the process's memory on a thread of its own.
    fn watch(pid: u32) -> PeakRss {
        let memory = Arc::new(std::sync::Mutex::new(Memory::default()));
        let done = Arc::new(AtomicBool::new(false));
        let (seen, stop) = (Arc::clone(&memory), Arc::clone(&done));
        let thread = std::thread::spawn(move || {
            // VmHWM only grows; a zombie (or a gone process) has no memory lines left.
            while !stop.load(Ordering::Relaxed) {
                let Some(now) = read_memory(pid) else {
                    break;
                };
                let mut seen = seen.lock().unwrap();
                seen.peak_kib = seen.peak_kib.max(now.peak_kib);
                seen.peak_anon_kib = seen.peak_anon_kib.max(now.peak_anon_kib);
                seen.file_kib = now.file_kib;
                drop(seen);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        PeakRss {
            memory,
            done,
            thread: Some(thread),
        }
    }

    /// What was seen (the lifetime peak once the process has exited).
    fn finish(&mut self) -> Memory {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        *self.memory.lock().unwrap()
    }
}

/// VmHWM, RssAnon and RssFile of the process, from /proc; `None` once it is gone.
fn read_memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Memory {
        peak_kib: field("VmHWM:")?,
        peak_anon_kib: field("RssAnon:")?,
        file_kib: field("RssFile:")?,
    })
}

// ----- the tests -----

/// The whole soak: every pod backed up, then Shutdown. Returns the plugin's peak RSS (KiB).
async fn soak(loud_per_mille: u64, label: &str) -> Memory {
    let cases = draw_cases(loud_per_mille, 0);
    let expectations: Vec<PodExpectation> = cases.iter().map(|c| c.expect(Stage::Full)).collect();
    let expected_posts = expectations.iter().filter(|e| e.post.is_some()).count();
    let loud = cases.iter().filter(|c| c.loud && c.hooks).count();
    let mut soak = Soak::start(cases.clone()).await;

    let answers = soak.run_callers(PODS).await;
    let failed: Vec<usize> = answers
        .iter()
        .filter(|(_, a)| a.is_err())
        .map(|(i, _)| *i)
        .collect();
    let expected_failed: Vec<usize> = expectations
        .iter()
        .enumerate()
        .filter(|(_, e)| e.execute_fails)
        .map(|(i, _)| i)
        .collect();
    let differing: Vec<&PodCase> = cases
        .iter()
        .filter(|c| failed.contains(&c.index) != expected_failed.contains(&c.index))
        .collect();
    assert!(
        differing.is_empty(),
        "exactly the pods whose Fail pre hook failed are refused; these differ: {differing:#?}"
    );
    for (index, answer) in &answers {
        if let Err(message) = answer {
            let case = &cases[*index];
            assert!(
                message.contains(&format!("{NAMESPACE}/{}", case.name)),
                "{message}"
            );
        }
    }

    // fs-backup pods thaw once their PodVolumeBackups complete: wait for every thaw, then stop
    // the plugin as Velero does at the end of the backup.
    let thawed = soak
        .velero
        .cluster
        .wait_for_timeline(EVENTUALLY, |events| {
            exec_records(events)
                .iter()
                .filter(|r| verb(r) == "thaw" && r.end_seq.is_some())
                .count()
                >= expected_posts
        })
        .await;
    assert!(thawed, "every expected thaw happens before Shutdown");
    soak.shutdown().await;
    let duration = soak.started.elapsed();
    let memory = soak.rss.finish();

    let events = soak.velero.cluster.timeline();
    let totals = check_timeline(&cases, &expectations, &events, None);
    let lines = soak.stderr();
    let (error_lines, warning_lines) = check_log(&lines, &cases, &expectations, &totals);
    // One line whenever nothing was frozen and the counts changed; the last has the totals.
    let summary = lines
        .iter()
        .rev()
        .find(|l| l["@message"] == "quiesce backup summary")
        .expect("a summary line");
    assert_eq!(summary["podsWithHooks"], totals.pods_with_hooks);
    assert_eq!(summary["hooksAttempted"], totals.attempts);
    assert_eq!(summary["hooksFailed"], totals.failures);
    assert_eq!(
        summary["autoThawedPods"], "",
        "the watchdog never had to step in"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["@message"] == "Thawing pod before the plugin exits"),
        "every pod was thawed by its own Execute or PodVolumeBackups, none by Shutdown"
    );

    let execs = exec_records(&events).len();
    // Loud hooks whose command ran to its end or past its output.
    let loud_hooks = cases
        .iter()
        .zip(&expectations)
        .filter(|(c, _)| c.loud)
        .flat_map(|(_, e)| [e.pre, e.post])
        .flatten()
        .filter(|e| {
            matches!(
                e.end,
                ServerEnd::Exited(_) | ServerEnd::Dropped { command_ran: true }
            )
        })
        .count();
    let loud_mib = (loud_hooks * LOUD_BYTES) >> 20;
    eprintln!(
        "soak [{label}]: {PODS} pods ({} with hooks, {loud} loud: {loud_mib} MiB of hook output), \
         {CALLERS} callers, {execs} execs ({} hook attempts, {} failed), exec faults injected {} \
         {:?}, pods deleted mid-backup {}, scripted exit-1 failures {}, plus 1 ConfigMap and 3 \
         PodVolumeBackup list failures; error lines {error_lines} (expected {} + 1), \
         hook warnings {warning_lines}; {memory}; {:.1} s",
        totals.pods_with_hooks,
        totals.attempts,
        totals.failures,
        totals.exec_faults.values().sum::<usize>(),
        totals.exec_faults,
        totals.deleted,
        totals.scripted_failures,
        totals.errors,
        duration.as_secs_f64()
    );
    memory
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pods_under_faults_freeze_and_thaw_once_with_one_error_line_per_fail_hook() {
    soak(0, "faults").await.assert_bounded();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_printing_a_mebibyte_each_leave_peak_memory_bounded() {
    soak(100, "faults, 10% of pods print 1 MiB per hook")
        .await
        .assert_bounded();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_in_the_middle_of_the_soak_thaws_every_frozen_pod_before_the_exit() {
    // Velero stops half-way (a failed or cancelled backup): 15% of the pods reached got their
    // volumes snapshotted but never their own item, fs-backup pods wait for PodVolumeBackups
    // that never complete, and each caller formed one block it never backed up.
    let stop_at = PODS / 2;
    let cases = draw_cases(0, 150);
    let expectations: Vec<PodExpectation> = cases
        .iter()
        .map(|c| c.expect(stage_of(c, stop_at)))
        .collect();
    let mut soak = Soak::start(cases.clone()).await;
    soak.run_callers(stop_at).await;
    let frozen_without_execute = cases
        .iter()
        .zip(&expectations)
        .filter(|(c, e)| stage_of(c, stop_at) == Stage::VolumesOnly && e.post.is_some())
        .count();
    assert!(
        frozen_without_execute > 0,
        "some pods wait for their Execute"
    );

    soak.shutdown().await;
    let exited_at = soak.velero.cluster.mark("plugin exited");
    let duration = soak.started.elapsed();
    soak.rss.finish();

    // Give a straggler (an exec the exit cut off) the chance to show up in the timeline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = soak.velero.cluster.timeline();
    let totals = check_timeline(&cases, &expectations, &events, Some(exited_at));
    let lines = soak.stderr();
    check_log(&lines, &cases, &expectations, &totals);
    let drained = lines
        .iter()
        .filter(|l| l["@message"] == "Thawing pod before the plugin exits")
        .count();
    eprintln!(
        "soak [shutdown half-way]: {stop_at} of {PODS} pods reached, {frozen_without_execute} \
         frozen without their Execute, {drained} thawed by Shutdown, {} execs; {:.1} s",
        exec_records(&events).len(),
        duration.as_secs_f64()
    );
    assert!(drained >= frozen_without_execute);
}

// ----- Shutdown and refused execs, one pod at a time -----

/// A pod with `true freeze` / `true thaw` hooks and at most one claim, mounted as `data`.
fn hooked(name: &str, claim: Option<&str>) -> PodBuilder {
    shop_pod(name)
        .annotation(
            "pre.hook.backup.quiesce.dev/command",
            r#"["true","freeze"]"#,
        )
        .annotation("post.hook.backup.quiesce.dev/command", r#"["true","thaw"]"#)
        .volumes(claim.map(|claim| ("data", claim)))
}

/// SIGTERM (or a Shutdown) can come while Velero's calls are still in flight. The drain
/// thaws the pods it finds frozen when it starts; a freeze that arrives after that must be
/// refused or thawed too, or the process exits with the pod frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_arriving_while_shutdown_drains_is_thawed_or_refused() {
    let (mut plugin, cluster) = launch_with_cluster(&[]).await;
    let (a, b, c) = (
        hooked("a", Some("data-a")).build(),
        hooked("b", Some("data-b")).build(),
        hooked("c", Some("data-c")).build(),
    );
    // Velero's calls, sent by hand: those racing the drain may fail, and that is allowed.
    let related_items = |pod: &Value| related_items_request(serde_json::to_vec(pod).unwrap());
    let volume = |claim: &str| {
        let pv = persistent_volume(&format!("pv-{claim}"), NAMESPACE, claim);
        execute_request(serde_json::to_vec(&pv).unwrap())
    };
    for pod in [&a, &b, &c] {
        cluster.add_pod(pod.clone()).unwrap();
    }
    // The drain stays busy thawing `a` for 1.5 s.
    cluster.add_fault(
        FaultRule::exec(Fault::Delay(Duration::from_millis(1500)))
            .pod(NAMESPACE, "a")
            .command_contains("thaw"),
    );
    let (mut iba, mut bia) = (
        plugin.item_block_action().await,
        plugin.backup_action().await,
    );
    iba.get_related_items(related_items(&a)).await.unwrap();
    iba.get_related_items(related_items(&b)).await.unwrap();
    bia.execute(volume("data-a")).await.unwrap();
    let channel = plugin.connect().await;
    let shutdown = tokio::spawn(async move {
        GrpcControllerClient::new(channel)
            .shutdown(quiesce::proto::plugin::Empty {})
            .await
    });
    assert!(plugin
        .wait_for_log(
            "Thawing pods still frozen before the plugin exits",
            EVENTUALLY
        )
        .is_some());
    // While the drain runs: `b` (indexed before it) and `c` (new) reach their volumes.
    let _ = bia.execute(volume("data-b")).await;
    let _ = iba.get_related_items(related_items(&c)).await;
    let _ = bia.execute(volume("data-c")).await;
    shutdown.await.unwrap().expect("Shutdown answers");
    let status = plugin.wait_exit(EVENTUALLY).expect("the plugin exits");
    assert_eq!(status.code(), Some(0));
    let exited_at = cluster.mark("plugin exited");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let records = exec_records(&cluster.timeline());
    for pod in ["a", "b", "c"] {
        let ran = |v: &str| {
            records
                .iter()
                .filter(|r| r.exec.pod == pod && verb(r) == v && command_started(r))
                .filter(|r| r.end_seq.is_some_and(|end| end < exited_at))
                .count()
        };
        assert_eq!(
            ran("freeze"),
            ran("thaw"),
            "{pod}: frozen {} times, thawed {} times before the exit: {records:#?}",
            ran("freeze"),
            ran("thaw")
        );
    }
}

/// An exec upgrade the API server refuses with 503 never started the command: the hook fails
/// as `unable to upgrade connection` after one attempt, and a pre hook that certainly did not
/// run needs no thaw. kube's client retries 503 by default (up to 15 times, unlogged): on the
/// exec path that spent the hook's whole timeout, turned the refusal into `timed out after …`
/// ("may have run") and thawed a pod that was never frozen. The short timeout keeps such a
/// regression quick to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_refused_with_503_fails_as_refused_once_and_is_not_thawed() {
    let mut velero = Velero::start().await;
    let db = hooked("db", None)
        .annotation("pre.hook.backup.quiesce.dev/timeout", "3s")
        .build();
    velero.cluster.add_fault(
        FaultRule::exec(Fault::Reject { code: 503 })
            .pod(NAMESPACE, "db")
            .command_contains("freeze"),
    );
    velero.index(&db).await;
    let status = velero.pod(&db).await.unwrap_err();
    let records = exec_records(&velero.cluster.timeline());
    let upgrades = records.iter().filter(|r| verb(r) == "freeze").count();
    let thaws = records.iter().filter(|r| verb(r) == "thaw").count();
    assert!(
        status.message().contains("unable to upgrade connection"),
        "{} (after {upgrades} refused upgrades)",
        status.message()
    );
    assert_eq!(upgrades, 1, "no hidden retry: {records:#?}");
    assert_eq!(thaws, 0, "nothing was frozen, nothing to thaw");
}
