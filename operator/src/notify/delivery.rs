//! Delivery of notifications, in the background: [`Notifier::notify`]
//! only queues (a bounded queue; a full one drops the event, counted), and
//! tasks POST each event to its webhook, at most [`IN_FLIGHT`] at once,
//! each attempt bounded by [`REQUEST_TIMEOUT`], retried with exponential
//! backoff up to [`ATTEMPTS`] times. Each attempt's outcome goes to
//! `openbao_backup_notifications_total{result}` and to the cluster's
//! `status.notifications` (a merge patch of that field alone, written by
//! one task so that an older list never overwrites a newer one).
//!
//! Events are queued once per result, after the status holds the result:
//! an operator restart never sends one again (the status already counts
//! its Job), and the events still queued or being retried when the
//! operator stops are lost. Within a run, delivery is at least once (a
//! receiver that timed out may get the event again, with the same `id`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use tokio::sync::{Semaphore, mpsc};

use super::{CONTENT_TYPE, Event, SIGNATURE_HEADER, host, payload, signature, usable, wants};
use crate::api::{DeliveryResult, NotificationStatus, OpenBaoCluster, Profile, SecretKeyRef};
use crate::metrics::{Metrics, NotificationResult};
use crate::status::time;
use contract::network::{Cidr, forbidden};

/// Events waiting for a delivery task; more are dropped (and counted).
pub const QUEUE: usize = 256;
/// Deliveries running at once (each may be waiting for a backoff).
pub const IN_FLIGHT: usize = 16;
/// Attempts per event and webhook.
pub const ATTEMPTS: u32 = 5;
/// The first backoff; each next one doubles (1s, 2s, 4s, 8s).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// One attempt: connecting, sending and the receiver's answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// (namespace, cluster name)
type ClusterKey = (String, String);

/// Queues events for delivery; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    queue: mpsc::Sender<Delivery>,
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    metrics: Arc<Metrics>,
    /// The service network, which `Hardened` webhooks may not resolve into.
    service_cidrs: Vec<Cidr>,
    /// Each cluster's `status.notifications` as this operator last wrote it.
    statuses: Mutex<HashMap<ClusterKey, Vec<NotificationStatus>>>,
    /// Clusters whose `status.notifications` changed.
    changed: mpsc::UnboundedSender<ClusterKey>,
}

/// One event for one webhook.
struct Delivery {
    cluster: ClusterKey,
    webhook: u32,
    url: String,
    secret_ref: Option<SecretKeyRef>,
    ca_secret_ref: Option<SecretKeyRef>,
    /// Under the `Hardened` profile: the host must not resolve to a
    /// loopback, link-local or service address.
    hardened: bool,
    id: String,
    body: Arc<Vec<u8>>,
}

/// Why an attempt failed; `permanent`: retrying cannot help.
struct Failure {
    message: String,
    permanent: bool,
}

impl Notifier {
    /// Starts the delivery and status tasks (on the current runtime).
    pub fn start(client: Client, metrics: Arc<Metrics>, service_cidrs: Vec<Cidr>) -> Self {
        let (queue, mut receiver) = mpsc::channel::<Delivery>(QUEUE);
        let (changed, changes) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            client,
            metrics,
            service_cidrs,
            statuses: Mutex::default(),
            changed,
        });
        let deliveries = shared.clone();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(IN_FLIGHT));
            while let Some(delivery) = receiver.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let shared = deliveries.clone();
                tokio::spawn(async move {
                    deliver(&shared, delivery).await;
                    drop(slot);
                });
            }
        });
        tokio::spawn(write_statuses(shared.clone(), changes));
        Self { queue, shared }
    }

    /// Queues `event` for each webhook of `cluster` that asks for it, and
    /// returns at once. Call it once per result, after the status holds
    /// the result.
    pub fn notify(&self, cluster: &OpenBaoCluster, event: &Event) {
        let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
        self.seed(cluster, &key);
        let wanted: Vec<_> = usable(&cluster.spec, &self.shared.service_cidrs)
            .filter(|(_, webhook)| wants(webhook, event))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let body = Arc::new(payload(event));
        let id = event.id();
        for (index, webhook) in wanted {
            let delivery = Delivery {
                cluster: key.clone(),
                webhook: index as u32,
                url: webhook.url.clone(),
                secret_ref: webhook.secret_ref.clone(),
                ca_secret_ref: webhook.ca_secret_ref.clone(),
                hardened: cluster.spec.profile() == Profile::Hardened,
                id: id.clone(),
                body: body.clone(),
            };
            if self.queue.try_send(delivery).is_err() {
                self.shared
                    .metrics
                    .notification(NotificationResult::Dropped);
                tracing::warn!(
                    namespace = %key.0, cluster = %key.1, webhook = index,
                    host = %host(&webhook.url), event = %id,
                    "notification dropped: {QUEUE} events are already waiting for delivery"
                );
            }
        }
    }

    /// Starts from the cluster's `status.notifications` (after a restart),
    /// forgetting webhooks no longer in the spec.
    fn seed(&self, cluster: &OpenBaoCluster, key: &ClusterKey) {
        let webhooks = cluster.spec.notifications.len() as u32;
        let mut statuses = self.shared.statuses.lock().expect("not poisoned");
        let list = statuses.entry(key.clone()).or_insert_with(|| {
            cluster
                .status
                .as_ref()
                .map(|s| s.notifications.clone())
                .unwrap_or_default()
        });
        list.retain(|entry| entry.webhook < webhooks);
    }
}

