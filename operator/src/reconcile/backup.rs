//! The cluster reconcile's backup part: the backup objects follow a valid
//! `spec.backup` (an invalid one keeps the last good objects, so that a
//! typo does not stop backups), go when it goes, and a hold on scheduled
//! backups that no restore owns any more is released.

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;

use crate::api::{BackupSpec, OpenBaoCluster};
use crate::context::{Context, Error};
use crate::desired::backup;
use crate::jobs;
use crate::kube_io::{self, apply, apply_body, create_once, delete_owned};
use crate::names::{BACKUP_NOW_ANNOTATION, cronjob_name, service_account_names};
use crate::status::Configured;
use crate::validate::ValidBackup;

pub(super) async fn reconcile(
    cluster: &OpenBaoCluster,
    validation: &Result<Option<ValidBackup>, Vec<String>>,
    ctx: &Context,
) -> Result<Configured, Error> {
    Ok(match (validation, &cluster.spec.backup) {
        (Ok(Some(_)), Some(spec)) => match apply_backup_objects(cluster, spec, ctx).await {
            Err(Error::NotOwned(why)) => Configured::NotOwned(why),
            configured => configured?,
        },
        (Err(problems), _) => Configured::Invalid(problems.clone()),
        _ => {
            delete_backup_objects(cluster, ctx).await?;
            Configured::Absent
        }
    })
}

/// Server-side applies the backup and restore ServiceAccounts (JWT auth
/// only), the NetworkPolicy and the CronJob.
async fn apply_backup_objects(
    cluster: &OpenBaoCluster,
    spec: &BackupSpec,
    ctx: &Context,
) -> Result<Configured, Error> {
    for account in service_account_names(&cluster.name_any()) {
        match backup::service_account(cluster, spec, &account) {
            Some(account) => apply(&ctx.client, &account).await?,
            None => delete_owned::<ServiceAccount>(cluster, &ctx.client, &account).await?,
        }
    }
    apply(&ctx.client, &backup::network_policy(cluster, spec)).await?;
    let cronjob = backup::cronjob(cluster, spec, &ctx.settings);
    match apply_body(&ctx.client, &cronjob, &cronjob).await {
        Ok(cronjob) => {
            release_orphaned_hold(cluster, &cronjob, ctx).await?;
            Ok(Configured::Applied)
        }
        Err(e) if e.api_code() == Some(404) => Ok(Configured::Unschedulable(
            "this API server does not serve batch/v1 CronJob (Kubernetes >= 1.21 does): no scheduled backups; Jobs created by hand are still recorded"
                .into(),
        )),
        Err(e) => Err(e),
    }
}

/// A restore suspends the CronJob while it waits or runs, and resumes it
/// when it ends; one deleted before it ended never resumes it. So the
/// cluster releases a hold that no Pending or Running restore of it owns.
/// The restores' watch brings the cluster here when one is deleted, and
/// the CronJob's own watch when a late restore pass suspends it again.
async fn release_orphaned_hold(
    cluster: &OpenBaoCluster,
    cronjob: &CronJob,
    ctx: &Context,
) -> Result<(), Error> {
    if !jobs::held_by_restore(cronjob) {
        return Ok(());
    }
    let restores = kube_io::restores_of(&ctx.client, cluster).await?;
    let live = restores
        .iter()
        .any(|r| !r.status.as_ref().is_some_and(|s| s.phase.is_final()));
    if !live {
        kube_io::hold_backups(&ctx.client, cluster, false).await?;
        tracing::info!(cluster = %cluster.name_any(), "scheduled backups resumed: no restore of the cluster is pending or running");
    }
    Ok(())
}

async fn delete_backup_objects(cluster: &OpenBaoCluster, ctx: &Context) -> Result<(), Error> {
    let name = cluster.name_any();
    delete_owned::<CronJob>(cluster, &ctx.client, &cronjob_name(&name)).await?;
    delete_owned::<NetworkPolicy>(cluster, &ctx.client, &cronjob_name(&name)).await?;
    for account in service_account_names(&name) {
        delete_owned::<ServiceAccount>(cluster, &ctx.client, &account).await?;
    }
    Ok(())
}

/// A manual backup asked for with `openbao.org/backup-now=<value>`: a Job
/// for each value not handled yet (`status.backup.backupNowHandled`), once
/// the backup objects are in place. Returns the value and the Job's name.
pub(super) async fn backup_now(
    cluster: &OpenBaoCluster,
    configured: &Configured,
    ctx: &Context,
) -> Result<Option<(String, String)>, Error> {
    let Some(value) = wanted_backup_now(cluster, configured) else {
        return Ok(None);
    };
    let spec = cluster.spec.backup.as_ref().expect("configured backups");
    let job = backup::backup_now_job(cluster, spec, &ctx.settings, &value);
    create_once(&ctx.client, &job).await?;
    Ok(Some((value, job.name_any())))
}

/// The annotation's value when it asks for a backup not yet started: the
/// backup is configured (scheduled or not) and the value is new.
pub(super) fn wanted_backup_now(
    cluster: &OpenBaoCluster,
    configured: &Configured,
) -> Option<String> {
    if !matches!(
        configured,
        Configured::Applied | Configured::Unschedulable(_)
    ) {
        return None;
    }
    let value = cluster.annotations().get(BACKUP_NOW_ANNOTATION)?;
    let handled = cluster
        .status
        .as_ref()
        .and_then(|s| s.backup.as_ref())
        .and_then(|b| b.backup_now_handled.as_ref());
    (!value.is_empty() && handled != Some(value)).then(|| value.clone())
}
