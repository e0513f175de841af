//! The OpenBao StatefulSet's companions: the ServiceAccount with the Role
//! that lets OpenBao label its pods (active, sealed), the configuration
//! ConfigMap `<cluster>-config`, the headless Service `<cluster>-internal`
//! through which the pods find each other, the client Service `<cluster>`,
//! and a PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount, ServicePort, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::openbao_meta;
use crate::api::OpenBaoCluster;
use crate::names::{
    OPENBAO_CLUSTER_PORT, OPENBAO_PORT, config_map_name, internal_service_name, selector_labels,
    service_registration_name,
};
use crate::objects::label_selector;
use crate::openbao_config::{self, CONFIG_FILE};

/// The pods' identity: its token lets OpenBao's service registration
/// label its own pod.
pub fn service_account(cluster: &OpenBaoCluster) -> ServiceAccount {
    ServiceAccount {
        metadata: openbao_meta(cluster, cluster.name_any()),
        ..Default::default()
    }
}

/// What OpenBao's Kubernetes service registration needs: its own pods.
pub fn role(cluster: &OpenBaoCluster) -> Role {
    let name = cluster.name_any();
    Role {
        metadata: openbao_meta(cluster, service_registration_name(&name)),
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
        metadata: openbao_meta(cluster, service_registration_name(&name)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: service_registration_name(&name),
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
        metadata: openbao_meta(cluster, config_map_name(&name)),
        data: Some(BTreeMap::from([(
            CONFIG_FILE.into(),
            openbao_config::text(cluster),
        )])),
        ..Default::default()
    }
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
        metadata: openbao_meta(cluster, internal_service_name(&name)),
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
        metadata: openbao_meta(cluster, name.clone()),
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
        metadata: openbao_meta(cluster, cluster.name_any()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(label_selector(selector_labels(&cluster.name_any()))),
            ..Default::default()
        }),
        status: None,
    }
}
