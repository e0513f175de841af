//! The cluster reconcile's workload part: read what the upgrade decision
//! needs (the StatefulSet, its pods, the pre-upgrade Job, a running
//! restore), let `upgrade::plan` decide, and apply the StatefulSet and its
//! companions, start the pre-upgrade backup or replace a pod as it says.
//! An invalid spec keeps the last good objects. An external OpenBao
//! (`spec.external`) has no workload: nothing is read or applied.

use chrono::Utc;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::seen::{Checked, Finished, job_outcome};
use crate::api::{OpenBaoCluster, Profile, RestorePhase};
use crate::context::{Context, Error};
use crate::desired::{backup, companions, network, statefulset};
use crate::kube_io::{self, apply, apply_body};
use crate::release::Release;
use crate::rollout::{self, Step};
use crate::status::{self, JobOutcome, WORKLOAD_CONFIGURED, Workload};
use crate::upgrade::{self, Backup, Plan};
use contract::result::BackupResult;

/// What the workload part leaves for the status, the events and the
/// requeue.
pub(super) struct Pass {
    pub status: Workload,
    pub event: Option<(EventType, &'static str, String)>,
    /// An upgrade or rollout moves on by itself: look again soon.
    pub wait: bool,
}

pub(super) async fn reconcile(
    cluster: &OpenBaoCluster,
    checked: &Checked,
    finished: &Finished,
    ctx: &Context,
) -> Result<Pass, Error> {
    let kept = |condition| {
        let previous = cluster.status.clone().unwrap_or_default();
        Pass {
            status: Workload {
                version: previous.version,
                upgrade: previous.upgrade,
                conditions: vec![condition],
            },
            event: None,
            wait: false,
        }
    };
    if cluster.spec.external.is_some() {
        return Ok(kept(external_configured(&checked.workload_problems)));
    }
    let wanted = Release::wanted(&cluster.spec);
    let Some(wanted) = wanted.filter(|_| checked.workload_problems.is_empty()) else {
        return Ok(kept(status::workload_configured(
            &checked.workload_problems,
            &checked.workload_warnings,
        )));
    };
    let backup_valid = matches!(checked.backup, Ok(Some(_)));
    let (plan, live) = plan(cluster, &wanted, backup_valid, finished, ctx).await?;
    match apply_workload(cluster, &plan, live.as_ref(), ctx).await {
        Err(Error::NotOwned(why)) => Ok(kept(status::not_owned(WORKLOAD_CONFIGURED, why))),
        applied => {
            applied?;
            let conditions = vec![
                status::workload_configured(&[], &checked.workload_warnings),
                plan.condition(),
            ];
            Ok(Pass {
                wait: plan.progress.waits(),
                event: plan.event,
                status: Workload {
                    version: plan.version,
                    upgrade: plan.upgrade,
                    conditions,
                },
            })
        }
    }
}

/// `WorkloadConfigured` of an external OpenBao: nothing to apply, or the
/// spec's problems.
fn external_configured(problems: &[String]) -> status::Cond {
    if problems.is_empty() {
        status::Cond::new(
            WORKLOAD_CONFIGURED,
            "True",
            "External",
            "spec.external: OpenBao runs elsewhere; the operator renders no workload and only backs it up and restores it".into(),
        )
    } else {
        status::workload_configured(problems, &[])
    }
}

/// Reads what the upgrade decision needs and decides; returns the plan
/// and the live StatefulSet.
async fn plan(
    cluster: &OpenBaoCluster,
    wanted: &Release,
    backup_valid: bool,
    finished: &Finished,
    ctx: &Context,
) -> Result<(Plan, Option<StatefulSet>), Error> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let statefulset: Option<StatefulSet> = kube_io::get(&ctx.client, &namespace, &name).await?;
    let running = statefulset.as_ref().and_then(Release::running);
    let (rollout, updated) = match &statefulset {
        Some(statefulset) => {
            let pods = kube_io::openbao_pods(&ctx.client, &namespace, &name).await?;
            (
                rollout::next(statefulset, &pods),
                rollout::updated(statefulset, &pods),
            )
        }
        None => (Step::Done, (0, 0)),
    };
    let snapshot = cluster
        .spec
        .upgrade
        .as_ref()
        .is_some_and(|u| u.pre_upgrade_snapshot);
    let retry = cluster.annotations().get(upgrade::RETRY_ANNOTATION);
    let backup_job = upgrade::backup_job_name(&name, wanted, retry.map(String::as_str));
    let upgrading = running.as_ref().is_some_and(|r| r.image != wanted.image);
    let (mut backup, mut restoring) = (Backup::Missing, None);
    if upgrading {
        if snapshot && !backup_valid {
            backup = Backup::Failed {
                reason: "spec.backup is missing or invalid (see the BackupConfigured condition); the pre-upgrade backup needs its target".into(),
            };
        } else if snapshot {
            backup = pre_upgrade_backup(&ctx.client, finished, &backup_job).await?;
        }
        restoring = running_restore(ctx, cluster).await?;
    }
    let previous = cluster.status.as_ref();
    let plan = upgrade::plan(
        &upgrade::Observed {
            wanted,
            running: running.as_ref(),
            rollout: &rollout,
            updated,
            snapshot,
            backup_job: &backup_job,
            backup: &backup,
            restoring: restoring.as_deref(),
            previous: previous.and_then(|s| s.upgrade.as_ref()),
            version: previous.and_then(|s| s.version.as_deref()),
        },
        Utc::now(),
    );
    Ok((plan, statefulset))
}

