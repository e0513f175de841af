//! The cluster reconcile's restore drills: reads the drill objects, lets
//! `drill::plan` decide, creates and deletes, and hands back the status,
//! the condition and the event. Deleting comes first and on every path:
//! whatever `plan` finds that is not the running drill's goes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use crate::api::{OpenBaoCluster, RestoreTestStatus};
use crate::context::{At, Context, Error};
use crate::desired::drill::{drill_job, throwaway_config_map, throwaway_pod};
use crate::drill::{self, DRILL_LABEL, Input, JobSeen, Throwaway};
use crate::jobs::{self, chrono_time};
use crate::names::JOB_NAME_LABEL;
use crate::release::Release;
use crate::status::{Cond, JobOutcome};
use crate::{kube_io, restore, validate};
use contract::drill::DrillResult;
use contract::executor::command;

/// What the drills of this pass decided.
pub(super) struct Drilled {
    pub status: Option<RestoreTestStatus>,
    pub condition: Option<Cond>,
    pub event: Option<Event>,
    /// The webhooks' event of a drill that ended in this pass, to send
    /// once the status holds its result.
    pub notify: Option<crate::notify::Event>,
    pub requeue: Option<Duration>,
}

pub(super) async fn reconcile(
    cluster: &OpenBaoCluster,
    outcomes: &[JobOutcome],
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Drilled, Error> {
    let (name, namespace) = (cluster.name_any(), cluster.namespace().unwrap_or_default());
    let client = &ctx.client;
    let valid = validate::restore_test(&cluster.spec);
    let previous = cluster
        .status
        .as_ref()
        .and_then(|s| s.restore_test.as_ref());
    let running = previous.and_then(|s| s.running.clone());
    let asked = cluster
        .spec
        .backup
        .as_ref()
        .is_some_and(|b| b.restore_test.is_some());
    if !asked && running.is_none() {
        // No drills asked for and none running: nothing to read.
        ctx.metrics.forget_restore_tests(&namespace, &name);
        return Ok(Drilled {
            status: previous.cloned(),
            condition: None,
            event: None,
            notify: None,
            requeue: None,
        });
    }
    let selector = kube_io::selector(&drill::cluster_labels(&name));
    let params = ListParams::default().labels(&selector);
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&params)
        .await
        .at("list drill Pods", &name)?
        .items;
    let jobs = Api::<Job>::namespaced(client.clone(), &namespace)
        .list(&params)
        .await
        .at("list drill Jobs", &name)?
        .items;
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .list(&params)
        .await
        .at("list drill ConfigMaps", &name)?
        .items;
    let mut present: Vec<String> = pods
        .iter()
        .filter(|p| p.meta().deletion_timestamp.is_none())
        .filter_map(|p| p.labels().get(DRILL_LABEL).cloned())
        .chain(
            jobs.iter()
                .filter_map(|j| j.labels().get(DRILL_LABEL).cloned()),
        )
        .chain(
            maps.iter()
                .filter_map(|m| m.labels().get(DRILL_LABEL).cloned()),
        )
        .collect();
    present.sort();
    present.dedup();

    let throwaway = running.as_ref().and_then(|drill| {
        let pod = pods.iter().find(|p| p.name_any() == *drill)?;
        Some(seen_throwaway(pod))
    });
    let job_uid = running.as_ref().and_then(|drill| {
        jobs.iter()
            .find(|j| j.name_any() == *drill)
            .and_then(|j| j.uid())
    });
    let job = running.as_ref().and_then(|drill| {
        let job = jobs.iter().find(|j| j.name_any() == *drill)?;
        Some(match jobs::finished(job) {
            None => JobSeen::Running,
            Some(finished) => {
                let job_pods: Vec<Pod> = pods
                    .iter()
                    .filter(|p| p.labels().get(JOB_NAME_LABEL) == Some(drill))
                    .cloned()
                    .collect();
                let result = jobs::termination_message(&job_pods, command::DRILL)
                    .and_then(|m| parse_result(&m));
                JobSeen::Finished {
                    result,
                    failure: finished.failure,
                    at: finished.at,
                }
            }
        })
    });
    let spec = cluster
        .spec
        .backup
        .as_ref()
        .and_then(|b| b.restore_test.as_ref());
    let may_start =
        running.is_none() && matches!(valid, Some(Ok(_))) && spec.is_some_and(|s| !s.suspend);
    let release = Release::wanted(&cluster.spec);
    let mut busy = if may_start {
        restore::busy(client, cluster, "").await?
    } else {
        Vec::new()
    };
    if release.is_none() {
        busy.push("a release to run (spec.version or spec.image)".into());
    }
    let backup = cluster.status.as_ref().and_then(|s| s.backup.as_ref());
    let new_backups = outcomes.iter().filter(|o| o.succeeded()).count() as u32;
    let anchor = cluster
        .meta()
        .creation_timestamp
        .as_ref()
        .map(chrono_time)
        .unwrap_or(now);
    let mut plan = drill::plan(Input {
        cluster: &name,
        valid,
        spec,
        previous,
        backup,
        new_backups,
        present,
        throwaway,
        job,
        busy,
        anchor,
        now,
    });

    // Delete first, on every path; a failure is the cleanup step's.
    let mut cleanup_errors = Vec::new();
    for drill in &plan.delete {
        let its_pods: Vec<String> = pods
            .iter()
            .filter(|p| p.labels().get(DRILL_LABEL) == Some(drill))
            .map(|p| p.name_any())
            .collect();
        if let Err(error) = delete_drill(client, &namespace, drill, &its_pods).await {
            cleanup_errors.push(error.to_string());
        }
    }
    if let (Some(drill), Some(release)) = (&plan.start, &release) {
        create(client, &namespace, &throwaway_config_map(cluster, drill)).await?;
        create(client, &namespace, &throwaway_pod(cluster, release, drill)).await?;
        tracing::info!(cluster = %name, %drill, "restore drill: throwaway OpenBao created");
    }
    if let Some((drill, ip)) = &plan.run_job {
        kube_io::create_once(client, &drill_job(cluster, &ctx.settings, drill, ip)).await?;
        tracing::info!(cluster = %name, %drill, %ip, "restore drill: Job created");
    }
    if !cleanup_errors.is_empty() {
        let status = plan.status.get_or_insert_with(Default::default);
        drill::cleanup_failed(status, &cleanup_errors.join("; "));
        plan.condition = Some(drill::condition(status));
        plan.finished = Some((false, None));
        plan.event = Some((
            true,
            "RestoreTestFailed",
            status.message.clone().unwrap_or_default(),
        ));
        plan.requeue = Some(Duration::from_secs(15));
    }

    // Metrics: counters from the first reconcile, figures from the status.
    if spec.is_some() {
        if let Some((passed, _)) = plan.finished {
            ctx.metrics.restore_test_finished(&namespace, &name, passed);
        }
        let status = plan.status.as_ref();
        let last_success = status
            .and_then(|s| s.last_success_time.as_ref())
            .map(|t| t.0.as_millisecond() as f64 / 1000.0);
        let recovery = status.and_then(|s| s.recovery_seconds);
        ctx.metrics
            .set_restore_tests(&namespace, &name, last_success, recovery);
    } else {
        ctx.metrics.forget_restore_tests(&namespace, &name);
    }
    // The running drill ended (its result, or its cleanup's failure, in
    // the status): the webhooks hear of it once.
    let ended = running
        .as_ref()
        .filter(|_| plan.status.as_ref().is_none_or(|s| s.running.is_none()));
    let notify = ended.and_then(|drill| {
        crate::notify::Event::restore_test(
            &namespace,
            &name,
            drill,
            job_uid.as_deref(),
            plan.status.as_ref()?,
        )
    });
    let event = plan.event.map(|(warning, reason, note)| Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: "RestoreTest".into(),
        secondary: None,
    });
    Ok(Drilled {
        status: plan.status,
        condition: plan.condition,
        event,
        notify,
        requeue: plan.requeue,
    })
}

