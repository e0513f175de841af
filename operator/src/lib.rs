//! The operator: runs each `OpenBaoCluster` as a StatefulSet of OpenBao
//! (upgrades after a pre-upgrade backup), turns `spec.backup` into
//! CronJobs and Jobs running the `backup` command, and their results into
//! `status.backup`; runs each `OpenBaoRestore` once, as a Job running
//! `restore`.
//! Pure parts (validation, desired objects, status, Job reading, leader
//! decisions) are separate from the reconcile and from this wiring.

pub mod api;
pub mod applied;
#[cfg(test)]
mod cel_rules;
pub mod context;
pub mod desired;
pub mod drill;
#[cfg(test)]
mod fake_api;
pub mod jobs;
pub mod kube_io;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod objects;
pub mod openbao_config;
pub mod reconcile;
pub mod release;
pub mod restore;
pub mod rollout;
pub mod schedule;
pub mod security;
pub mod settings;
pub mod status;
pub mod upgrade;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::api::{OpenBaoCluster, OpenBaoRestore};
use crate::context::{Context, contained};
use crate::leader::LeaseSettings;
use crate::metrics::{Metrics, Readiness};
use crate::names::{COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER};
use crate::settings::OperatorSettings;

/// How the operator process runs: its command line, parsed.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Where /metrics, /healthz and /readyz are served.
    pub metrics_addr: std::net::SocketAddr,
    /// Elect a leader through a Lease, so that several replicas can run.
    pub leader_election: bool,
    pub lease_namespace: String,
    pub lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    pub pod_name: Option<String>,
    /// Watch only this namespace (a namespace-scoped install, whose RBAC
    /// is a Role there); `None`: all namespaces.
    pub watch_namespace: Option<String>,
    /// What the reconcilers need to know.
    pub operator: OperatorSettings,
}

pub async fn run(args: RunSettings) -> Result<(), String> {
    validate::operator_settings(&args.operator)?;
    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
    let metrics = Arc::new(Metrics::default());
    let server = tokio::spawn(metrics::serve(args.metrics_addr, metrics.clone()));

    let namespace = args.watch_namespace.as_deref();
    tracing::info!(
        namespace = namespace.unwrap_or("(all)"),
        default_executor_image = %args.operator.default_executor_image,
        "watching OpenBaoClusters and OpenBaoRestores"
    );
    let clusters = scoped::<OpenBaoCluster>(&client, namespace);
    clusters.list(&Default::default()).await.map_err(|e| {
        format!(
            "cannot list OpenBaoClusters in {} ({e}): is the CRD installed (kubectl apply -f {}), and does the operator's ServiceAccount have its Role there?",
            namespace.map_or("all namespaces".to_string(), |ns| format!("namespace {ns}")),
            crate::api::CRD_FILE
        )
    })?;

    let identity = args
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("openbao-backup-{}", std::process::id()));
    let leadership = lead(&client, &args, &identity, &metrics).await?;
    metrics.set_readiness(Readiness::Syncing);
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: args.operator.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: Some(identity),
            },
        ),
        metrics: metrics.clone(),
        notifier: notify::Notifier::start(
            client.clone(),
            metrics.clone(),
            args.operator.service_cidrs.clone(),
        ),
    });
    let (cluster_store, clusters_run) =
        cluster_controller(&client, namespace, clusters, ctx.clone()).await;
    let (restore_store, restores_run) = restore_controller(&client, namespace, ctx);
    tokio::spawn(async move {
        synced(&cluster_store).await;
        synced(&restore_store).await;
        metrics.set_readiness(Readiness::Synced);
        tracing::info!("watches synced: ready");
    });
    futures_util::future::join(clusters_run, restores_run).await;

    if let Some((lease, renewing)) = leadership {
        // A renewal racing the release would see its write conflict, take
        // that for another leader, and exit 1.
        renewing.abort();
        let _ = renewing.await;
        leader::release(&client, &lease).await;
    }
    server.abort();
    tracing::info!("operator stopped");
    Ok(())
}

/// With leader election: waits to lead, then keeps renewing the Lease (the
/// task returned) and exits the process once it may not lead.
async fn lead(
    client: &Client,
    args: &RunSettings,
    identity: &str,
    metrics: &Metrics,
) -> Result<Option<(LeaseSettings, tokio::task::JoinHandle<()>)>, String> {
    if !args.leader_election {
        return Ok(None);
    }
    let lease = LeaseSettings {
        namespace: args.lease_namespace.clone(),
        name: args.lease_name.clone(),
        identity: identity.into(),
        duration: Duration::from_secs(15),
        retry: Duration::from_secs(2),
    };
    leader::acquire(client, &lease, || metrics.set_readiness(Readiness::Standby))
        .await
        .map_err(|e| format!("leader election failed: {e}"))?;
    let (client, kept) = (client.clone(), lease.clone());
    let renewing = tokio::spawn(async move {
        leader::keep(&client, &kept).await;
        // Another replica may lead now: stop before two reconcile.
        std::process::exit(1);
    });
    Ok(Some((lease, renewing)))
}

