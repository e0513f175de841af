//! `spec.notifications` (webhooks that hear about backup, restore, restore
//! drill and copy results) and `status.notifications` (how delivery to
//! each went). Delivery is `operator::notify`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

/// The CEL rule's message, and the start of the controller's, on a plain
/// HTTP webhook under the `Hardened` profile.
pub const HARDENED_WEBHOOK_MESSAGE: &str = "spec.notifications: the Hardened profile sends notifications over TLS only; give each webhook's https:// URL";

/// A webhook that receives a CloudEvents 1.0 JSON event
/// (`application/cloudevents+json`) for each result it asks for.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Where events are POSTed, `https://...` (plain `http://` is refused
    /// under the `Hardened` profile). Status, events and logs show only its
    /// host: a token in its path or query stays secret.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
    /// A Secret key whose bytes are the HMAC-SHA256 key: each request then
    /// carries `X-OpenBao-Backup-Signature: sha256=<hex HMAC of the body>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// The results to send (default: all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub events: Vec<NotifiedKind>,
    /// Send failures only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_failures: bool,
    /// A Secret key holding the PEM CA that signed the receiver's
    /// certificate; without it the system's roots are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// What a result is of.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NotifiedKind {
    /// A backup Job (scheduled, manual or pre-upgrade).
    Backup,
    /// An `OpenBaoRestore`.
    Restore,
    /// A restore drill (`spec.backup.restoreTest`).
    RestoreTest,
    /// A second copy of a backup (`spec.backup.copies`).
    Copy,
}

impl NotifiedKind {
    pub const ALL: [NotifiedKind; 4] = [Self::Backup, Self::Restore, Self::RestoreTest, Self::Copy];

    /// As in `spec.notifications[].events` and the event's `data.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::RestoreTest => "restoreTest",
            Self::Copy => "copy",
        }
    }
}

/// How delivery to one webhook went.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    /// The webhook's place in `spec.notifications`.
    pub webhook: u32,
    /// The webhook URL's host (and port), never its path or query.
    pub host: String,
    pub last_result: DeliveryResult,
    /// The CloudEvents `id` of the last event tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_time: Option<Time>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Attempts failed since the last delivered event.
    #[serde(default)]
    pub consecutive_failures: u32,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeliveryResult {
    /// The receiver answered 2xx.
    #[default]
    Delivered,
    /// An attempt failed; another follows after a backoff.
    Retrying,
    /// Every attempt failed (or the receiver refused the event with a
    /// 4xx): the event is given up.
    Failed,
}