/// Every attempt for one event and webhook, with backoff between them.
async fn deliver(shared: &Shared, delivery: Delivery) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let outcome = attempt_once(shared, &delivery).await;
        let result = match &outcome {
            Ok(()) => DeliveryResult::Delivered,
            Err(failure) if failure.permanent || attempt == ATTEMPTS => DeliveryResult::Failed,
            Err(_) => DeliveryResult::Retrying,
        };
        shared.metrics.notification(match result {
            DeliveryResult::Delivered => NotificationResult::Delivered,
            DeliveryResult::Retrying => NotificationResult::Retried,
            DeliveryResult::Failed => NotificationResult::Failed,
        });
        let error = outcome.err().map(|f| f.message);
        if let Some(error) = &error {
            let (namespace, cluster) = &delivery.cluster;
            tracing::warn!(
                %namespace, %cluster, webhook = delivery.webhook,
                host = %host(&delivery.url), event = %delivery.id, attempt, %error,
                "notification not delivered{}",
                if result == DeliveryResult::Retrying { ", retrying" } else { ", given up" }
            );
        }
        record(shared, &delivery, result, error);
        if result != DeliveryResult::Retrying {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// One POST: 2xx delivers; 4xx (but 408 and 429) is final.
async fn attempt_once(shared: &Shared, delivery: &Delivery) -> Result<(), Failure> {
    let (client, namespace) = (&shared.client, &delivery.cluster.0);
    let retry = |message: String| Failure {
        message,
        permanent: false,
    };
    if delivery.hardened {
        resolves_where_allowed(&delivery.url, &shared.service_cidrs).await?;
    }
    let mut http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("openbao-backup/", env!("CARGO_PKG_VERSION")));
    if let Some(reference) = &delivery.ca_secret_ref {
        let pem = secret_bytes(client, namespace, reference)
            .await
            .map_err(retry)?;
        let ca = reqwest::Certificate::from_pem(&pem).map_err(|_| {
            retry(format!(
                "Secret {} key {} is not a PEM certificate (caSecretRef)",
                reference.name, reference.key
            ))
        })?;
        http = http.add_root_certificate(ca);
    }
    let http = http
        .build()
        .map_err(|e| retry(format!("cannot build an HTTP client: {}", chain(&e))))?;
    let mut request = http
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(delivery.body.as_ref().clone());
    if let Some(reference) = &delivery.secret_ref {
        let key = secret_bytes(client, namespace, reference)
            .await
            .map_err(retry)?;
        request = request.header(SIGNATURE_HEADER, signature(&key, &delivery.body));
    }
    let response = request.send().await.map_err(|e| {
        retry(if e.is_timeout() {
            format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())
        } else {
            chain(&e)
        })
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(Failure {
        message: format!("the receiver answered HTTP {}", status.as_u16()),
        permanent: status.is_client_error() && !matches!(status.as_u16(), 408 | 429),
    })
}

/// Under `Hardened`, a host name (an IP is checked in the spec) must not
/// resolve to a loopback, link-local or service address: checked before
/// each attempt, as the executor checks a storage endpoint.
async fn resolves_where_allowed(url: &str, service_cidrs: &[Cidr]) -> Result<(), Failure> {
    let Ok(url) = reqwest::Url::parse(url) else {
        return Ok(());
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Ok(());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure {
            message: format!("cannot resolve {host}: {e}"),
            permanent: false,
        })?;
    for address in addresses {
        if let Some(why) = forbidden(address.ip(), service_cidrs) {
            return Err(Failure {
                message: format!(
                    "{host} resolves to {why}, which the Hardened profile refuses as a webhook"
                ),
                permanent: true,
            });
        }
    }
    Ok(())
}

/// An HTTP error and its causes, without the URL (its path or query may
/// hold a token).
fn chain(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_connect() {
        "cannot connect"
    } else if error.is_builder() {
        "invalid request"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A key of a Secret of `namespace`: the HMAC key or the CA.
async fn secret_bytes(
    client: &Client,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<Vec<u8>, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&reference.name)
        .await
        .map_err(|e| format!("cannot read Secret {}: {e}", reference.name))?
        .ok_or_else(|| format!("Secret {} does not exist", reference.name))?;
    let data = secret.data.unwrap_or_default();
    data.get(&reference.key)
        .map(|bytes| bytes.0.clone())
        .ok_or_else(|| format!("Secret {} has no key {}", reference.name, reference.key))
}

/// The attempt's outcome, into the cluster's `status.notifications`.
fn record(shared: &Shared, delivery: &Delivery, result: DeliveryResult, error: Option<String>) {
    {
        let mut statuses = shared.statuses.lock().expect("not poisoned");
        let list = statuses.entry(delivery.cluster.clone()).or_default();
        let at = match list.iter().position(|e| e.webhook == delivery.webhook) {
            Some(at) => at,
            None => {
                list.push(NotificationStatus {
                    webhook: delivery.webhook,
                    ..Default::default()
                });
                list.sort_by_key(|e| e.webhook);
                list.iter()
                    .position(|e| e.webhook == delivery.webhook)
                    .expect("just added")
            }
        };
        let entry = &mut list[at];
        entry.host = host(&delivery.url);
        entry.last_result = result;
        entry.last_event_id = Some(delivery.id.clone());
        entry.last_attempt_time = Some(time(chrono::Utc::now()));
        match error {
            None => {
                entry.last_error = None;
                entry.consecutive_failures = 0;
            }
            Some(error) => {
                entry.last_error = Some(error);
                entry.consecutive_failures += 1;
            }
        }
    }
    let _ = shared.changed.send(delivery.cluster.clone());
}

/// Writes `status.notifications` of each changed cluster, the newest list.
async fn write_statuses(shared: Arc<Shared>, mut changes: mpsc::UnboundedReceiver<ClusterKey>) {
    while let Some(first) = changes.recv().await {
        let mut keys = vec![first];
        while let Ok(more) = changes.try_recv() {
            if !keys.contains(&more) {
                keys.push(more);
            }
        }
        for key in keys {
            let list = shared
                .statuses
                .lock()
                .expect("not poisoned")
                .get(&key)
                .cloned()
                .unwrap_or_default();
            let (namespace, name) = &key;
            let clusters: Api<OpenBaoCluster> = Api::namespaced(shared.client.clone(), namespace);
            let patch = serde_json::json!({ "status": { "notifications": list } });
            match clusters
                .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    shared.statuses.lock().expect("not poisoned").remove(&key);
                }
                Err(e) => {
                    tracing::warn!(%namespace, cluster = %name, error = %e, "cannot write status.notifications");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hardened_host_names_may_not_resolve_to_the_node() {
        let refused = resolves_where_allowed("https://localhost:8443/hook?token=t", &[])
            .await
            .expect_err("localhost is refused");
        assert!(refused.permanent);
        assert!(
            refused
                .message
                .starts_with("localhost resolves to 127.0.0.1 is a loopback address")
                || refused
                    .message
                    .starts_with("localhost resolves to ::1 is a loopback address"),
            "{}",
            refused.message
        );
        assert!(
            resolves_where_allowed("https://203.0.113.7/hook", &[])
                .await
                .is_ok()
        );
    }
}
