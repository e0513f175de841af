//! NetworkPolicies: the parts both policies share (ports, DNS, the
//! executor pods, an address as a peer) and the `Hardened` profile's
//! default-deny policy `<cluster>` of the OpenBao pods. (The backup and
//! restore pods' policy is `backup::network_policy`.) The traffic each
//! allows is listed in docs/security.md.

use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::openbao_meta;
use crate::api::OpenBaoCluster;
use crate::names::{
    COMPONENT_LABEL, OPENBAO_CLUSTER_PORT, OPENBAO_PORT, backup_labels, selector_labels,
};
use crate::objects::label_selector;
use crate::security::config_seals;
use crate::settings::OperatorSettings;
use contract::network::{Cidr, url_ip};

pub(super) fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        ..Default::default()
    }
}

pub(super) fn tcp(number: i32) -> NetworkPolicyPort {
    port("TCP", number)
}

/// DNS, in any namespace (the cluster's DNS runs in kube-system, or
/// elsewhere).
pub(super) fn dns() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            ..Default::default()
        }]),
        ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
    }
}

/// One address as a peer.
pub(super) fn ip_peer(ip: IpAddr) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: Cidr::host(ip).to_string(),
            except: None,
        }),
        ..Default::default()
    }
}

/// Backup and restore pods alike.
pub(super) fn executor_pods(cluster: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            backup_labels(cluster)
                .into_iter()
                .filter(|(key, _)| key != COMPONENT_LABEL)
                .collect(),
        ),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: COMPONENT_LABEL.into(),
            operator: "In".into(),
            values: Some(vec!["backup".into(), "restore".into()]),
        }]),
    }
}

/// A URL's port: explicit, or 443 for https, 80 for http.
pub(super) fn url_port(endpoint: &str) -> i32 {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
        Some(port) => port,
        None if scheme == "http" => 80,
        None => 443,
    }
}

