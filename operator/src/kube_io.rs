//! Kubernetes I/O of both reconcilers: server-side apply of objects the
//! cluster owns (and never of one it does not; nor of one that already
//! holds what would be applied), deleting owned objects,
//! creating a Job once, the lists they read (backup Jobs, a Job's pods,
//! OpenBao pods, a cluster's restores), holding scheduled backups, and
//! publishing events. Every failure names its step (`context::At`).

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    Preconditions,
};
use kube::runtime::events::{Event, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::OpenBaoCluster;
use crate::api::OpenBaoRestore;
use crate::applied;
use crate::context::{At, Error};
use crate::jobs;
use crate::names::{MANAGER, backup_labels, cronjob_name, selector_labels};

/// A namespaced kind the typed API can read and write.
pub trait Namespaced:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug
{
}

impl<K> Namespaced for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
{
}

fn kind<K: Namespaced>() -> String {
    K::kind(&()).into_owned()
}

pub async fn apply<K: Namespaced + Serialize>(client: &Client, object: &K) -> Result<(), Error> {
    apply_body(client, object, object).await.map(drop)
}

/// Server-side applies `body` as `object` (its kind, namespace and name):
/// the object itself, or a form of it the typed struct cannot say. Returns
/// the object the API server keeps. An existing object of that name that
/// `object`'s owner (the cluster) does not own is refused: a forced apply
/// would take it over, whoever made it. One that already holds the body
/// (`applied::holds`) is not written to: the apply would change nothing.
pub async fn apply_body<K: Namespaced>(
    client: &Client,
    object: &K,
    body: &(impl Serialize + Debug),
) -> Result<K, Error> {
    let namespace = object.meta().namespace.as_deref().unwrap_or_default();
    let name = object.name_any();
    let step = format!("apply {}", kind::<K>());
    let body = serde_json::to_value(body)
        .map(applied::stamped)
        .map_err(kube::Error::SerdeError)
        .at(&step, &name)?;
    // Read untyped: fields the typed struct does not know are compared too.
    let untyped = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<K>(&()),
    );
    if let Some(existing) = untyped.get_opt(&name).await.at(&step, &name)? {
        let owner = object.owner_references().first().map(|o| o.uid.as_str());
        if !owned_by(&existing, owner) {
            return Err(Error::NotOwned(format!(
                "{} {name} exists and this OpenBaoCluster does not own it, so it is left alone: delete or rename it, or give the cluster another name",
                kind::<K>()
            )));
        }
        let live = serde_json::to_value(&existing).map_err(kube::Error::SerdeError);
        if let Ok(live) = live
            && applied::holds(&live, &body)
        {
            return serde_json::from_value(live)
                .map_err(kube::Error::SerdeError)
                .at(&step, &name);
        }
    }
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .at(&step, &name)
}

/// Whether an owner reference of `object` names the owner `uid`.
fn owned_by(object: &impl Resource, uid: Option<&str>) -> bool {
    object
        .owner_references()
        .iter()
        .any(|owner| Some(owner.uid.as_str()) == uid)
}

/// Deletes the named object if this cluster owns it; a same-named object
/// someone else made is left alone. The API may be missing (CronJob on old
/// servers): then there is nothing to delete.
pub async fn delete_owned<K: Namespaced>(
    cluster: &OpenBaoCluster,
    client: &Client,
    name: &str,
) -> Result<(), Error> {
    let step = format!("delete {}", kind::<K>());
    let api = Api::<K>::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let object = match api.get_opt(name).await {
        Ok(Some(object)) => object,
        Ok(None) => return Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e).at(&step, name),
    };
    if owned_by(&object, cluster.uid().as_deref()) {
        api.delete(name, &Default::default())
            .await
            .at(&step, name)?;
        tracing::info!(cluster = %cluster.name_any(), kind = K::kind(&()).as_ref(), name, "deleted: the spec no longer asks for it");
    }
    Ok(())
}

/// Reads one object, or None.
pub async fn get<K: Namespaced>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, Error> {
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .at(format!("get {}", kind::<K>()), name)
}

/// Creates a Job; one of its name already there was created by an
/// earlier pass whose status write was lost.
pub async fn create_once(client: &Client, job: &Job) -> Result<(), Error> {
    let namespace = job.namespace().unwrap_or_default();
    let name = job.name_any();
    match Api::<Job>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), job)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        other => other.map(drop).at("create Job", name),
    }
}

/// Deletes the pod `name` if it still is the one of `uid`: it may be gone
/// already, or be its successor.
pub async fn replace_pod(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match Api::<Pod>::namespaced(client.clone(), namespace)
        .delete(name, &params)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        other => other.map(drop).at("delete Pod", name),
    }
}

/// The objects of `namespace` that carry `labels` (all of them: "").
async fn list<K: Namespaced>(
    client: &Client,
    namespace: &str,
    labels: &str,
) -> Result<Vec<K>, Error> {
    let params = match labels {
        "" => ListParams::default(),
        labels => ListParams::default().labels(labels),
    };
    let list = Api::<K>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .at(format!("list {}", kind::<K>()), labels)?;
    Ok(list.items)
}

pub fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The cluster's backup Jobs (scheduled, manual, pre-upgrade).
pub async fn backup_jobs(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<Vec<Job>, Error> {
    list(client, namespace, &selector(&backup_labels(cluster))).await
}

/// The pods a Job made (the Job controller labels them with its name).
pub async fn job_pods(client: &Client, job: &Job) -> Result<Vec<Pod>, Error> {
    let namespace = job.namespace().unwrap_or_default();
    list(client, &namespace, &format!("job-name={}", job.name_any())).await
}

/// The cluster's OpenBao pods.
pub async fn openbao_pods(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<Vec<Pod>, Error> {
    list(client, namespace, &selector(&selector_labels(cluster))).await
}

/// The OpenBaoRestores of this cluster.
pub async fn restores_of(
    client: &Client,
    cluster: &OpenBaoCluster,
) -> Result<Vec<OpenBaoRestore>, Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let mut restores: Vec<OpenBaoRestore> = list(client, &namespace, "").await?;
    restores.retain(|r| r.spec.cluster == cluster.name_any());
    Ok(restores)
}

/// Suspends or resumes the cluster's backup CronJob under a field manager
/// of its own (the cluster's applies never set `suspend`). No CronJob
/// (no spec.backup, or a server without CronJobs): nothing to hold.
pub async fn hold_backups(
    client: &Client,
    cluster: &OpenBaoCluster,
    hold: bool,
) -> Result<(), Error> {
    let api = Api::<CronJob>::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let params = PatchParams {
        field_manager: Some(jobs::HOLDER.into()),
        ..Default::default()
    };
    let patch = Patch::Merge(serde_json::json!({"spec": {"suspend": hold}}));
    let name = cronjob_name(&cluster.name_any());
    match api.patch(&name, &params, &patch).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e).at("suspend CronJob", name),
    }
}

/// Events are for people; failing to send one does not fail the reconcile.
pub async fn publish<K: Resource<DynamicType = ()>>(recorder: &Recorder, object: &K, event: Event) {
    if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(kind = %K::kind(&()), name = %object.name_any(), %error, reason = %event.reason, "could not publish an event");
    }
}
