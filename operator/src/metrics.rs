//! Prometheus metrics of the operator, and the small HTTP server that
//! serves them with the health probes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::status::JobOutcome;
use contract::result::{BackupKind, BackupResult};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    namespace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestoreLabels {
    namespace: String,
    cluster: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLabels {
    namespace: String,
    cluster: String,
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CopyLabels {
    namespace: String,
    cluster: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CopyResultLabels {
    namespace: String,
    cluster: String,
    target: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    result: String,
}

/// What became of one notification attempt (`notify::delivery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationResult {
    /// The receiver answered 2xx.
    Delivered,
    /// An attempt failed; another follows.
    Retried,
    /// The last attempt failed, or the receiver refused the event: given up.
    Failed,
    /// The queue was full: never attempted.
    Dropped,
}

impl NotificationResult {
    const ALL: [NotificationResult; 4] =
        [Self::Delivered, Self::Retried, Self::Failed, Self::Dropped];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

type Timestamp = Gauge<f64, AtomicU64>;

/// The values of the `result` label.
const RESULTS: [&str; 2] = ["success", "failure"];
const KINDS: [BackupKind; 3] = [
    BackupKind::Scheduled,
    BackupKind::Manual,
    BackupKind::PreUpgrade,
];

pub struct Metrics {
    registry: Registry,
    backups: Family<BackupLabels, Counter>,
    duration: Family<ClusterLabels, Histogram, fn() -> Histogram>,
    bytes: Family<ClusterLabels, Counter>,
    last_success: Family<ClusterLabels, Timestamp>,
    schedule_interval: Family<ClusterLabels, Timestamp>,
    restores: Family<RestoreLabels, Counter>,
    restore_duration: Family<ClusterLabels, Histogram, fn() -> Histogram>,
    restored_bytes: Family<ClusterLabels, Counter>,
    restore_tests: Family<RestoreLabels, Counter>,
    restore_test_last_success: Family<ClusterLabels, Timestamp>,
    restore_test_recovery: Family<ClusterLabels, Timestamp>,
    reconcile_errors: Family<StepLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
    copies: Family<CopyResultLabels, Counter>,
    copy_last_verified: Family<CopyLabels, Timestamp>,
    readiness: AtomicU8,
}

/// Where the replica is, as `/readyz` answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Readiness {
    /// Not yet through its start-up checks (API server, CRD).
    Starting = 0,
    /// Another replica leads; this one waits, with nothing to sync.
    Standby = 1,
    /// Leading, its watches not yet synced.
    Syncing = 2,
    /// Leading, its watches synced: reconciling.
    Synced = 3,
}

impl Readiness {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Readiness::Standby,
            2 => Readiness::Syncing,
            3 => Readiness::Synced,
            _ => Readiness::Starting,
        }
    }

    /// `/readyz`'s status and body.
    fn probe(self) -> (StatusCode, &'static str) {
        match self {
            Readiness::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            Readiness::Standby => (StatusCode::OK, "standby: another replica leads\n"),
            Readiness::Syncing => (
                StatusCode::SERVICE_UNAVAILABLE,
                "leading, watches not synced yet\n",
            ),
            Readiness::Synced => (StatusCode::OK, "ok\n"),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("openbao_backup");
        let backups = Family::default();
        let duration: Family<ClusterLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| {
                Histogram::new([
                    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                ])
            });
        let bytes = Family::default();
        let restore_duration: Family<ClusterLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| {
                Histogram::new([
                    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                ])
            });
        let restored_bytes = Family::default();
        let last_success = Family::default();
        let schedule_interval = Family::default();
        let restores = Family::default();
        let restore_tests = Family::default();
        let restore_test_last_success = Family::default();
        let restore_test_recovery = Family::default();
        let reconcile_errors = Family::default();
        registry.register(
            "backups",
            "Finished backup Jobs, by kind and result",
            backups.clone(),
        );
        registry.register(
            "duration_seconds",
            "Duration of successful backups",
            duration.clone(),
        );
        registry.register(
            "uploaded_bytes",
            "Snapshot bytes stored by successful backups",
            bytes.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Completion time of the last successful backup (Unix seconds)",
            last_success.clone(),
        );
        registry.register(
            "schedule_interval_seconds",
            "Longest time between two runs of the backup schedule (absent when suspended)",
            schedule_interval.clone(),
        );
        registry.register(
            "restores",
            "Finished OpenBaoRestores, by cluster and result",
            restores.clone(),
        );
        registry.register(
            "restore_duration_seconds",
            "Duration of successful restores, download to applied",
            restore_duration.clone(),
        );
        registry.register(
            "restored_bytes",
            "Snapshot bytes restored by successful restores",
            restored_bytes.clone(),
        );
        registry.register(
            "restore_tests",
            "Finished restore drills (spec.backup.restoreTest), by cluster and result",
            restore_tests.clone(),
        );
        registry.register(
            "restore_test_last_success_timestamp_seconds",
            "Completion time of the last restore drill that passed (Unix seconds)",
            restore_test_last_success.clone(),
        );
        registry.register(
            "restore_test_recovery_seconds",
            "Measured time to recover of the last restore drill that passed",
            restore_test_recovery.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and were retried, by the step that failed",
            reconcile_errors.clone(),
        );
        let notifications: Family<NotificationLabels, Counter> = Family::default();
        for result in NotificationResult::ALL {
            drop(notifications.get_or_create(&NotificationLabels {
                result: result.as_str().into(),
            }));
        }
        registry.register(
            "notifications",
            "Notification attempts to webhooks (spec.notifications), by result: delivered, retried, failed (given up), dropped (queue full)",
            notifications.clone(),
        );
        let copies: Family<CopyResultLabels, Counter> = Family::default();
        let copy_last_verified: Family<CopyLabels, Timestamp> = Family::default();
        registry.register(
            "copies",
            "Second copies (spec.backup.copies) made after successful backups, by target and result: verified or failed",
            copies.clone(),
        );
        registry.register(
            "copy_last_verified_timestamp_seconds",
            "Completion time of the last backup whose copy on the target was verified (Unix seconds)",
            copy_last_verified.clone(),
        );
        Self {
            registry,
            copies,
            copy_last_verified,
            backups,
            duration,
            bytes,
            last_success,
            schedule_interval,
            restores,
            restore_duration,
            restored_bytes,
            restore_tests,
            restore_test_last_success,
            restore_test_recovery,
            reconcile_errors,
            notifications,
            readiness: AtomicU8::new(Readiness::Starting as u8),
        }
    }
}

