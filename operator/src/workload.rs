//! The OpenBao workload of an `OpenBaoCluster`: a StatefulSet `<cluster>`
//! whose pods `<cluster>-<i>` find each other through the headless Service
//! `<cluster>-internal` (the same addresses backup Jobs use), a client
//! Service `<cluster>`, the configuration ConfigMap `<cluster>-config`, a
//! PodDisruptionBudget, and the ServiceAccount with the Role that lets
//! OpenBao label its pods (active, sealed). Pure functions of the resource
//! and the release to run, applied with server-side apply.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource,
    Service, ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::api::{OpenBaoCluster, OpenBaoClusterSpec, StorageSpec};
use crate::desired::{
    COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER, env_var, hardened, owned_meta,
};
use crate::openbao_config::{self, CONFIG_DIR, CONFIG_FILE, DATA_DIR, SEAL_DIR, TLS_DIR};

pub const OPENBAO_PORT: i32 = 8200;
pub const OPENBAO_CLUSTER_PORT: i32 = 8201;
/// The container's name in the StatefulSet's pods.
pub const CONTAINER: &str = "openbao";
/// The version a StatefulSet runs, on the StatefulSet.
pub const VERSION_ANNOTATION: &str = "openbao.org/version";
/// A digest of the configuration, on the pod template: a new
/// configuration is a new template, rolled out like an upgrade.
const CONFIG_ANNOTATION: &str = "openbao.org/config-sha256";
const DEFAULT_IMAGE: &str = "openbao/openbao";
const DEFAULT_STORAGE: &str = "10Gi";
/// The `openbao` user and group of OpenBao's images.
const OPENBAO_UID: i64 = 100;
const OPENBAO_GID: i64 = 1000;

/// The OpenBao a StatefulSet runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub image: String,
}

impl Release {
    /// What the spec asks for: `image`, or `openbao/openbao:<version>`;
    /// the version, or the image's tag when only the image is given.
    pub fn wanted(spec: &OpenBaoClusterSpec) -> Option<Self> {
        let image = match (&spec.image, &spec.version) {
            (Some(image), _) => image.clone(),
            (None, Some(version)) => format!("{DEFAULT_IMAGE}:{version}"),
            (None, None) => return None,
        };
        let version = spec.version.clone().unwrap_or_else(|| image_tag(&image));
        Some(Self { version, image })
    }

    /// What a StatefulSet runs now.
    pub fn running(statefulset: &StatefulSet) -> Option<Self> {
        let pod = statefulset.spec.as_ref()?.template.spec.as_ref()?;
        let image = pod
            .containers
            .iter()
            .find(|c| c.name == CONTAINER)?
            .image
            .clone()?;
        let version = statefulset
            .annotations()
            .get(VERSION_ANNOTATION)
            .cloned()
            .unwrap_or_else(|| image_tag(&image));
        Some(Self { version, image })
    }
}

/// `repo/name:tag@sha256:...` -> `tag` (or the digest, or `latest`).
fn image_tag(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match (last.split_once(':'), digest) {
        (Some((_, tag)), _) => tag.into(),
        (None, Some(digest)) => digest.into(),
        (None, None) => "latest".into(),
    }
}

pub fn internal_service_name(cluster: &str) -> String {
    format!("{cluster}-internal")
}

pub fn config_map_name(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// One node's API address, as its peers and backup Jobs reach it.
pub fn peer_addr(cluster: &str, namespace: &str, ordinal: u32) -> String {
    format!(
        "https://{cluster}-{ordinal}.{}.{namespace}.svc:{OPENBAO_PORT}",
        internal_service_name(cluster)
    )
}

/// Every node's address, comma-separated (the executor's `OPENBAO_ADDR`).
pub fn openbao_addrs(cluster: &str, namespace: &str, replicas: u32) -> String {
    (0..replicas)
        .map(|i| peer_addr(cluster, namespace, i))
        .collect::<Vec<_>>()
        .join(",")
}

/// The selector of the cluster's OpenBao pods (fixed for the
/// StatefulSet's life).
pub fn selector_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "openbao".into()),
        (INSTANCE_LABEL.into(), cluster.into()),
        (COMPONENT_LABEL.into(), "server".into()),
    ])
}

fn labels(cluster: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
    labels
}

fn meta(cluster: &OpenBaoCluster, name: String) -> ObjectMeta {
    owned_meta(cluster, name, labels(&cluster.name_any()))
}

fn selector(cluster: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(cluster)),
        ..Default::default()
    }
}

/// The pods' identity: its token lets OpenBao's service registration
/// label its own pod.
pub fn service_account(cluster: &OpenBaoCluster) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(cluster, cluster.name_any()),
        ..Default::default()
    }
}

