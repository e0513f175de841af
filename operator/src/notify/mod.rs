//! Notifications (`spec.notifications`): each result the operator sees (a
//! backup Job's, an `OpenBaoRestore`'s, a restore drill's, a copy's) is an
//! [`Event`]; [`Notifier::notify`] turns it into one CloudEvents 1.0 JSON
//! event and queues it for each webhook that asks for it. Delivery runs in
//! the background ([`delivery`]): it never blocks or fails a reconcile.
//!
//! A call site builds an [`Event`] (with [`Event::backup`],
//! [`Event::restore`], or the fields for another kind of result) once,
//! after the status holds the result, and calls
//! `ctx.notifier.notify(&cluster, &event)`.
//!
//! This module is pure: the payload, its signature, which webhooks want an
//! event and what the controller refuses of `spec.notifications`.

pub mod delivery;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::api::{
    HARDENED_WEBHOOK_MESSAGE, NotifiedKind, OpenBaoClusterSpec, OpenBaoRestore,
    OpenBaoRestoreStatus, Profile, RestorePhase, RestoreTestStatus, Webhook,
};
use crate::status::JobOutcome;
use contract::network::{Cidr, forbidden, url_ip};
use contract::result::BackupResult;

pub use delivery::Notifier;

/// The header that carries the body's HMAC-SHA256 (`sha256=<hex>`).
pub const SIGNATURE_HEADER: &str = "X-OpenBao-Backup-Signature";
/// The structured-mode CloudEvents media type.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// One result, as webhooks hear about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: NotifiedKind,
    pub succeeded: bool,
    pub namespace: String,
    /// The `OpenBaoCluster` the result is of.
    pub cluster: String,
    /// What makes the result unique and stays the same for it (the Job's
    /// or the OpenBaoRestore's uid): the CloudEvents `id` is built from it,
    /// so that a receiver can drop a retried event it already has.
    pub result_id: String,
    /// The object that produced the result, `<resource>/<name>` (e.g.
    /// `jobs/it-backup-29410560`): the CloudEvents `subject`.
    pub object: String,
    /// When the result came.
    pub time: DateTime<Utc>,
    /// The backup's object key (written, restored, tested or copied).
    pub key: Option<String>,
    /// Its size in bytes and hex SHA-256, as stored.
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub duration_seconds: Option<f64>,
    /// What started it: a backup's kind (`scheduled`, `manual`,
    /// `pre-upgrade`), say.
    pub trigger: Option<String>,
    /// A copy's target, say.
    pub target: Option<String>,
    /// Why it failed (failures only).
    pub cause: Option<String>,
    /// One line for people.
    pub message: String,
}

impl Event {
    /// The result of a backup Job of `cluster` in `namespace`.
    pub fn backup(namespace: &str, cluster: &str, outcome: &JobOutcome) -> Self {
        let kind = outcome.kind.as_str();
        let mut event = Self {
            kind: NotifiedKind::Backup,
            succeeded: outcome.succeeded(),
            namespace: namespace.into(),
            cluster: cluster.into(),
            result_id: outcome.job_uid.clone(),
            object: format!("jobs/{}", outcome.job_name),
            time: outcome.finished_at,
            key: None,
            size: None,
            sha256: None,
            duration_seconds: None,
            trigger: Some(kind.into()),
            target: None,
            cause: None,
            message: String::new(),
        };
        match &outcome.result {
            Some(BackupResult::Succeeded {
                key,
                size,
                sha256,
                duration_seconds,
                ..
            }) => {
                event.message = format!(
                    "{kind} backup {key} ({}) in {duration_seconds:.1}s by Job {}",
                    contract::units::human_bytes(*size as f64),
                    outcome.job_name
                );
                event.key = Some(key.clone());
                event.size = Some(*size);
                event.sha256 = Some(sha256.clone());
                event.duration_seconds = Some(*duration_seconds);
            }
            _ => {
                let cause = outcome.failure_reason();
                event.message = format!("{kind} backup failed: {cause}");
                event.cause = Some(cause);
            }
        }
        event
    }