impl Metrics {
    pub fn record(&self, namespace: &str, cluster: &str, outcome: &JobOutcome) {
        self.backups
            .get_or_create(&backup_labels(
                namespace,
                cluster,
                outcome.kind,
                result(outcome.succeeded()),
            ))
            .inc();
        if let Some(BackupResult::Succeeded {
            size,
            duration_seconds,
            copies,
            completed_at,
            ..
        }) = &outcome.result
        {
            let labels = cluster_labels(namespace, cluster);
            self.duration
                .get_or_create(&labels)
                .observe(*duration_seconds);
            self.bytes.get_or_create(&labels).inc_by(*size);
            for copy in copies {
                let result = if copy.verified { "verified" } else { "failed" };
                self.copies
                    .get_or_create(&CopyResultLabels {
                        namespace: namespace.into(),
                        cluster: cluster.into(),
                        target: copy.target.clone(),
                        result: result.into(),
                    })
                    .inc();
                if copy.verified {
                    self.copy_last_verified
                        .get_or_create(&CopyLabels {
                            namespace: namespace.into(),
                            cluster: cluster.into(),
                            target: copy.target.clone(),
                        })
                        .set(completed_at.timestamp_millis() as f64 / 1000.0);
                }
            }
        }
    }

    /// From the status, so the figure survives operator restarts.
    pub fn set_last_success(&self, namespace: &str, cluster: &str, unix_seconds: f64) {
        self.last_success
            .get_or_create(&cluster_labels(namespace, cluster))
            .set(unix_seconds);
    }

    /// A cluster with backups: its counters exist from now on, at zero
    /// until something happens, so that the first failure after a start
    /// is an increase an alert sees. `interval`: the schedule's longest
    /// gap between runs (`schedule::longest_interval`), None when
    /// scheduled backups are suspended.
    pub fn set_cluster(&self, namespace: &str, cluster: &str, interval: Option<f64>) {
        for kind in KINDS {
            for result in RESULTS {
                drop(
                    self.backups
                        .get_or_create(&backup_labels(namespace, cluster, kind, result)),
                );
            }
        }
        for result in RESULTS {
            drop(
                self.restores
                    .get_or_create(&restore_labels(namespace, cluster, result)),
            );
        }
        let labels = cluster_labels(namespace, cluster);
        match interval {
            Some(seconds) => {
                self.schedule_interval.get_or_create(&labels).set(seconds);
            }
            None => {
                self.schedule_interval.remove(&labels);
            }
        }
    }

