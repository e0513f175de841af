//! The OpenBao StatefulSet `<cluster>`: pods `<cluster>-<i>` running a
//! release with the rendered configuration, the cluster's TLS Secret, an
//! optional static seal key and a Raft volume each; the body server-side
//! apply gets, and the storage a live one was made with.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PodAffinityTerm, PodAntiAffinity,
    PodSpec, PodTemplateSpec, Probe, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::openbao_meta;
use crate::api::{OpenBaoCluster, SecretKeyRef, StorageSpec};
use crate::names::{
    OPENBAO_CLUSTER_PORT, OPENBAO_CONTAINER, OPENBAO_PORT, VERSION_ANNOTATION, config_map_name,
    internal_service_name, openbao_labels, selector_labels,
};
use crate::objects::{
    env_var, hardened, label_selector, mount, pod_security, secret_key_volume, secret_volume,
    writable_mount,
};
use crate::openbao_config::{self, CONFIG_DIR, CONFIG_FILE, DATA_DIR, SEAL_DIR, TLS_DIR};
use crate::release::Release;

/// A digest of the configuration, on the pod template: a new
/// configuration is a new template, rolled out like an upgrade.
const CONFIG_ANNOTATION: &str = "openbao.org/config-sha256";
const DEFAULT_STORAGE: &str = "10Gi";
/// The `openbao` user and group of OpenBao's images.
const OPENBAO_UID: i64 = 100;
const OPENBAO_GID: i64 = 1000;
const SEAL_VOLUME: &str = "seal";

/// The StatefulSet running `release`. Pods are replaced by the operator
/// (`OnDelete`), in the order `rollout` picks. Volume claim templates
/// cannot change once made: pass the live StatefulSet's storage
/// (`live_storage`) to keep them as they are.
pub fn statefulset(
    cluster: &OpenBaoCluster,
    release: &Release,
    storage: Option<StorageSpec>,
) -> StatefulSet {
    let name = cluster.name_any();
    let mut metadata = openbao_meta(cluster, name.clone());
    metadata.annotations = Some(BTreeMap::from([(
        VERSION_ANNOTATION.into(),
        release.version.clone(),
    )]));
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(cluster.spec.replicas() as i32),
            service_name: Some(internal_service_name(&name)),
            selector: label_selector(selector_labels(&name)),
            // All nodes start together, so that Raft can form.
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            }),
            template: pod_template(cluster, release),
            volume_claim_templates: Some(vec![raft_claim(cluster, storage)]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The pods: labelled as the workload, and annotated with the digest of
/// their configuration.
pub(super) fn pod_template(cluster: &OpenBaoCluster, release: &Release) -> PodTemplateSpec {
    let name = cluster.name_any();
    let config_digest = hex::encode(Sha256::digest(openbao_config::text(cluster).as_bytes()));
    let pod = PodSpec {
        service_account_name: Some(name.clone()),
        security_context: Some(pod_security(OPENBAO_UID, OPENBAO_GID, Some(OPENBAO_GID))),
        affinity: Some(spread(&name)),
        containers: vec![container(cluster, release)],
        volumes: Some(volumes(cluster)),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(openbao_labels(&name)),
            annotations: Some(BTreeMap::from([(
                CONFIG_ANNOTATION.into(),
                config_digest[..16].into(),
            )])),
            ..Default::default()
        }),
        spec: Some(pod),
    }
}

/// Spread nodes over machines where the scheduler can.
fn spread(cluster: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(label_selector(selector_labels(cluster))),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(cluster: &OpenBaoCluster, release: &Release) -> Container {
    Container {
        name: OPENBAO_CONTAINER.into(),
        image: Some(release.image.clone()),
        command: Some(vec![
            "bao".into(),
            "server".into(),
            format!("-config={CONFIG_DIR}/{CONFIG_FILE}"),
        ]),
        env: Some(openbao_env(cluster)),
        ports: Some(vec![
            container_port("api", OPENBAO_PORT),
            container_port("cluster", OPENBAO_CLUSTER_PORT),
        ]),
        // Ready = unsealed and serving, active or standby: a rollout
        // waits for each new pod to get there.
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/v1/sys/health?standbyok=true".into()),
                port: IntOrString::Int(OPENBAO_PORT),
                scheme: Some("HTTPS".into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(2),
            ..Default::default()
        }),
        volume_mounts: Some(mounts(cluster)),
        security_context: Some(hardened()),
        ..Default::default()
    }
}