/// What OpenBao's Kubernetes service registration needs: its own pods.
pub fn role(cluster: &OpenBaoCluster) -> Role {
    let name = cluster.name_any();
    Role {
        metadata: meta(cluster, format!("{name}-service-registration")),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".into()]),
            resource_names: Some(
                (0..cluster.spec.replicas())
                    .map(|i| format!("{name}-{i}"))
                    .collect(),
            ),
            verbs: vec!["get".into(), "update".into(), "patch".into()],
            ..Default::default()
        }]),
    }
}

pub fn role_binding(cluster: &OpenBaoCluster) -> RoleBinding {
    let name = cluster.name_any();
    RoleBinding {
        metadata: meta(cluster, format!("{name}-service-registration")),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: format!("{name}-service-registration"),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.clone(),
            namespace: cluster.namespace(),
            ..Default::default()
        }]),
    }
}

pub fn config_map(cluster: &OpenBaoCluster) -> ConfigMap {
    let name = cluster.name_any();
    ConfigMap {
        metadata: meta(cluster, config_map_name(&name)),
        data: Some(BTreeMap::from([(CONFIG_FILE.into(), config_text(cluster))])),
        ..Default::default()
    }
}

fn config_text(cluster: &OpenBaoCluster) -> String {
    let namespace = cluster.namespace().unwrap_or_default();
    let config = openbao_config::render(&cluster.name_any(), &namespace, &cluster.spec);
    serde_json::to_string_pretty(&config).expect("JSON serializes")
}

fn ports(names: &[(&str, i32)]) -> Vec<ServicePort> {
    names
        .iter()
        .map(|(name, port)| ServicePort {
            name: Some((*name).into()),
            port: *port,
            target_port: Some(IntOrString::Int(*port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        })
        .collect()
}

/// The peers' Service: a DNS name per pod, ready or not (Raft joins
/// before a node is unsealed).
pub fn internal_service(cluster: &OpenBaoCluster) -> Service {
    let name = cluster.name_any();
    Service {
        metadata: meta(cluster, internal_service_name(&name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&name)),
            ports: Some(ports(&[
                ("api", OPENBAO_PORT),
                ("cluster", OPENBAO_CLUSTER_PORT),
            ])),
            ..Default::default()
        }),
        status: None,
    }
}

/// Clients' Service: ready (unsealed) nodes; standbys forward to the
/// active node.
pub fn client_service(cluster: &OpenBaoCluster) -> Service {
    let name = cluster.name_any();
    Service {
        metadata: meta(cluster, name.clone()),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(&name)),
            ports: Some(ports(&[("api", OPENBAO_PORT)])),
            ..Default::default()
        }),
        status: None,
    }
}

/// Voluntary evictions (node drains) take one node at a time, so Raft
/// keeps its quorum.
pub fn pod_disruption_budget(cluster: &OpenBaoCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(cluster, cluster.name_any()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(&cluster.name_any())),
            ..Default::default()
        }),
        status: None,
    }
}

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
    let namespace = cluster.namespace().unwrap_or_default();
    let own_addr = |port: i32| {
        format!(
            "https://$(BAO_K8S_POD_NAME).{}.{namespace}.svc:{port}",
            internal_service_name(&name)
        )
    };
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let env = vec![
        EnvVar {
            name: "BAO_K8S_POD_NAME".into(),
            value_from: Some(field("metadata.name")),
            ..Default::default()
        },
        EnvVar {
            name: "BAO_K8S_NAMESPACE".into(),
            value_from: Some(field("metadata.namespace")),
            ..Default::default()
        },
        env_var("BAO_API_ADDR", own_addr(OPENBAO_PORT)),
        env_var("BAO_CLUSTER_ADDR", own_addr(OPENBAO_CLUSTER_PORT)),
        env_var("BAO_RAFT_NODE_ID", "$(BAO_K8S_POD_NAME)".into()),
        // For `bao` commands run in the pod.
        env_var("BAO_ADDR", format!("https://127.0.0.1:{OPENBAO_PORT}")),
        env_var("BAO_CACERT", format!("{TLS_DIR}/ca.crt")),
    ];
    let mut mounts = vec![
        mount("config", CONFIG_DIR, true),
        mount("tls", TLS_DIR, true),
        mount("data", DATA_DIR, false),
        mount("tmp", "/tmp", false),
    ];
    if cluster.spec.seal.is_some() {
        mounts.push(mount(SEAL_VOLUME, SEAL_DIR, true));
    }
    let config = config_text(cluster);
    let config_digest = hex::encode(Sha256::digest(config.as_bytes()));
    let container = Container {
        name: CONTAINER.into(),
        image: Some(release.image.clone()),
        command: Some(vec![
            "bao".into(),
            "server".into(),
            format!("-config={CONFIG_DIR}/{CONFIG_FILE}"),
        ]),
        env: Some(env),
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
        volume_mounts: Some(mounts),
        security_context: Some(hardened()),
        ..Default::default()
    };
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&name),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(cluster.spec.tls_secret(&name)),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    if let Some(seal) = &cluster.spec.seal {
        volumes.push(seal_volume(&seal.static_key.secret_key_ref));
    }
    let pod = PodSpec {
        service_account_name: Some(name.clone()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(OPENBAO_UID),
            run_as_group: Some(OPENBAO_GID),
            fs_group: Some(OPENBAO_GID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        // Spread nodes over machines where the scheduler can.
        affinity: Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 100,
                        pod_affinity_term: PodAffinityTerm {
                            label_selector: Some(selector(&name)),
                            topology_key: "kubernetes.io/hostname".into(),
                            ..Default::default()
                        },
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    let storage = storage
        .or_else(|| cluster.spec.storage.clone())
        .unwrap_or_default();
    let claims = vec![PersistentVolumeClaim {
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
    }];
    let mut metadata = meta(cluster, name.clone());
    metadata.annotations = Some(BTreeMap::from([(
        VERSION_ANNOTATION.into(),
        release.version.clone(),
    )]));
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(cluster.spec.replicas() as i32),
            service_name: Some(internal_service_name(&name)),
            selector: selector(&name),
            // All nodes start together, so that Raft can form.
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name)),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_ANNOTATION.into(),
                        config_digest[..16].into(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(claims),
            ..Default::default()
        }),
        status: None,
    }
}