    /// A deleted cluster, or one without backups any more: no series of it
    /// stays to alert on.
    pub fn forget_cluster(&self, namespace: &str, cluster: &str) {
        let labels = cluster_labels(namespace, cluster);
        self.last_success.remove(&labels);
        self.schedule_interval.remove(&labels);
        self.duration.remove(&labels);
        self.bytes.remove(&labels);
        self.restore_duration.remove(&labels);
        self.restored_bytes.remove(&labels);
        for kind in KINDS {
            for result in RESULTS {
                self.backups
                    .remove(&backup_labels(namespace, cluster, kind, result));
            }
        }
        for result in RESULTS {
            self.restores
                .remove(&restore_labels(namespace, cluster, result));
        }
        self.forget_restore_tests(namespace, cluster);
    }

    /// A cluster with `spec.backup.restoreTest`: its drill counters exist
    /// from now on; the last success and its recovery time come from the
    /// status, so they survive operator restarts.
    pub fn set_restore_tests(
        &self,
        namespace: &str,
        cluster: &str,
        last_success: Option<f64>,
        recovery_seconds: Option<f64>,
    ) {
        for result in RESULTS {
            drop(
                self.restore_tests
                    .get_or_create(&restore_labels(namespace, cluster, result)),
            );
        }
        let labels = cluster_labels(namespace, cluster);
        if let Some(at) = last_success {
            self.restore_test_last_success
                .get_or_create(&labels)
                .set(at);
        }
        if let Some(seconds) = recovery_seconds {
            self.restore_test_recovery
                .get_or_create(&labels)
                .set(seconds);
        }
    }

    /// A drill of `cluster` ended.
    pub fn restore_test_finished(&self, namespace: &str, cluster: &str, succeeded: bool) {
        self.restore_tests
            .get_or_create(&restore_labels(namespace, cluster, result(succeeded)))
            .inc();
    }

    /// No `restoreTest` any more (or no cluster): no drill series stays.
    pub fn forget_restore_tests(&self, namespace: &str, cluster: &str) {
        let labels = cluster_labels(namespace, cluster);
        self.restore_test_last_success.remove(&labels);
        self.restore_test_recovery.remove(&labels);
        for result in RESULTS {
            self.restore_tests
                .remove(&restore_labels(namespace, cluster, result));
        }
    }

    /// An OpenBaoRestore of `cluster` reached its final phase.
    pub fn restore_finished(&self, namespace: &str, cluster: &str, succeeded: bool) {
        self.restores
            .get_or_create(&restore_labels(namespace, cluster, result(succeeded)))
            .inc();
    }