/// Each pod's own addresses and Raft node id, from its name.
fn openbao_env(cluster: &OpenBaoCluster) -> Vec<EnvVar> {
    let service = internal_service_name(&cluster.name_any());
    let namespace = cluster.namespace().unwrap_or_default();
    let own_addr =
        |port: i32| format!("https://$(BAO_K8S_POD_NAME).{service}.{namespace}.svc:{port}");
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        field("BAO_K8S_POD_NAME", "metadata.name"),
        field("BAO_K8S_NAMESPACE", "metadata.namespace"),
        env_var("BAO_API_ADDR", own_addr(OPENBAO_PORT)),
        env_var("BAO_CLUSTER_ADDR", own_addr(OPENBAO_CLUSTER_PORT)),
        env_var("BAO_RAFT_NODE_ID", "$(BAO_K8S_POD_NAME)".into()),
        // For `bao` commands run in the pod.
        env_var("BAO_ADDR", format!("https://127.0.0.1:{OPENBAO_PORT}")),
        env_var("BAO_CACERT", format!("{TLS_DIR}/ca.crt")),
    ]
}

fn mounts(cluster: &OpenBaoCluster) -> Vec<VolumeMount> {
    let mut mounts = vec![
        mount("config", CONFIG_DIR),
        mount("tls", TLS_DIR),
        writable_mount("data", DATA_DIR),
        writable_mount("tmp", "/tmp"),
    ];
    if cluster.spec.seal.is_some() {
        mounts.push(mount(SEAL_VOLUME, SEAL_DIR));
    }
    mounts
}

fn volumes(cluster: &OpenBaoCluster) -> Vec<Volume> {
    let name = cluster.name_any();
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&name),
                ..Default::default()
            }),
            ..Default::default()
        },
        secret_volume("tls", &cluster.spec.tls_secret(&name)),
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    if let Some(seal) = &cluster.spec.seal {
        volumes.push(seal_volume(&seal.static_key.secret_key_ref));
    }
    volumes
}

/// `spec.seal.static`'s Secret key alone, as the file `<SEAL_DIR>/<key>`
/// only its owner may read (the kubelet adds the group read bit for the
/// pod's fsGroup, OpenBao's group).
fn seal_volume(secret: &SecretKeyRef) -> Volume {
    let mut volume = secret_key_volume(SEAL_VOLUME, &secret.name, &secret.key, &secret.key);
    let source = volume.secret.as_mut().expect("a Secret volume");
    source.default_mode = Some(0o400);
    source.optional = Some(false);
    volume
}

/// Each pod's Raft volume: the live StatefulSet's storage, else the spec's.
fn raft_claim(cluster: &OpenBaoCluster, storage: Option<StorageSpec>) -> PersistentVolumeClaim {
    let storage = storage
        .or_else(|| cluster.spec.storage.clone())
        .unwrap_or_default();
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            volume_mode: Some("Filesystem".into()),
            storage_class_name: storage.storage_class_name,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(storage.size.unwrap_or_else(|| DEFAULT_STORAGE.into())),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        // See `apply_body`.
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }),
    }
}

/// The StatefulSet as server-side apply should get it. Its claim
/// templates are one atomic list, compared whole: unless they are written
/// exactly as the API server stores them (its defaults, and the
/// `creationTimestamp: null` Go writes for an empty time, which the typed
/// object cannot say), every apply rewrites the StatefulSet, and its watch
/// event starts the next reconcile.
pub fn apply_body(statefulset: &StatefulSet) -> serde_json::Value {
    let mut body = serde_json::to_value(statefulset).expect("a StatefulSet serializes");
    let claims = body["spec"]["volumeClaimTemplates"].as_array_mut();
    for claim in claims.into_iter().flatten() {
        claim["metadata"]["creationTimestamp"] = serde_json::Value::Null;
    }
    body
}

/// The size and class a live StatefulSet's Raft volumes were made with.
pub fn live_storage(statefulset: &StatefulSet) -> Option<StorageSpec> {
    let claims = statefulset.spec.as_ref()?.volume_claim_templates.as_ref()?;
    let spec = claims
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("data"))?
        .spec
        .as_ref()?;
    let size = spec.resources.as_ref()?.requests.as_ref()?.get("storage")?;
    Some(StorageSpec {
        size: Some(size.0.clone()),
        storage_class_name: spec.storage_class_name.clone(),
    })
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}
