//! What an external OpenBao's backups and restores are given: its
//! addresses, its CA, and a NetworkPolicy open to its ports.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::backup::network_policy;
use super::tests::{backup_to, cluster, env, pods};
use crate::api::{
    BackupSpec, BackupTarget, ExternalService, ExternalSpec, OpenBaoCluster, SecretKeyRef,
};

fn external(spec: ExternalSpec) -> (OpenBaoCluster, BackupSpec) {
    let backup = backup_to(BackupTarget {
        endpoint: Some("http://minio.storage.svc:9000".into()),
        bucket: "openbao-backups".into(),
        ..Default::default()
    });
    let mut cluster = cluster(backup.clone());
    cluster.spec.external = Some(spec);
    (cluster, backup)
}

fn egress_ports(cluster: &OpenBaoCluster, backup: &BackupSpec) -> Vec<(bool, i32)> {
    let spec = network_policy(cluster, backup).spec.unwrap();
    spec.egress
        .unwrap()
        .iter()
        .flat_map(|rule| {
            let anywhere = rule.to.is_none();
            rule.ports
                .clone()
                .unwrap()
                .into_iter()
                .map(move |p| match p.port.unwrap() {
                    IntOrString::Int(port) => (anywhere, port),
                    IntOrString::String(s) => panic!("{s}"),
                })
        })
        .collect()
}

#[test]
fn jobs_reach_the_external_addresses_trusting_its_ca() {
    let (cluster, backup) = external(ExternalSpec {
        addresses: vec![
            "https://bao-0.bao-internal:8200".into(),
            "https://bao-1.bao-internal:8200".into(),
        ],
        ca_secret_ref: Some(SecretKeyRef {
            name: "bao-server-tls".into(),
            key: "ca.pem".into(),
        }),
        ..Default::default()
    });
    for pod in pods(&cluster, &backup) {
        let env = env(&pod);
        assert_eq!(
            env["OPENBAO_ADDR"],
            "https://bao-0.bao-internal:8200,https://bao-1.bao-internal:8200"
        );
        assert_eq!(
            env["OPENBAO_CACERT"],
            "/var/run/secrets/openbao-backup/openbao-ca/ca.crt"
        );
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "openbao-ca")
            .unwrap();
        let secret = volume.secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("bao-server-tls"));
        let item = &secret.items.as_ref().unwrap()[0];
        assert_eq!(
            (item.key.as_str(), item.path.as_str()),
            ("ca.pem", "ca.crt")
        );
    }
    // Egress to the addresses' port, wherever they are.
    assert_eq!(
        egress_ports(&cluster, &backup),
        [(false, 53), (false, 53), (true, 8200), (true, 9000)]
    );
}

#[test]
fn a_service_without_a_ca_is_reached_by_its_url_with_the_system_roots() {
    let (cluster, backup) = external(ExternalSpec {
        service: Some(ExternalService {
            name: "openbao-active".into(),
            port: Some(8300),
            scheme: Some("http".into()),
        }),
        ..Default::default()
    });
    for pod in pods(&cluster, &backup) {
        let env = env(&pod);
        assert_eq!(env["OPENBAO_ADDR"], "http://openbao-active.prod.svc:8300");
        assert!(!env.contains_key("OPENBAO_CACERT"), "{env:?}");
        assert!(
            !pod.volumes.iter().flatten().any(|v| v.name == "openbao-ca"),
            "no TLS Secret of the operator's to mount"
        );
    }
    assert_eq!(
        egress_ports(&cluster, &backup),
        [(false, 53), (false, 53), (true, 8300), (true, 9000)]
    );
    let (https, backup) = external(ExternalSpec {
        addresses: vec![
            "https://a:8200".into(),
            "https://b".into(),
            "https://c".into(),
        ],
        ..Default::default()
    });
    let ports = egress_ports(&https, &backup);
    assert_eq!(ports[2..4], [(true, 443), (true, 8200)], "each port once");
}
