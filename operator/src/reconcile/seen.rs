//! What a cluster's reconcile starts from: the spec, checked beyond what
//! the API server could, and the backup Jobs with the outcomes of those
//! that finished since the status last counted them.

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use crate::api::{OpenBaoCluster, OpenBaoClusterStatus};
use crate::context::{Context, Error};
use crate::status::{Cond, JobOutcome};
use crate::validate::ValidBackup;
use crate::{jobs, kube_io, notify, security, validate};

/// The spec, checked beyond what the API server could.
pub(super) struct Checked {
    pub workload_problems: Vec<String>,
    pub workload_warnings: Vec<String>,
    pub backup: Result<Option<ValidBackup>, Vec<String>>,
    pub backup_warnings: Vec<String>,
    /// `SecurityRisk` under the `Development` profile.
    pub security_risk: Option<Cond>,
}

impl Checked {
    /// Under the `Hardened` profile its refusals are problems too.
    pub fn of(cluster: &OpenBaoCluster, ctx: &Context) -> Self {
        let mut workload_problems = validate::workload(&cluster.name_any(), &cluster.spec);
        let mut backup = validate::validate(&cluster.spec, &ctx.settings);
        let security_risk = security::apply(
            &cluster.spec,
            &ctx.settings.service_cidrs,
            &mut workload_problems,
            &mut backup,
        );
        Self {
            workload_problems,
            workload_warnings: validate::workload_warnings(&cluster.spec),
            backup,
            backup_warnings: [
                validate::backup_warnings(&cluster.spec),
                validate::executor_pod_warnings(&cluster.spec),
                notify::problems(&cluster.spec, &ctx.settings.service_cidrs),
            ]
            .concat(),
            security_risk,
        }
    }
}

/// The cluster's backup Jobs, and the outcomes of those that finished
/// since the status last counted them.
pub(super) struct Finished {
    pub jobs: Vec<Job>,
    pub outcomes: Vec<JobOutcome>,
    /// Every finished Job's uid, sorted: the status's `recordedJobs`.
    pub recorded: Vec<String>,
}

/// Reads the cluster's backup Jobs, and the result of each that finished
/// and is not yet in the status.
pub(super) async fn finished_jobs(
    cluster: &OpenBaoCluster,
    previous: &OpenBaoClusterStatus,
    ctx: &Context,
) -> Result<Finished, Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let already: &[String] = previous.backup.as_ref().map_or(&[], |b| &b.recorded_jobs);
    let jobs = kube_io::backup_jobs(&ctx.client, &namespace, &cluster.name_any()).await?;
    let mut recorded = Vec::new();
    let mut outcomes = Vec::new();
    for job in &jobs {
        let Some(finished) = jobs::finished(job) else {
            continue;
        };
        let uid = job.uid().unwrap_or_default();
        if !already.contains(&uid) {
            outcomes.push(job_outcome(&ctx.client, job, finished).await?);
        }
        recorded.push(uid);
    }
    recorded.sort();
    Ok(Finished {
        jobs,
        outcomes,
        recorded,
    })
}

/// A finished backup Job's outcome, from its pod's termination message.
pub(super) async fn job_outcome(
    client: &kube::Client,
    job: &Job,
    finished: jobs::Finished,
) -> Result<JobOutcome, Error> {
    let pods = kube_io::job_pods(client, job).await?;
    Ok(jobs::outcome(job, finished, &pods))
}