    /// One event per second copy a successful backup Job made (none for
    /// a failed backup): the copy's target, verified or why not. Each has
    /// its own id: the Job's uid and the copy's place.
    pub fn copies(namespace: &str, cluster: &str, outcome: &JobOutcome) -> Vec<Self> {
        let Some(BackupResult::Succeeded {
            key,
            size,
            sha256,
            copies,
            ..
        }) = &outcome.result
        else {
            return Vec::new();
        };
        let backup = Self::backup(namespace, cluster, outcome);
        copies
            .iter()
            .enumerate()
            .map(|(i, copy)| {
                let (message, cause) = if copy.verified {
                    (
                        format!("copy of backup {key} to {} verified", copy.target),
                        None,
                    )
                } else {
                    let cause = copy
                        .error
                        .clone()
                        .unwrap_or_else(|| "the copy was not verified".into());
                    (
                        format!("copy of backup {key} to {} failed: {cause}", copy.target),
                        Some(cause),
                    )
                };
                Self {
                    kind: NotifiedKind::Copy,
                    succeeded: copy.verified,
                    result_id: format!("{}-{i}", outcome.job_uid),
                    key: Some(key.clone()),
                    size: Some(*size),
                    sha256: Some(sha256.clone()),
                    duration_seconds: None,
                    target: Some(copy.target.clone()),
                    cause,
                    message,
                    ..backup.clone()
                }
            })
            .collect()
    }

    /// An `OpenBaoRestore` that reached its final phase (`status`).
    pub fn restore(restore: &OpenBaoRestore, status: &OpenBaoRestoreStatus) -> Self {
        let name = restore.metadata.name.clone().unwrap_or_default();
        let succeeded = status.phase == RestorePhase::Succeeded;
        let chrono_time = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| {
            DateTime::<Utc>::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond() as u32)
        };
        let completed = status.completion_time.as_ref().and_then(chrono_time);
        let started = status.start_time.as_ref().and_then(chrono_time);
        let message = status.message.clone().unwrap_or_default();
        Self {
            kind: NotifiedKind::Restore,
            succeeded,
            namespace: restore.metadata.namespace.clone().unwrap_or_default(),
            cluster: restore.spec.cluster.clone(),
            result_id: restore.metadata.uid.clone().unwrap_or_else(|| name.clone()),
            object: format!("openbaorestores/{name}"),
            time: completed.unwrap_or_else(Utc::now),
            key: status.restored_key.clone(),
            size: status.restored_size,
            sha256: status.restored_sha256.clone(),
            duration_seconds: match (started, completed) {
                (Some(start), Some(end)) => Some((end - start).as_seconds_f64().max(0.0)),
                _ => None,
            },
            trigger: None,
            target: None,
            cause: (!succeeded).then(|| message.clone()),
            message: format!(
                "restore {name} of {} {}: {message}",
                restore.spec.cluster,
                if succeeded { "succeeded" } else { "failed" }
            ),
        }
    }

    /// The result of the restore drill `drill` of `cluster`, as `status`
    /// records it (`None` while it holds no result). `job_uid` is the
    /// drill Job's, when it got one (a throwaway that never ran has none:
    /// the drill's name, unique by its time, stands in).
    pub fn restore_test(
        namespace: &str,
        cluster: &str,
        drill: &str,
        job_uid: Option<&str>,
        status: &RestoreTestStatus,
    ) -> Option<Self> {
        let succeeded = status.last_result.as_deref()? == "Succeeded";
        let time = status
            .last_time
            .as_ref()
            .map(crate::jobs::chrono_time)
            .unwrap_or_else(Utc::now);
        let said = status.message.clone().unwrap_or_default();
        let message = match (succeeded, status.raft_index) {
            (true, Some(index)) => format!(
                "restore drill {drill} of {cluster} succeeded at Raft index {index}: {said}"
            ),
            (true, None) => format!("restore drill {drill} of {cluster} succeeded: {said}"),
            (false, _) => format!("restore drill {drill} of {cluster} failed: {said}"),
        };
        Some(Self {
            kind: NotifiedKind::RestoreTest,
            succeeded,
            namespace: namespace.into(),
            cluster: cluster.into(),
            result_id: job_uid.unwrap_or(drill).to_string(),
            object: match job_uid {
                Some(_) => format!("jobs/{drill}"),
                None => format!("pods/{drill}"),
            },
            time,
            key: status.backup_key.clone(),
            size: None,
            sha256: None,
            duration_seconds: if succeeded {
                status.recovery_seconds
            } else {
                None
            },
            trigger: None,
            target: None,
            // "the <step> step failed: <why>": the step first.
            cause: (!succeeded).then_some(said),
            message,
        })
    }

    /// The CloudEvents `id`: the kind and the result's id.
    pub fn id(&self) -> String {
        format!("{}-{}", self.kind.as_str(), self.result_id)
    }

    /// The CloudEvents `type`, e.g. `org.openbao.backup.succeeded`.
    pub fn type_(&self) -> String {
        let result = if self.succeeded {
            "succeeded"
        } else {
            "failed"
        };
        format!(
            "org.openbao.{}.{result}",
            self.kind.as_str().to_ascii_lowercase()
        )
    }

    /// The CloudEvents `source`: the cluster's API path.
    pub fn source(&self) -> String {
        format!(
            "/apis/openbao.org/v1alpha1/namespaces/{}/openbaoclusters/{}",
            self.namespace, self.cluster
        )
    }
}