const SEAL_VOLUME: &str = "seal";

/// `spec.seal.static`'s Secret key alone, as the file `<SEAL_DIR>/<key>`
/// only its owner may read (the kubelet adds the group read bit for the
/// pod's fsGroup, OpenBao's group).
fn seal_volume(secret: &crate::api::SecretKeyRef) -> Volume {
    Volume {
        name: SEAL_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.name.clone()),
            items: Some(vec![KeyToPath {
                key: secret.key.clone(),
                path: secret.key.clone(),
                mode: None,
            }]),
            default_mode: Some(0o400),
            optional: Some(false),
        }),
        ..Default::default()
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

fn mount(volume: &str, path: &str, read_only: bool) -> k8s_openapi::api::core::v1::VolumeMount {
    k8s_openapi::api::core::v1::VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(spec: serde_json::Value) -> OpenBaoCluster {
        serde_json::from_value(json!({
            "apiVersion": "openbao.org/v1alpha1", "kind": "OpenBaoCluster",
            "metadata": {"name": "bao", "namespace": "prod", "uid": "cluster-uid"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn releases_from_version_or_image() {
        let spec = |v: serde_json::Value| serde_json::from_value::<OpenBaoClusterSpec>(v).unwrap();
        let release = |v| Release::wanted(&spec(v)).unwrap();
        assert_eq!(
            release(json!({"version": "2.4.1"})),
            Release {
                version: "2.4.1".into(),
                image: "openbao/openbao:2.4.1".into()
            }
        );
        assert_eq!(
            release(json!({"image": "mirror.example:5000/openbao:2.4.2"})).version,
            "2.4.2",
            "a registry port is not a tag"
        );
        assert_eq!(
            release(json!({"version": "2.4.1", "image": "me/bao@sha256:ab"})),
            Release {
                version: "2.4.1".into(),
                image: "me/bao@sha256:ab".into()
            }
        );
        assert_eq!(release(json!({"image": "me/bao"})).version, "latest");
        assert!(Release::wanted(&spec(json!({}))).is_none());
    }

    #[test]
    fn statefulset_runs_the_release_with_its_config_tls_and_volume() {
        let cluster = cluster(json!({"version": "2.4.1", "replicas": 3,
            "storage": {"size": "20Gi", "storageClassName": "fast"}}));
        let release = Release::wanted(&cluster.spec).unwrap();
        let sts = statefulset(&cluster, &release, None);
        assert_eq!(Release::running(&sts), Some(release.clone()));
        let value = serde_json::to_value(&sts).unwrap();
        let spec = &value["spec"];
        assert_eq!(spec["serviceName"], "bao-internal");
        assert_eq!(spec["updateStrategy"]["type"], "OnDelete");
        assert_eq!(spec["podManagementPolicy"], "Parallel");
        assert_eq!(
            value["metadata"]["ownerReferences"][0]["uid"],
            "cluster-uid"
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "bao");
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "openbao/openbao:2.4.1");
        assert_eq!(
            container["command"],
            json!(["bao", "server", "-config=/openbao/config/config.json"])
        );
        let env: BTreeMap<String, serde_json::Value> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
            .collect();
        assert_eq!(
            env["BAO_API_ADDR"]["value"],
            "https://$(BAO_K8S_POD_NAME).bao-internal.prod.svc:8200"
        );
        assert_eq!(
            env["BAO_K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.name"
        );
        assert_eq!(env["BAO_RAFT_NODE_ID"]["value"], "$(BAO_K8S_POD_NAME)");
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"],
            "/v1/sys/health?standbyok=true"
        );
        assert_eq!(pod["volumes"][1]["secret"]["secretName"], "bao-tls");
        assert_eq!(pod["securityContext"]["fsGroup"], 1000);
        let claim = &spec["volumeClaimTemplates"][0];
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "20Gi");
        assert_eq!(claim["spec"]["storageClassName"], "fast");

        // The live volumes are kept: claim templates cannot change.
        let live = live_storage(&sts).unwrap();
        assert_eq!(live.size.as_deref(), Some("20Gi"));
        let mut resized = cluster.clone();
        resized.spec.storage = Some(StorageSpec {
            size: Some("50Gi".into()),
            storage_class_name: None,
        });
        let kept = statefulset(&resized, &release, Some(live));
        assert_eq!(
            kept.spec.unwrap().volume_claim_templates,
            sts.spec.as_ref().unwrap().volume_claim_templates
        );
    }

    #[test]
    fn a_static_seal_key_is_mounted_read_only_from_its_secret() {
        let unsealed = cluster(json!({"version": "2.4.1"}));
        let sealed = cluster(json!({"version": "2.4.1",
            "seal": {"static": {"secretKeyRef": {"name": "bao-seal", "key": "unseal.key"}}}}));
        let release = Release::wanted(&sealed.spec).unwrap();
        let pod = serde_json::to_value(statefulset(&sealed, &release, None).spec.unwrap().template)
            .unwrap()["spec"]
            .clone();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "seal")
            .unwrap();
        assert_eq!(
            volume["secret"],
            json!({"secretName": "bao-seal", "defaultMode": 0o400, "optional": false,
                   "items": [{"key": "unseal.key", "path": "unseal.key"}]})
        );
        let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
        assert!(
            mounts
                .contains(&json!({"name": "seal", "mountPath": "/openbao/seal", "readOnly": true}))
        );
        let config: serde_json::Value =
            serde_json::from_str(&config_map(&sealed).data.unwrap()["config.json"]).unwrap();
        assert_eq!(
            config["seal"]["static"]["current_key"],
            "file:///openbao/seal/unseal.key"
        );

        let pod = statefulset(&unsealed, &release, None)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert!(pod.volumes.unwrap().iter().all(|v| v.name != "seal"));
    }

    #[test]
    fn claim_templates_are_applied_as_stored() {
        let cluster = cluster(json!({"version": "2.4.1"}));
        let release = Release::wanted(&cluster.spec).unwrap();
        let body = apply_body(&statefulset(&cluster, &release, None));
        assert_eq!(
            body["spec"]["volumeClaimTemplates"][0],
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "data", "creationTimestamp": null},
                   "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                            "resources": {"requests": {"storage": "10Gi"}}},
                   "status": {"phase": "Pending"}})
        );
    }

    #[test]
    fn a_config_change_is_a_new_pod_template() {
        let before = cluster(json!({"version": "2.4.1"}));
        let after = cluster(json!({"version": "2.4.1", "config": {"log_level": "debug"}}));
        let template = |c: &OpenBaoCluster| {
            let release = Release::wanted(&c.spec).unwrap();
            statefulset(c, &release, None).spec.unwrap().template
        };
        assert_ne!(template(&before), template(&after));
        assert!(
            config_map(&after).data.unwrap()["config.json"].contains("\"log_level\": \"debug\"")
        );
    }

    #[test]
    fn services_budget_and_service_registration_rights() {
        let cluster = cluster(json!({"version": "2.4.1", "replicas": 3}));
        let internal = internal_service(&cluster).spec.unwrap();
        assert_eq!(internal.cluster_ip.as_deref(), Some("None"));
        assert_eq!(internal.publish_not_ready_addresses, Some(true));
        let client = client_service(&cluster);
        assert_eq!(client.metadata.name.as_deref(), Some("bao"));
        assert_eq!(
            client.spec.unwrap().selector.unwrap()[COMPONENT_LABEL],
            "server"
        );
        let budget = pod_disruption_budget(&cluster).spec.unwrap();
        assert_eq!(budget.max_unavailable, Some(IntOrString::Int(1)));
        let rule = &role(&cluster).rules.unwrap()[0];
        assert_eq!(rule.verbs, ["get", "update", "patch"]);
        assert_eq!(
            rule.resource_names.as_deref(),
            Some(&["bao-0".to_string(), "bao-1".into(), "bao-2".into()][..])
        );
        let binding = role_binding(&cluster);
        assert_eq!(binding.subjects.unwrap()[0].name, "bao");
        assert_eq!(
            openbao_addrs("bao", "prod", 2),
            "https://bao-0.bao-internal.prod.svc:8200,https://bao-1.bao-internal.prod.svc:8200"
        );
    }
}