    /// What a successful restore of `cluster` took, as its result says.
    pub fn restore_measured(&self, namespace: &str, cluster: &str, seconds: f64, bytes: u64) {
        let labels = cluster_labels(namespace, cluster);
        self.restore_duration
            .get_or_create(&labels)
            .observe(seconds);
        self.restored_bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// A failed reconcile, by its failed step (`context::Error::step`).
    pub fn reconcile_failed(&self, step: &str) {
        self.reconcile_errors
            .get_or_create(&StepLabels { step: step.into() })
            .inc();
    }

    /// One notification attempt's outcome.
    pub fn notification(&self, result: NotificationResult) {
        self.notifications
            .get_or_create(&NotificationLabels {
                result: result.as_str().into(),
            })
            .inc();
    }

    pub fn set_readiness(&self, readiness: Readiness) {
        self.readiness.store(readiness as u8, Ordering::Relaxed);
    }

    pub fn readiness(&self) -> Readiness {
        Readiness::from_u8(self.readiness.load(Ordering::Relaxed))
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

fn result(succeeded: bool) -> &'static str {
    if succeeded { "success" } else { "failure" }
}

fn backup_labels(namespace: &str, cluster: &str, kind: BackupKind, result: &str) -> BackupLabels {
    BackupLabels {
        namespace: namespace.into(),
        cluster: cluster.into(),
        kind: kind.as_str().into(),
        result: result.into(),
    }
}

fn restore_labels(namespace: &str, cluster: &str, result: &str) -> RestoreLabels {
    RestoreLabels {
        namespace: namespace.into(),
        cluster: cluster.into(),
        result: result.into(),
    }
}

fn cluster_labels(namespace: &str, cluster: &str) -> ClusterLabels {
    ClusterLabels {
        namespace: namespace.into(),
        cluster: cluster.into(),
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    loop {
        let (stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<_>| {
                let response = respond(request.uri().path(), &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "metrics connection ended");
            }
        });
    }
}

fn respond(path: &str, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" => {
            let (status, body) = metrics.readiness().probe();
            (status, "text/plain", body.to_string())
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_show_up_by_cluster_kind_and_result() {
        let metrics = Metrics::default();
        let failed = JobOutcome {
            job_name: "j".into(),
            job_uid: "u".into(),
            kind: BackupKind::Manual,
            finished_at: chrono::Utc::now(),
            result: None,
            job_failure: Some("DeadlineExceeded".into()),
        };
        metrics.record("prod", "bao", &failed);
        metrics.set_last_success("prod", "bao", 1_790_000_000.0);
        metrics.reconcile_failed("apply StatefulSet");
        let text = metrics.encode();
        assert!(
            text.contains(r#"openbao_backup_reconcile_errors_total{step="apply StatefulSet"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"openbao_backup_backups_total{namespace="prod",cluster="bao",kind="manual",result="failure"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"openbao_backup_last_success_timestamp_seconds{namespace="prod",cluster="bao"} 1790000000"#
        ), "{text}");
        assert_eq!(respond("/healthz", &metrics).status(), StatusCode::OK);
        assert_eq!(respond("/nope", &metrics).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_cluster_has_its_interval_and_zero_counters_until_forgotten() {
        let metrics = Metrics::default();
        metrics.set_cluster("prod", "bao", Some(86_400.0));
        metrics.restore_finished("prod", "bao", false);
        metrics.restore_measured("prod", "bao", 12.5, 4096);
        let text = metrics.encode();
        for line in [
            r#"openbao_backup_restore_duration_seconds_sum{namespace="prod",cluster="bao"} 12.5"#,
            r#"openbao_backup_restore_duration_seconds_bucket{le="30.0",namespace="prod",cluster="bao"} 1"#,
            r#"openbao_backup_restored_bytes_total{namespace="prod",cluster="bao"} 4096"#,
            r#"openbao_backup_schedule_interval_seconds{namespace="prod",cluster="bao"} 86400"#,
            r#"openbao_backup_backups_total{namespace="prod",cluster="bao",kind="scheduled",result="failure"} 0"#,
            r#"openbao_backup_backups_total{namespace="prod",cluster="bao",kind="pre-upgrade",result="success"} 0"#,
            r#"openbao_backup_restores_total{namespace="prod",cluster="bao",result="success"} 0"#,
            r#"openbao_backup_restores_total{namespace="prod",cluster="bao",result="failure"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // Suspended: no interval, so no alert on the age of the last backup.
        metrics.set_cluster("prod", "bao", None);
        assert!(!metrics.encode().contains("schedule_interval_seconds{"));
        metrics.set_cluster("prod", "bao", Some(3_600.0));
        metrics.set_last_success("prod", "bao", 1_790_000_000.0);
        let succeeded = crate::status::tests::success(3);
        metrics.record("prod", "bao", &succeeded);
        assert!(metrics.encode().contains("duration_seconds_bucket{"));
        metrics.forget_cluster("prod", "bao");
        let text = metrics.encode();
        assert!(!text.contains(r#"cluster="bao""#), "{text}");
    }

    #[test]
    fn restore_tests_count_from_zero_and_go_with_their_cluster() {
        let metrics = Metrics::default();
        metrics.set_restore_tests("prod", "bao", None, None);
        let text = metrics.encode();
        assert!(text.contains(
            r#"openbao_backup_restore_tests_total{namespace="prod",cluster="bao",result="failure"} 0"#
        ), "{text}");
        assert!(!text.contains("restore_test_last_success_timestamp_seconds{"));
        metrics.restore_test_finished("prod", "bao", true);
        metrics.set_restore_tests("prod", "bao", Some(1_790_000_000.0), Some(12.5));
        let text = metrics.encode();
        for line in [
            r#"openbao_backup_restore_tests_total{namespace="prod",cluster="bao",result="success"} 1"#,
            r#"openbao_backup_restore_test_last_success_timestamp_seconds{namespace="prod",cluster="bao"} 1790000000"#,
            r#"openbao_backup_restore_test_recovery_seconds{namespace="prod",cluster="bao"} 12.5"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        metrics.forget_cluster("prod", "bao");
        assert!(!metrics.encode().contains(r#"cluster="bao""#));
    }

    #[test]
    fn ready_only_as_a_standby_or_once_the_watches_synced() {
        let metrics = Metrics::default();
        let readyz = |readiness| {
            metrics.set_readiness(readiness);
            respond("/readyz", &metrics).status()
        };
        assert_eq!(readyz(Readiness::Starting), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(readyz(Readiness::Standby), StatusCode::OK);
        assert_eq!(readyz(Readiness::Syncing), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(readyz(Readiness::Synced), StatusCode::OK);
        // Liveness does not wait for anything.
        metrics.set_readiness(Readiness::Starting);
        assert_eq!(respond("/healthz", &metrics).status(), StatusCode::OK);
        assert_eq!(Metrics::default().readiness(), Readiness::Starting);
    }
}