/// Cluster reconciles running at the same time.
const RECONCILES_AT_ONCE: u16 = 16;

fn managed() -> watcher::Config {
    watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"))
}

/// All namespaces, or only `namespace`.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// The OpenBaoClusters' controller: woken by the objects they own, their
/// Jobs and pods, and their restores. Returns its OpenBaoCluster cache
/// (ready once synced) and the controller to run.
async fn cluster_controller(
    client: &Client,
    namespace: Option<&str>,
    clusters: Api<OpenBaoCluster>,
    ctx: Arc<Context>,
) -> (Store<OpenBaoCluster>, impl Future<Output = ()>) {
    let managed = managed();
    let openbao_pods = watcher::Config::default().labels(&format!(
        "{MANAGED_BY_LABEL}={MANAGER},{COMPONENT_LABEL}=server"
    ));
    // Creating a cluster's objects sends a burst of watch events; one
    // reconcile after the burst does for all of them. At start every
    // cluster is due at once: a bounded number of reconciles at a time
    // bounds the memory they hold (the API server is the bottleneck).
    let config = controller::Config::default()
        .debounce(Duration::from_secs(1))
        .concurrency(RECONCILES_AT_ONCE);
    let mut controller = Controller::new(clusters, watcher::Config::default())
        .with_config(config)
        .owns(scoped::<StatefulSet>(client, namespace), managed.clone())
        .owns(scoped::<Service>(client, namespace), managed.clone())
        .owns(scoped::<ConfigMap>(client, namespace), managed.clone())
        .owns(scoped::<ServiceAccount>(client, namespace), managed.clone())
        .owns(scoped::<NetworkPolicy>(client, namespace), managed.clone());
    if serves(client, "batch/v1", "cronjobs").await {
        controller = controller.owns(scoped::<CronJob>(client, namespace), managed.clone());
    } else {
        tracing::warn!("this API server does not serve batch/v1 CronJob: no scheduled backups");
    }
    if serves(client, "policy/v1", "poddisruptionbudgets").await {
        controller = controller.owns(
            scoped::<PodDisruptionBudget>(client, namespace),
            managed.clone(),
        );
    }
    // Jobs belong to the CronJob (or to whoever created them by hand), and
    // pods to the StatefulSet (rollouts follow their readiness); the
    // instance label leads back to the cluster, and a restore's spec.
    let store = controller.store();
    let run = controller
        .watches(scoped::<Job>(client, namespace), managed.clone(), |job: Job| {
            let cluster = job.labels().get(INSTANCE_LABEL)?;
            Some(ObjectRef::new(cluster).within(&job.namespace()?))
        })
        .watches(scoped::<Pod>(client, namespace), openbao_pods, |pod: Pod| {
            let cluster = pod.labels().get(INSTANCE_LABEL)?;
            Some(ObjectRef::new(cluster).within(&pod.namespace()?))
        })
        // A restore that ends or is deleted may leave the cluster's backups
        // held: the cluster's reconcile releases a hold no restore owns.
        .watches(
            scoped::<OpenBaoRestore>(client, namespace),
            watcher::Config::default(),
            |restore: OpenBaoRestore| {
                Some(ObjectRef::new(&restore.spec.cluster).within(&restore.namespace()?))
            },
        )
        .shutdown_on_signal()
        .run(
            |cluster, ctx| contained(reconcile::reconcile(cluster, ctx)),
            reconcile::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Ok((cluster, _)) = result {
                tracing::debug!(cluster = %cluster.name, namespace = ?cluster.namespace, "reconciled");
            }
        });
    (store, run)
}

/// The OpenBaoRestores' controller: woken by their Jobs. Returns its
/// OpenBaoRestore cache (ready once synced) and the controller to run.
fn restore_controller(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> (Store<OpenBaoRestore>, impl Future<Output = ()>) {
    let controller = Controller::new(
        scoped::<OpenBaoRestore>(client, namespace),
        watcher::Config::default(),
    );
    let store = controller.store();
    let run = controller
    .owns(scoped::<Job>(client, namespace), managed())
    .shutdown_on_signal()
    .run(
        |restore, ctx| contained(restore::reconcile(restore, ctx)),
        restore::error_policy,
        ctx,
    )
    .for_each(|result| async move {
        if let Ok((restore, _)) = result {
            tracing::debug!(restore = %restore.name, namespace = ?restore.namespace, "reconciled");
        }
    });
    (store, run)
}

/// Waits until `store` has synced (its first list is in). kube-runtime's
/// `wait_until_ready` wakes only the last task that polled it, and the
/// controller polls it too: ask again every second instead of once.
async fn synced<K>(store: &Store<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready())
        .await
        .is_err()
    {}
}

async fn serves(client: &Client, group_version: &str, resource: &str) -> bool {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => list.resources.iter().any(|r| r.name == resource),
        Err(_) => false,
    }
}