/// The pre-upgrade backup Job of this attempt, by name among the backup
/// Jobs; a finished one's outcome from this pass or from its pod.
async fn pre_upgrade_backup(
    client: &kube::Client,
    finished: &Finished,
    name: &str,
) -> Result<Backup, Error> {
    let Some(job) = finished.jobs.iter().find(|j| j.name_any() == name) else {
        return Ok(Backup::Missing);
    };
    let Some(done) = crate::jobs::finished(job) else {
        return Ok(Backup::Running);
    };
    let outcome: JobOutcome = match finished.outcomes.iter().find(|o| o.job_name == name) {
        Some(outcome) => outcome.clone(),
        None => job_outcome(client, job, done).await?,
    };
    Ok(match &outcome.result {
        Some(BackupResult::Succeeded { key, .. }) if outcome.succeeded() => {
            Backup::Succeeded { key: key.clone() }
        }
        _ => Backup::Failed {
            reason: outcome.failure_reason(),
        },
    })
}

/// A running OpenBaoRestore of this cluster: upgrades wait for it.
async fn running_restore(ctx: &Context, cluster: &OpenBaoCluster) -> Result<Option<String>, Error> {
    Ok(kube_io::restores_of(&ctx.client, cluster)
        .await?
        .iter()
        .find(|r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RestorePhase::Running)
        })
        .map(|r| r.name_any()))
}

/// Server-side applies the workload with the plan's release, then starts
/// the pre-upgrade backup or replaces a pod, as the plan says.
async fn apply_workload(
    cluster: &OpenBaoCluster,
    plan: &Plan,
    live: Option<&StatefulSet>,
    ctx: &Context,
) -> Result<(), Error> {
    let client = &ctx.client;
    apply(client, &companions::service_account(cluster)).await?;
    apply(client, &companions::role(cluster)).await?;
    apply(client, &companions::role_binding(cluster)).await?;
    apply(client, &companions::config_map(cluster)).await?;
    apply(client, &companions::internal_service(cluster)).await?;
    apply(client, &companions::client_service(cluster)).await?;
    match apply(client, &companions::pod_disruption_budget(cluster)).await {
        // policy/v1 came with Kubernetes 1.21.
        Err(e) if e.api_code() == Some(404) => {
            tracing::debug!(cluster = %cluster.name_any(), "no policy/v1 PodDisruptionBudget on this API server");
        }
        other => other?,
    }
    // Hardened: the OpenBao pods' NetworkPolicy; otherwise none (one made
    // while Hardened goes).
    match cluster.spec.profile() {
        Profile::Hardened => {
            apply(
                client,
                &network::openbao_network_policy(cluster, &ctx.settings),
            )
            .await?
        }
        Profile::Development => {
            kube_io::delete_owned::<NetworkPolicy>(cluster, client, &cluster.name_any()).await?
        }
    }
    let storage = live.and_then(statefulset::live_storage);
    let statefulset = statefulset::statefulset(cluster, &plan.deploy, storage);
    apply_body(client, &statefulset, &statefulset::apply_body(&statefulset)).await?;

    if plan.start_backup
        && let (Some(spec), Some(upgrade)) = (&cluster.spec.backup, &plan.upgrade)
        && let Some(job_name) = &upgrade.pre_upgrade_job
    {
        let job: Job = backup::pre_upgrade_job(cluster, spec, &ctx.settings, job_name);
        kube_io::create_once(client, &job).await?;
        tracing::info!(cluster = %cluster.name_any(), job = %job_name, "pre-upgrade backup started");
    }
    if let Some((pod, uid)) = &plan.replace {
        let namespace = cluster.namespace().unwrap_or_default();
        kube_io::replace_pod(client, &namespace, pod, uid).await?;
        tracing::info!(cluster = %cluster.name_any(), %pod, "pod replaced to roll out the StatefulSet's template");
    }
    Ok(())
}
