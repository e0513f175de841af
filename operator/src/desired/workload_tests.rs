//! The OpenBao StatefulSet and its companions as built.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::companions::*;
use super::statefulset::*;
use crate::api::{OpenBaoCluster, OpenBaoClusterSpec, StorageSpec};
use crate::names::*;
use crate::release::Release;

/// A cluster `prod/bao` with this spec.
pub(super) fn cluster(spec: serde_json::Value) -> OpenBaoCluster {
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
        mounts.contains(&json!({"name": "seal", "mountPath": "/openbao/seal", "readOnly": true}))
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
    assert!(config_map(&after).data.unwrap()["config.json"].contains("\"log_level\": \"debug\""));
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