/// The `Hardened` profile's policy of the OpenBao pods: nothing in or out
/// but what is listed. In: the API port from the peers, this cluster's
/// backup and restore pods and `spec.networkPolicy.apiClients`, and Raft
/// (the cluster port) from the peers. Out: the peers (API and Raft), DNS,
/// the Kubernetes API server (service registration, by port) and the
/// seal's endpoint.
pub fn openbao_network_policy(
    cluster: &OpenBaoCluster,
    settings: &OperatorSettings,
) -> NetworkPolicy {
    let name = cluster.name_any();
    let peers = || {
        vec![NetworkPolicyPeer {
            pod_selector: Some(label_selector(selector_labels(&name))),
            ..Default::default()
        }]
    };
    let peer_ports = || Some(vec![tcp(OPENBAO_PORT), tcp(OPENBAO_CLUSTER_PORT)]);
    let mut ingress = vec![
        NetworkPolicyIngressRule {
            from: Some(peers()),
            ports: peer_ports(),
        },
        NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(executor_pods(&name)),
                ..Default::default()
            }]),
            ports: Some(vec![tcp(OPENBAO_PORT)]),
        },
    ];
    let clients: Vec<NetworkPolicyPeer> = cluster
        .spec
        .network_policy
        .iter()
        .flat_map(|p| &p.api_clients)
        .map(|client| NetworkPolicyPeer {
            namespace_selector: client.namespace_selector.clone(),
            pod_selector: client.pod_selector.clone(),
            ip_block: None,
        })
        .collect();
    if !clients.is_empty() {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(clients),
            ports: Some(vec![tcp(OPENBAO_PORT)]),
        });
    }
    let mut egress = vec![
        NetworkPolicyEgressRule {
            to: Some(peers()),
            ports: peer_ports(),
        },
        dns(),
        // The API server's addresses are not pods: by port, anywhere.
        NetworkPolicyEgressRule {
            to: None,
            ports: Some(
                settings
                    .kubernetes_api_ports
                    .iter()
                    .map(|p| tcp((*p).into()))
                    .collect(),
            ),
        },
    ];
    egress.extend(seal_egress(cluster));
    NetworkPolicy {
        metadata: openbao_meta(cluster, name.clone()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(label_selector(selector_labels(&name))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    }
}

/// Where `spec.config.seal` unseals: its `address` (transit) or
/// `endpoint` (a KMS's own), its port and, for an address, only there;
/// a cloud KMS without one on 443. A static or PKCS#11 seal (the key is
/// local) reaches nothing.
fn seal_egress(cluster: &OpenBaoCluster) -> Vec<NetworkPolicyEgressRule> {
    config_seals(&cluster.spec)
        .filter(|(kind, _)| !matches!(*kind, "static" | "pkcs11"))
        .map(|(kind, settings)| {
            let url = ["address", "endpoint"]
                .iter()
                .find_map(|key| settings.get(*key)?.as_str());
            let default = if kind == "kmip" { 5696 } else { 443 };
            let port = url.map_or(default, |u| {
                if u.contains("://") || u.contains(':') {
                    url_port(u)
                } else {
                    default
                }
            });
            NetworkPolicyEgressRule {
                to: url.and_then(url_ip).map(|ip| vec![ip_peer(ip)]),
                ports: Some(vec![tcp(port)]),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::backup::network_policy;
    use crate::desired::workload_tests::cluster;
    use serde_json::json;

    #[test]
    fn openbao_pods_get_peers_clients_backups_dns_the_api_server_and_the_seal() {
        let cluster = cluster(json!({
            "version": "2.4.1", "profile": "Hardened",
            "networkPolicy": {"apiClients": [
                {"namespaceSelector": {"matchLabels": {"team": "apps"}}},
                {"podSelector": {"matchLabels": {"app": "web"}}},
            ]},
            "config": {"seal": {"transit": {"address": "https://10.0.5.9:8200"}}},
        }));
        let policy = openbao_network_policy(&cluster, &OperatorSettings::default());
        let peers = json!([{"podSelector": {"matchLabels": {
            "app.kubernetes.io/component": "server", "app.kubernetes.io/instance": "bao",
            "app.kubernetes.io/name": "openbao"}}}]);
        let tcp = |p: i32| json!({"protocol": "TCP", "port": p});
        let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
        assert_eq!(spec["podSelector"], peers[0]["podSelector"]);
        assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(
            spec["ingress"],
            json!([
                {"from": peers, "ports": [tcp(8200), tcp(8201)]},
                {"from": [{"podSelector": serde_json::to_value(executor_pods("bao")).unwrap()}],
                 "ports": [tcp(8200)]},
                {"from": [{"namespaceSelector": {"matchLabels": {"team": "apps"}}},
                          {"podSelector": {"matchLabels": {"app": "web"}}}],
                 "ports": [tcp(8200)]},
            ])
        );
        assert_eq!(
            spec["egress"],
            json!([
                {"to": peers, "ports": [tcp(8200), tcp(8201)]},
                {"to": [{"namespaceSelector": {}}],
                 "ports": [{"protocol": "UDP", "port": 53}, tcp(53)]},
                {"ports": [tcp(443), tcp(6443)]},
                {"to": [{"ipBlock": {"cidr": "10.0.5.9/32"}}], "ports": [tcp(8200)]},
            ])
        );
        assert_eq!(policy.metadata.name.as_deref(), Some("bao"));
        assert_eq!(
            policy.metadata.owner_references.unwrap()[0].uid,
            "cluster-uid"
        );
    }

    #[test]
    fn seals_are_reached_where_they_are() {
        let egress = |seal: serde_json::Value| {
            let cluster = cluster(json!({"version": "2.4.1", "config": {"seal": seal}}));
            serde_json::to_value(seal_egress(&cluster)).unwrap()
        };
        let tcp = |p: i32| json!([{"protocol": "TCP", "port": p}]);
        assert_eq!(
            egress(json!({"static": {"current_key": "file:///k"}})),
            json!([])
        );
        assert_eq!(egress(json!({"pkcs11": {"lib": "/x.so"}})), json!([]));
        assert_eq!(
            egress(json!({"transit": {"address": "https://transit.vault.svc:8200"}})),
            json!([{"ports": tcp(8200)}])
        );
        assert_eq!(
            egress(json!({"awskms": {"region": "eu-west-1"}})),
            json!([{"ports": tcp(443)}])
        );
        assert_eq!(
            egress(json!([{"kmip": {"endpoint": "kms.example"}}])),
            json!([{"ports": tcp(5696)}])
        );
    }

    #[test]
    fn hardened_backup_pods_reach_an_address_endpoint_only_there() {
        let backup = |endpoint: &str, profile: &str| {
            let cluster = cluster(json!({"version": "2.4.1", "profile": profile, "backup": {
                "schedule": "@daily", "executorImage": "x", "jwtAuthRole": "r",
                "target": {"endpoint": endpoint, "bucket": "b"}}}));
            let spec = cluster.spec.backup.clone().unwrap();
            let policy = network_policy(&cluster, &spec).spec.unwrap();
            serde_json::to_value(&policy.egress.unwrap()[2]).unwrap()
        };
        let tcp = |p: i32| json!([{"protocol": "TCP", "port": p}]);
        assert_eq!(
            backup("https://192.0.2.10:9000", "Hardened"),
            json!({"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": tcp(9000)})
        );
        assert_eq!(
            backup("https://[2001:db8::7]", "Hardened"),
            json!({"to": [{"ipBlock": {"cidr": "2001:db8::7/128"}}], "ports": tcp(443)})
        );
        assert_eq!(
            backup("https://s3.example.com", "Hardened"),
            json!({"ports": tcp(443)})
        );
        assert_eq!(
            backup("https://192.0.2.10:9000", "Development"),
            json!({"ports": tcp(9000)})
        );
    }
}