/// A CloudEvents 1.0 event in structured mode, members in this order.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: String,
    source: String,
    #[serde(rename = "type")]
    type_: String,
    subject: &'a str,
    time: String,
    datacontenttype: &'static str,
    data: Data<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    kind: &'static str,
    result: &'static str,
    namespace: &'a str,
    cluster: &'a str,
    object: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'a str>,
    message: &'a str,
}

/// The request body: the event as CloudEvents JSON (structured mode).
pub fn payload(event: &Event) -> Vec<u8> {
    let cloud = CloudEvent {
        specversion: "1.0",
        id: event.id(),
        source: event.source(),
        type_: event.type_(),
        subject: &event.object,
        time: event.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        datacontenttype: "application/json",
        data: Data {
            kind: event.kind.as_str(),
            result: if event.succeeded {
                "succeeded"
            } else {
                "failed"
            },
            namespace: &event.namespace,
            cluster: &event.cluster,
            object: &event.object,
            key: event.key.as_deref(),
            size: event.size,
            sha256: event.sha256.as_deref(),
            duration_seconds: event.duration_seconds,
            trigger: event.trigger.as_deref(),
            target: event.target.as_deref(),
            cause: event.cause.as_deref(),
            message: &event.message,
        },
    };
    serde_json::to_vec(&cloud).expect("an event serializes")
}

/// The signature header's value: `sha256=` and the hex HMAC-SHA256 of
/// `body` keyed with `key` (the Secret's bytes as they are).
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `webhook` asks for `event`.
pub fn wants(webhook: &Webhook, event: &Event) -> bool {
    (webhook.events.is_empty() || webhook.events.contains(&event.kind))
        && !(webhook.only_failures && event.succeeded)
}

/// The URL's host and port as status and logs show it: never its path,
/// query or user info, which may hold a token.
pub fn host(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => "(no host)".into(),
        },
        Err(_) => "(not a URL)".into(),
    }
}

/// Why the webhook at `spec.notifications[index]` is not used, if it is not.
fn refusal(
    index: usize,
    webhook: &Webhook,
    profile: Profile,
    service_cidrs: &[Cidr],
) -> Option<String> {
    let field = format!("spec.notifications[{index}].url");
    let hardened = profile == Profile::Hardened;
    match reqwest::Url::parse(&webhook.url) {
        Err(e) => Some(format!(
            "{field} is not a URL ({e}): give the receiver's https:// URL"
        )),
        Ok(url) if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() => Some(
            format!("{field} is not an http(s) URL with a host: give the receiver's https:// URL"),
        ),
        Ok(url) if url.scheme() == "http" && hardened => Some(format!(
            "{field} (host {}) is plain HTTP, so it gets no events: {}",
            host(&webhook.url),
            HARDENED_WEBHOOK_MESSAGE
                .strip_prefix("spec.notifications: ")
                .unwrap_or(HARDENED_WEBHOOK_MESSAGE)
        )),
        Ok(_) if hardened => {
            let why = url_ip(&webhook.url).and_then(|ip| forbidden(ip, service_cidrs))?;
            Some(format!(
                "{field} (host {}): {why}, which the Hardened profile refuses as a webhook, so it gets no events; give the receiver's own address",
                host(&webhook.url)
            ))
        }
        Ok(_) => None,
    }
}

/// The webhooks events go to, with their place in `spec.notifications`.
pub fn usable<'a>(
    spec: &'a OpenBaoClusterSpec,
    service_cidrs: &'a [Cidr],
) -> impl Iterator<Item = (usize, &'a Webhook)> {
    let profile = spec.profile();
    spec.notifications
        .iter()
        .enumerate()
        .filter(move |(i, webhook)| refusal(*i, webhook, profile, service_cidrs).is_none())
}