fn seen_throwaway(pod: &Pod) -> Throwaway {
    let status = pod.status.as_ref();
    let problem = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| {
            let state = c.state.as_ref()?;
            if let Some(waiting) = &state.waiting {
                return waiting.reason.clone();
            }
            let terminated = state.terminated.as_ref()?;
            Some(format!(
                "exit code {}{}",
                terminated.exit_code,
                terminated
                    .reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ))
        });
    Throwaway {
        created: pod
            .meta()
            .creation_timestamp
            .as_ref()
            .map(chrono_time)
            .unwrap_or_default(),
        ip: status.and_then(|s| s.pod_ip.clone()),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        problem,
    }
}

/// The drill's result from a termination message; the last line holds it
/// when Kubernetes fell back to the logs.
fn parse_result(message: &str) -> Option<DrillResult> {
    message
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line.trim()).ok())
}

/// Creates `object`; one of its name already there was created by an
/// earlier pass whose status write was lost.
async fn create<K>(client: &kube::Client, namespace: &str, object: &K) -> Result<(), Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.name_any();
    match Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), object)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        other => other
            .map(drop)
            .at(format!("create drill {}", K::kind(&())), name),
    }
}

/// Deletes a drill's Job, its pods (`pods`: the throwaway and the Job's,
/// each by name) and its ConfigMap; what is gone already is fine.
async fn delete_drill(
    client: &kube::Client,
    namespace: &str,
    drill: &str,
    pods: &[String],
) -> Result<(), Error> {
    fn gone<T>(result: kube::Result<T>) -> kube::Result<()> {
        match result {
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            other => other.map(drop),
        }
    }
    gone(
        Api::<Job>::namespaced(client.clone(), namespace)
            .delete(drill, &DeleteParams::background())
            .await,
    )
    .at("delete drill Job", drill)?;
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    for pod in pods {
        gone(api.delete(pod, &DeleteParams::default()).await).at("delete drill Pod", pod)?;
    }
    gone(
        Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .delete(drill, &DeleteParams::default())
            .await,
    )
    .at("delete drill ConfigMap", drill)?;
    tracing::info!(%drill, "restore drill: its objects deleted");
    Ok(())
}
