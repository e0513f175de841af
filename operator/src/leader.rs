//! Leader election with a `coordination.k8s.io/v1` Lease, so that two
//! operator replicas can run and only one reconciles. Every write carries
//! the resourceVersion read just before, so two candidates can never both
//! win. A leader that cannot renew in time stops the process; its
//! Deployment restarts it as a candidate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::jobs::chrono_time;
use crate::status::time;

#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's name (its pod name).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub duration: Duration,
    /// How often the leader renews, and candidates retry.
    pub retry: Duration,
}

/// What a replica does with the Lease it just read.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Ours already: renew it.
    Renew,
    /// Free or expired: take it.
    Take,
    /// Someone else holds it: try again later.
    Wait,
}

pub fn decide(lease: &LeaseSpec, me: &str, now: DateTime<Utc>) -> Decision {
    let holder = lease.holder_identity.as_deref().unwrap_or_default();
    if holder == me {
        return Decision::Renew;
    }
    let expires = lease.renew_time.as_ref().map(|t| {
        chrono_time(&Time(t.0))
            + chrono::Duration::seconds(lease.lease_duration_seconds.unwrap_or(0).into())
    });
    match expires {
        Some(expires) if !holder.is_empty() && expires > now => Decision::Wait,
        _ => Decision::Take,
    }
}

fn micro(at: DateTime<Utc>) -> MicroTime {
    MicroTime(time(at).0)
}

/// Waits until this replica holds the Lease; `standby` is called each time
/// another replica holds it.
pub async fn acquire(
    client: &Client,
    settings: &LeaseSettings,
    standby: impl Fn(),
) -> kube::Result<()> {
    tracing::info!(lease = %settings.name, identity = %settings.identity, "waiting for leadership");
    loop {
        if try_hold(client, settings).await? {
            tracing::info!(lease = %settings.name, identity = %settings.identity, "leading");
            return Ok(());
        }
        standby();
        tokio::time::sleep(settings.retry).await;
    }
}

/// Renews the Lease until a renewal fails for longer than the lease lasts;
/// returns then (leadership lost).
pub async fn keep(client: &Client, settings: &LeaseSettings) {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(settings.retry).await;
        match try_hold(client, settings).await {
            Ok(true) => last_renewal = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!(lease = %settings.name, "another replica took the lease");
                return;
            }
            Err(error) => tracing::warn!(%error, "cannot renew the lease"),
        }
        // Stop before the lease can expire in others' eyes.
        if last_renewal.elapsed() + settings.retry >= settings.duration {
            tracing::error!(lease = %settings.name, "could not renew the lease in time");
            return;
        }
    }
}

/// Hands the Lease over at shutdown, so a standby takes over at once.
pub async fn release(client: &Client, settings: &LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let Ok(mut lease) = api.get(&settings.name).await else {
        return;
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    if let Err(error) = api
        .replace(&settings.name, &PostParams::default(), &lease)
        .await
    {
        tracing::warn!(%error, "could not release the lease");
    }
}

/// One read and at most one write: true when this replica holds the Lease
/// afterwards.
async fn try_hold(client: &Client, settings: &LeaseSettings) -> kube::Result<bool> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let now = Utc::now();
    let ours = LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(settings.duration.as_secs() as i32),
        acquire_time: Some(micro(now)),
        renew_time: Some(micro(now)),
        lease_transitions: Some(0),
        ..Default::default()
    };
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(settings.name.clone()),
                ..Default::default()
            },
            spec: Some(ours),
        };
        return won(api.create(&PostParams::default(), &lease).await);
    };
    let current = lease.spec.clone().unwrap_or_default();
    let spec = match decide(&current, &settings.identity, now) {
        Decision::Wait => return Ok(false),
        Decision::Renew => LeaseSpec {
            renew_time: Some(micro(now)),
            lease_duration_seconds: ours.lease_duration_seconds,
            ..current
        },
        Decision::Take => LeaseSpec {
            lease_transitions: Some(current.lease_transitions.unwrap_or(0) + 1),
            ..ours
        },
    };
    lease.spec = Some(spec);
    // The resourceVersion read above makes this a compare-and-swap.
    won(api
        .replace(&settings.name, &PostParams::default(), &lease)
        .await)
}

/// A conflict means another replica wrote first.
fn won(result: kube::Result<Lease>) -> kube::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn lease(holder: Option<&str>, renewed: DateTime<Utc>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(Into::into),
            lease_duration_seconds: Some(15),
            renew_time: Some(micro(renewed)),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_or_expired() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let secs = chrono::Duration::seconds;
        assert_eq!(
            decide(&lease(Some("a"), t0), "a", t0 + secs(60)),
            Decision::Renew
        );
        assert_eq!(
            decide(&lease(Some("b"), t0), "a", t0 + secs(14)),
            Decision::Wait
        );
        assert_eq!(
            decide(&lease(Some("b"), t0), "a", t0 + secs(16)),
            Decision::Take
        );
        assert_eq!(decide(&lease(None, t0), "a", t0), Decision::Take);
        assert_eq!(decide(&LeaseSpec::default(), "a", t0), Decision::Take);
    }
}
