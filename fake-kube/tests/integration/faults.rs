//! Each fault knob, observed through kube-rs.

use std::time::{Duration, Instant};

use fake_kube::objects::pod;
use fake_kube::{ExecOutcome, Fault, FaultRule};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use crate::util::{api_error, client, exec, start};

#[tokio::test]
async fn counted_upgrade_rejections_then_success() {
    let kube = start(false).await;
    let client = client(&kube).await;
    kube.fail_next_exec_upgrades(2, 403);
    for _ in 0..2 {
        let error = exec(&client, "p", "main", &["true"]).await.unwrap_err();
        api_error(error, 403, "Forbidden");
    }
    let result = exec(&client, "p", "main", &["true"]).await.unwrap();
    assert_eq!(result.code, Some(0));
    let outcomes: Vec<_> = kube
        .execs()
        .into_iter()
        .map(|r| r.outcome.unwrap())
        .collect();
    assert!(matches!(
        outcomes[0],
        ExecOutcome::Rejected { code: 403, .. }
    ));
    assert!(matches!(
        outcomes[1],
        ExecOutcome::Rejected { code: 403, .. }
    ));
    assert_eq!(outcomes[2], ExecOutcome::Exited { code: 0 });
}

#[tokio::test]
async fn reject_with_400_is_a_bad_request() {
    let kube = start(false).await;
    kube.add_fault(FaultRule::exec(Fault::Reject { code: 400 }));
    let error = exec(&client(&kube).await, "p", "main", &["true"])
        .await
        .unwrap_err();
    api_error(error, 400, "BadRequest");
}

#[tokio::test]
async fn server_error_applies_to_any_request_until_removed() {
    let kube = start(false).await;
    let client = client(&kube).await;
    let id = kube.add_fault(FaultRule::any_request(Fault::ServerError));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    api_error(pods.get("p").await.unwrap_err(), 500, "InternalError");
    api_error(
        exec(&client, "p", "main", &["true"]).await.unwrap_err(),
        500,
        "InternalError",
    );
    assert!(kube.remove_fault(id));
    assert_eq!(
        pods.get("p").await.unwrap().metadata.name.as_deref(),
        Some("p")
    );
}

#[tokio::test]
async fn faults_scoped_to_a_pod_leave_other_pods_alone() {
    let kube = start(false).await;
    kube.add_pod(
        pod("default", "q")
            .container("main")
            .without_status()
            .build(),
    )
    .unwrap();
    kube.add_fault(FaultRule::exec(Fault::Reject { code: 403 }).pod("default", "q"));
    let client = client(&kube).await;
    assert_eq!(
        exec(&client, "p", "main", &["true"]).await.unwrap().code,
        Some(0)
    );
    api_error(
        exec(&client, "q", "main", &["true"]).await.unwrap_err(),
        403,
        "Forbidden",
    );
}

#[tokio::test]
async fn faults_can_match_on_the_command() {
    let kube = start(false).await;
    kube.add_fault(FaultRule::exec(Fault::ServerError).command_contains("fsfreeze"));
    let client = client(&kube).await;
    assert_eq!(
        exec(&client, "p", "main", &["true"]).await.unwrap().code,
        Some(0)
    );
    api_error(
        exec(&client, "p", "main", &["fsfreeze", "-f", "/data"])
            .await
            .unwrap_err(),
        500,
        "InternalError",
    );
}

#[tokio::test]
async fn dropped_stream_ends_without_status_and_without_running_the_command() {
    let kube = start(false).await;
    kube.add_fault(FaultRule::exec(Fault::DropStream).times(1));
    let result = exec(&client(&kube).await, "p", "main", &["touch", "ran"])
        .await
        .unwrap();
    assert!(result.status.is_none());
    assert!(result.join_error.is_some());
    assert!(result.stdout.is_empty());
    let dir = kube.container_dir("default", "p", "main").unwrap();
    assert!(!dir.join("ran").exists());
    assert_eq!(
        kube.execs()[0].outcome,
        Some(ExecOutcome::Dropped { command_ran: false })
    );
}

#[tokio::test]
async fn stream_dropped_after_output_ran_the_command_but_sends_no_status() {
    let kube = start(false).await;
    kube.add_fault(FaultRule::exec(Fault::DropStreamAfterOutput));
    let result = exec(
        &client(&kube).await,
        "p",
        "main",
        &["sh", "-c", "echo hi; touch ran"],
    )
    .await
    .unwrap();
    assert_eq!(result.stdout_text(), "hi\n");
    assert!(result.status.is_none());
    assert!(result.join_error.is_some());
    let dir = kube.container_dir("default", "p", "main").unwrap();
    assert!(dir.join("ran").exists());
    assert_eq!(
        kube.execs()[0].outcome,
        Some(ExecOutcome::Dropped { command_ran: true })
    );
}

#[tokio::test]
async fn delay_holds_the_answer_back() {
    let kube = start(false).await;
    let client = client(&kube).await;
    kube.add_fault(
        FaultRule::any_request(Fault::Delay(Duration::from_millis(300)))
            .pod("default", "p")
            .times(1),
    );
    let started = Instant::now();
    let result = exec(&client, "p", "main", &["true"]).await.unwrap();
    // A sleep never ends early, so this lower bound is not timing-sensitive.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(result.code, Some(0));
}

#[tokio::test]
async fn clear_faults_removes_everything() {
    let kube = start(false).await;
    kube.add_fault(FaultRule::any_request(Fault::ServerError));
    kube.clear_faults();
    assert_eq!(
        exec(&client(&kube).await, "p", "main", &["true"])
            .await
            .unwrap()
            .code,
        Some(0)
    );
}