/// What the controller refuses of `spec.notifications` (those webhooks get
/// nothing; backups go on): one line each, naming the field.
pub fn problems(spec: &OpenBaoClusterSpec, service_cidrs: &[Cidr]) -> Vec<String> {
    let profile = spec.profile();
    spec.notifications
        .iter()
        .enumerate()
        .filter_map(|(i, webhook)| refusal(i, webhook, profile, service_cidrs))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::JobOutcome;
    use chrono::TimeZone;
    use contract::result::BackupKind;
    use contract::snapshot::ContentDigest;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 3, 0, second).unwrap()
    }

    fn succeeded() -> JobOutcome {
        JobOutcome {
            job_name: "it-backup-29410560".into(),
            job_uid: "6f1c1d2e-0000-4000-8000-000000000001".into(),
            kind: BackupKind::Scheduled,
            finished_at: at(9),
            result: Some(BackupResult::Succeeded {
                key: "backups/it/20261130T030000.000Z-scheduled-ab12cd.snap".into(),
                manifest_key: "m".into(),
                bucket: "b".into(),
                size: 2048,
                sha256: "ab".repeat(32),
                snapshot: ContentDigest::default(),
                kind: BackupKind::Scheduled,
                source_node: "it-0".into(),
                started_at: at(0),
                completed_at: at(8),
                duration_seconds: 8.25,
                throughput_bytes_per_second: 248,
                parts: 1,
                peak_memory_bytes: None,
                retention: None,
                swept: Default::default(),
                copies: Vec::new(),
            }),
            job_failure: None,
        }
    }

    fn failed() -> JobOutcome {
        JobOutcome {
            job_name: "manual-backup-2".into(),
            job_uid: "6f1c1d2e-0000-4000-8000-000000000002".into(),
            kind: BackupKind::Manual,
            finished_at: at(30),
            result: None,
            job_failure: Some("BackoffLimitExceeded".into()),
        }
    }

    #[test]
    fn each_copy_is_an_event_of_its_own() {
        use contract::result::CopyReport;
        assert!(Event::copies("backups", "it", &failed()).is_empty());
        assert!(Event::copies("backups", "it", &succeeded()).is_empty());
        let mut outcome = succeeded();
        if let Some(BackupResult::Succeeded { copies, .. }) = &mut outcome.result {
            *copies = vec![
                CopyReport {
                    target: "s3://offsite".into(),
                    verified: true,
                    ..Default::default()
                },
                CopyReport {
                    target: "pvc://nfs".into(),
                    error: Some("directory error: no space left".into()),
                    ..Default::default()
                },
            ];
        }
        let events = Event::copies("backups", "it", &outcome);
        assert_eq!(events.len(), 2);
        let (ok, bad) = (&events[0], &events[1]);
        assert_eq!(ok.kind, NotifiedKind::Copy);
        assert!(ok.succeeded && !bad.succeeded);
        assert_eq!(ok.target.as_deref(), Some("s3://offsite"));
        assert_eq!(
            ok.key.as_deref(),
            Some("backups/it/20261130T030000.000Z-scheduled-ab12cd.snap")
        );
        assert_eq!(bad.cause.as_deref(), Some("directory error: no space left"));
        assert!(bad.message.contains("pvc://nfs failed"), "{}", bad.message);
        assert_ne!(ok.id(), bad.id(), "one id per copy");
        assert_ne!(ok.id(), Event::backup("backups", "it", &outcome).id());
        assert_eq!(
            ok.id(),
            Event::copies("backups", "it", &outcome)[0].id(),
            "stable"
        );
    }

    #[test]
    fn a_backup_success_is_this_exact_cloud_event() {
        let event = Event::backup("backups", "it", &succeeded());
        let body = String::from_utf8(payload(&event)).unwrap();
        let sha = "ab".repeat(32);
        assert_eq!(
            body,
            format!(
                concat!(
                    r#"{{"specversion":"1.0","id":"backup-6f1c1d2e-0000-4000-8000-000000000001","#,
                    r#""source":"/apis/openbao.org/v1alpha1/namespaces/backups/openbaoclusters/it","#,
                    r#""type":"org.openbao.backup.succeeded","subject":"jobs/it-backup-29410560","#,
                    r#""time":"2026-11-30T03:00:09Z","datacontenttype":"application/json","#,
                    r#""data":{{"kind":"backup","result":"succeeded","namespace":"backups","cluster":"it","#,
                    r#""object":"jobs/it-backup-29410560","key":"backups/it/20261130T030000.000Z-scheduled-ab12cd.snap","#,
                    r#""size":2048,"sha256":"{sha}","durationSeconds":8.25,"trigger":"scheduled","#,
                    r#""message":"scheduled backup backups/it/20261130T030000.000Z-scheduled-ab12cd.snap (2.0 KiB) in 8.2s by Job it-backup-29410560"}}}}"#
                ),
                sha = sha
            )
        );
        // The same result, built again (a retry, a restart): the same id.
        assert_eq!(
            Event::backup("backups", "it", &succeeded()).id(),
            event.id()
        );
    }

    #[test]
    fn a_backup_failure_says_why_and_has_no_key() {
        let event = Event::backup("backups", "it", &failed());
        let body: serde_json::Value = serde_json::from_slice(&payload(&event)).unwrap();
        assert_eq!(body["type"], "org.openbao.backup.failed");
        assert_eq!(body["id"], "backup-6f1c1d2e-0000-4000-8000-000000000002");
        assert_eq!(
            body["data"],
            serde_json::json!({
                "kind": "backup", "result": "failed", "namespace": "backups", "cluster": "it",
                "object": "jobs/manual-backup-2", "trigger": "manual",
                "cause": "Job manual-backup-2 failed: BackoffLimitExceeded",
                "message": "manual backup failed: Job manual-backup-2 failed: BackoffLimitExceeded",
            })
        );
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let body = payload(&Event::backup("backups", "it", &succeeded()));
        assert_ne!(signature(b"key-1", &body), signature(b"key-2", &body));
    }

    #[test]
    fn a_restore_result_is_an_event_of_its_cluster() {
        let restore: OpenBaoRestore = serde_json::from_value(serde_json::json!({
            "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoRestore",
            "metadata": {"name": "r1", "namespace": "backups", "uid": "u-1"},
            "spec": {"cluster": "it", "jwtAuthRole": "restore"},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let status = OpenBaoRestoreStatus {
            phase: RestorePhase::Failed,
            message: Some("the manifest does not match its signature".into()),
            start_time: Some(crate::status::time(at(0))),
            completion_time: Some(crate::status::time(at(12))),
            ..Default::default()
        };
        let event = Event::restore(&restore, &status);
        assert_eq!(event.id(), "restore-u-1");
        assert_eq!(event.type_(), "org.openbao.restore.failed");
        assert_eq!(event.object, "openbaorestores/r1");
        assert_eq!(event.duration_seconds, Some(12.0));
        assert_eq!(
            event.cause.as_deref(),
            Some("the manifest does not match its signature")
        );
        assert_eq!(
            event.source(),
            "/apis/openbao.org/v1alpha1/namespaces/backups/openbaoclusters/it"
        );
    }

    #[test]
    fn a_restore_drill_result_is_a_restore_test_event() {
        let passed = RestoreTestStatus {
            last_result: Some("Succeeded".into()),
            last_time: Some(crate::status::time(at(40))),
            backup_key: Some("backups/it/20261130T030000.000Z-scheduled-ab12cd.snap".into()),
            raft_index: Some(4711),
            recovery_seconds: Some(3.25),
            message: Some("restored it: unsealed at Raft index 4711, recovered in 3.2s".into()),
            ..Default::default()
        };
        let event =
            Event::restore_test("backups", "it", "it-drill-1", Some("u-9"), &passed).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&payload(&event)).unwrap();
        assert_eq!(body["id"], "restoreTest-u-9");
        assert_eq!(body["type"], "org.openbao.restoretest.succeeded");
        assert_eq!(body["subject"], "jobs/it-drill-1");
        assert_eq!(body["time"], "2026-11-30T03:00:40Z");
        assert_eq!(
            body["data"],
            serde_json::json!({
                "kind": "restoreTest", "result": "succeeded", "namespace": "backups",
                "cluster": "it", "object": "jobs/it-drill-1",
                "key": "backups/it/20261130T030000.000Z-scheduled-ab12cd.snap",
                "durationSeconds": 3.25,
                "message": "restore drill it-drill-1 of it succeeded at Raft index 4711: restored it: unsealed at Raft index 4711, recovered in 3.2s",
            })
        );

        // A failure names its step as the cause; a throwaway that never
        // ran has no Job: the drill's name is the id.
        let failed = RestoreTestStatus {
            last_result: Some("Failed".into()),
            last_time: Some(crate::status::time(at(50))),
            failed_step: Some("start".into()),
            message: Some("the start step failed: the throwaway pod it-drill-2 stopped".into()),
            ..Default::default()
        };
        let event = Event::restore_test("backups", "it", "it-drill-2", None, &failed).unwrap();
        assert_eq!(event.id(), "restoreTest-it-drill-2");
        assert_eq!(event.type_(), "org.openbao.restoretest.failed");
        assert_eq!(event.object, "pods/it-drill-2");
        assert_eq!(event.key, None);
        assert_eq!(event.duration_seconds, None);
        assert_eq!(
            event.cause.as_deref(),
            Some("the start step failed: the throwaway pod it-drill-2 stopped")
        );
        let only_drills = Webhook {
            events: vec![NotifiedKind::RestoreTest],
            only_failures: true,
            ..Default::default()
        };
        assert!(wants(&only_drills, &event));
        // No result recorded yet: nothing to tell.
        assert_eq!(
            Event::restore_test("backups", "it", "d", None, &RestoreTestStatus::default()),
            None
        );
    }

    #[test]
    fn webhooks_get_the_kinds_and_results_they_ask_for() {
        let backup_ok = Event::backup("backups", "it", &succeeded());
        let backup_failed = Event::backup("backups", "it", &failed());
        let all = Webhook::default();
        assert!(wants(&all, &backup_ok) && wants(&all, &backup_failed));
        let failures = Webhook {
            only_failures: true,
            ..Default::default()
        };
        assert!(!wants(&failures, &backup_ok) && wants(&failures, &backup_failed));
        let restores = Webhook {
            events: vec![NotifiedKind::Restore, NotifiedKind::RestoreTest],
            ..Default::default()
        };
        assert!(!wants(&restores, &backup_failed));
    }

    #[test]
    fn hosts_never_show_a_path_query_or_password() {
        assert_eq!(
            host("https://user:pw@hooks.example.com/services/T0/B0/secret?token=x"),
            "hooks.example.com"
        );
        assert_eq!(host("http://127.0.0.1:8080/hook"), "127.0.0.1:8080");
        assert_eq!(host("nonsense"), "(not a URL)");
    }

    #[test]
    fn hardened_clusters_send_over_tls_only() {
        let spec = |profile: &str| -> OpenBaoClusterSpec {
            serde_json::from_value(serde_json::json!({
                "version": "2.4.1", "profile": profile,
                "notifications": [
                    {"url": "https://hooks.example.com/a"},
                    {"url": "http://receiver.monitoring:8080/token-in-path"},
                ],
            }))
            .unwrap()
        };
        let development = spec("Development");
        assert!(problems(&development, &[]).is_empty());
        assert_eq!(usable(&development, &[]).count(), 2);
        let hardened = spec("Hardened");
        assert_eq!(
            problems(&hardened, &[]),
            [
                "spec.notifications[1].url (host receiver.monitoring:8080) is plain HTTP, so it gets no events: the Hardened profile sends notifications over TLS only; give each webhook's https:// URL"
            ]
        );
        assert!(!problems(&hardened, &[])[0].contains("token-in-path"));
        let used: Vec<usize> = usable(&hardened, &[]).map(|(i, _)| i).collect();
        assert_eq!(used, [0]);
    }

    #[test]
    fn hardened_clusters_send_nothing_to_the_node_metadata_or_services() {
        let cidrs = contract::network::parse_cidrs("10.96.0.0/12").unwrap();
        let spec = |profile: &str| -> OpenBaoClusterSpec {
            serde_json::from_value(serde_json::json!({
                "version": "2.4.1", "profile": profile,
                "notifications": [
                    {"url": "https://169.254.169.254/latest/api/token"},
                    {"url": "https://127.0.0.1:8443/hook"},
                    {"url": "https://10.96.0.1/hook"},
                    {"url": "https://203.0.113.7/hook"},
                ],
            }))
            .unwrap()
        };
        assert!(problems(&spec("Development"), &cidrs).is_empty());
        let hardened = spec("Hardened");
        let refused = problems(&hardened, &cidrs);
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(
            refused[0].starts_with(
                "spec.notifications[0].url (host 169.254.169.254): 169.254.169.254 is link-local"
            ),
            "{}",
            refused[0]
        );
        assert!(!refused[0].contains("api/token"));
        let used: Vec<usize> = usable(&hardened, &cidrs).map(|(i, _)| i).collect();
        assert_eq!(used, [3]);
    }
}
