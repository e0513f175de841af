//! The OpenBao server configuration of a cluster, in OpenBao's JSON form
//! (serialized, never templated as text): a TLS listener, integrated Raft
//! storage joining every peer, Kubernetes service registration (the pod
//! labels that tell the operator which node is active), the user's extra
//! configuration, `spec.seal` (a static key mounted from a Secret) and
//! `spec.selfInit` as declarative self-initialization. Pure.

use serde_json::{Map, Value, json};

use kube::ResourceExt;

use crate::api::{OpenBaoCluster, OpenBaoClusterSpec, SelfInitRequest};
use crate::names::{OPENBAO_CLUSTER_PORT, OPENBAO_PORT, peer_addr};

pub const CONFIG_DIR: &str = "/openbao/config";
pub const CONFIG_FILE: &str = "config.json";
pub const DATA_DIR: &str = "/openbao/data";
pub const TLS_DIR: &str = "/openbao/tls";
/// Where `spec.seal.static`'s Secret key is mounted, as a file of its name.
pub const SEAL_DIR: &str = "/openbao/seal";

/// Top-level keys the operator renders itself; `spec.config` may not set
/// them.
pub const OWNED_KEYS: [&str; 7] = [
    "storage",
    "listener",
    "api_addr",
    "cluster_addr",
    "service_registration",
    "initialize",
    "disable_mlock",
];

/// The name of the one `initialize` block holding `spec.selfInit.requests`.
const SELF_INIT_BLOCK: &str = "selfInit";

/// A cluster's configuration file, as the ConfigMap holds it (and the pod
/// template's digest covers it).
pub fn text(cluster: &OpenBaoCluster) -> String {
    let namespace = cluster.namespace().unwrap_or_default();
    let config = render(&cluster.name_any(), &namespace, &cluster.spec);
    serde_json::to_string_pretty(&config).expect("JSON serializes")
}

/// The configuration file for `cluster` in `namespace`. Each node's own
/// addresses and Raft node id come from its environment (`BAO_API_ADDR`,
/// `BAO_CLUSTER_ADDR`, `BAO_RAFT_NODE_ID`), so one file serves all pods.
pub fn render(cluster: &str, namespace: &str, spec: &OpenBaoClusterSpec) -> Value {
    let ca = format!("{TLS_DIR}/ca.crt");
    let retry_join: Vec<Value> = (0..spec.replicas())
        .map(|i| {
            json!({
                "leader_api_addr": peer_addr(cluster, namespace, i),
                "leader_ca_cert_file": ca,
            })
        })
        .collect();
    let mut config = Map::new();
    config.insert("ui".into(), json!(true));
    config.insert("cluster_name".into(), json!(cluster));
    // Extra configuration may override the defaults above, not what follows.
    for (key, value) in spec.config.iter().flatten() {
        config.insert(key.clone(), value.clone());
    }
    let owned = json!({
        // Raft needs no swap protection from mlock, and the pod runs
        // without IPC_LOCK.
        "disable_mlock": true,
        "listener": [{"tcp": {
            "address": format!("[::]:{OPENBAO_PORT}"),
            "cluster_address": format!("[::]:{OPENBAO_CLUSTER_PORT}"),
            "tls_cert_file": format!("{TLS_DIR}/tls.crt"),
            "tls_key_file": format!("{TLS_DIR}/tls.key"),
        }}],
        "storage": {"raft": {"path": DATA_DIR, "retry_join": retry_join}},
        "service_registration": {"kubernetes": {}},
    });
    for (key, value) in owned.as_object().expect("an object") {
        config.insert(key.clone(), value.clone());
    }
    if let Some(seal) = &spec.seal {
        let key = &seal.static_key;
        config.insert(
            "seal".into(),
            json!({"static": {
                "current_key_id": key.key_id(),
                "current_key": format!("file://{}", seal_key_file(&key.secret_key_ref.key)),
            }}),
        );
    }
    if let Some(init) = spec.self_init.as_ref().filter(|s| s.enabled) {
        let requests: Vec<Value> = init.requests.iter().map(self_init_request).collect();
        config.insert(
            "initialize".into(),
            json!([{ SELF_INIT_BLOCK: {"request": requests} }]),
        );
    }
    Value::Object(config)
}

/// The file holding `spec.seal.static`'s key in the pods.
pub fn seal_key_file(key: &str) -> String {
    format!("{SEAL_DIR}/{key}")
}

/// One self-initialization request: its body is `data`, or built from
/// `authMethod` (sys/auth/*), `secretEngine` (sys/mounts/*) or `policy`
/// (sys/policies/acl/*).
fn self_init_request(request: &SelfInitRequest) -> Value {
    let mut fields = Map::new();
    fields.insert("operation".into(), json!(request.operation));
    fields.insert("path".into(), json!(request.path));
    let data = if let Some(method) = &request.auth_method {
        Some(
            json!({"type": method.kind, "description": method.description, "config": method.config}),
        )
    } else if let Some(engine) = &request.secret_engine {
        Some(
            json!({"type": engine.kind, "description": engine.description, "options": engine.options}),
        )
    } else if let Some(policy) = &request.policy {
        Some(json!({"policy": policy.policy}))
    } else {
        request.data.clone().map(Value::Object)
    };
    if let Some(mut data) = data {
        // Absent optional fields are left out, not sent as null or {}.
        if let Value::Object(fields) = &mut data {
            fields.retain(|_, v| !v.is_null() && v != &json!({}));
        }
        fields.insert("data".into(), data);
    }
    if request.allow_failure {
        fields.insert("allow_failure".into(), json!(true));
    }
    json!({ request.name.clone(): fields })
}

/// What is wrong with `spec.config` and `spec.selfInit`, each naming its
/// field and the fix.
pub fn check(spec: &OpenBaoClusterSpec, problems: &mut Vec<String>) {
    let extra = spec.config.as_ref();
    for key in OWNED_KEYS {
        if extra.is_some_and(|c| c.contains_key(key)) {
            problems.push(format!(
                "spec.config.{key}: the operator renders `{key}` itself; remove it (see docs/operator.md, \"The OpenBao workload\")"
            ));
        }
    }
    let config_seal = extra.is_some_and(|c| c.contains_key("seal"));
    if config_seal && spec.seal.is_some() {
        problems.push(
            "spec.seal and spec.config.seal: give one seal; remove spec.config.seal to unseal with spec.seal.static, or remove spec.seal to keep your own"
                .into(),
        );
    }
    let Some(init) = spec.self_init.as_ref().filter(|s| s.enabled) else {
        return;
    };
    if !config_seal && spec.seal.is_none() {
        problems.push(
            "spec.selfInit needs auto-unseal (OpenBao cannot keep Shamir keys it made itself): add spec.seal.static.secretKeyRef (a 32-byte key in a Secret), or a seal to spec.config, e.g. {\"seal\": {\"transit\": {...}}}"
                .into(),
        );
    }
    if init.requests.is_empty() {
        problems.push("spec.selfInit.requests: enabled with no requests; add requests or set enabled to false".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, request) in init.requests.iter().enumerate() {
        let field = format!("spec.selfInit.requests[{i}]");
        if !seen.insert(&request.name) {
            problems.push(format!(
                "{field}.name: \"{}\" is used twice; request names must be unique",
                request.name
            ));
        }
        let bodies = [
            request.auth_method.is_some(),
            request.secret_engine.is_some(),
            request.policy.is_some(),
            request.data.is_some(),
        ];
        if bodies.into_iter().filter(|b| *b).count() > 1 {
            problems.push(format!(
                "{field}: give at most one of authMethod, secretEngine, policy and data"
            ));
        }
        let path = request.path.trim_start_matches('/');
        let expect = |given: bool, prefix: &str, what: &str, problems: &mut Vec<String>| {
            if given && !path.starts_with(prefix) {
                problems.push(format!(
                    "{field}.{what}: applies to paths under {prefix}, not \"{}\"",
                    request.path
                ));
            }
        };
        expect(
            request.auth_method.is_some(),
            "sys/auth/",
            "authMethod",
            problems,
        );
        expect(
            request.secret_engine.is_some(),
            "sys/mounts/",
            "secretEngine",
            problems,
        );
        expect(
            request.policy.is_some(),
            "sys/policies/acl/",
            "policy",
            problems,
        );
    }
}

/// What `spec.selfInit` probably gets wrong but OpenBao accepts, each
/// naming its field and the fix: a JWT/OIDC role (`auth/<mount>/role/*`)
/// whose `bound_claims` has a key with a `/` but no leading `/`. OpenBao
/// reads such a key as one top-level claim name, and Kubernetes
/// ServiceAccount tokens nest theirs (`kubernetes.io` -> `namespace`), so
/// every login with the role fails with `claim "..." is missing`.
pub fn warnings(spec: &OpenBaoClusterSpec) -> Vec<String> {
    let mut warnings = Vec::new();
    let Some(init) = spec.self_init.as_ref().filter(|s| s.enabled) else {
        return warnings;
    };
    for (i, request) in init.requests.iter().enumerate() {
        let path = request.path.trim_start_matches('/');
        if !(path.starts_with("auth/") && path.contains("/role/")) {
            continue;
        }
        let claims = request.data.as_ref().and_then(|d| d.get("bound_claims"));
        for key in claims
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if key.contains('/') && !key.starts_with('/') {
                warnings.push(format!(
                    "spec.selfInit.requests[{i}].data.bound_claims.\"{key}\": use \"/{key}\": OpenBao reads a key without a leading / as a top-level claim name, so ServiceAccount tokens never match"
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OpenBaoCluster;

    fn example(file: &str) -> OpenBaoCluster {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(file);
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_documented_self_init_example_renders_in_order() {
        let cluster = example("openbaocluster-selfinit.yaml");
        let config = render("selfinit-cluster", "openbao", &cluster.spec);
        let requests = &config["initialize"][0]["selfInit"]["request"];
        let names: Vec<&str> = requests
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().keys().next().unwrap().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "enable-jwt-auth",
                "configure-jwt-auth",
                "create-backup-policy",
                "create-backup-role"
            ]
        );
        assert_eq!(
            requests[0]["enable-jwt-auth"],
            json!({"operation": "update", "path": "sys/auth/jwt", "data": {"type": "jwt"}})
        );
        assert!(
            requests[2]["create-backup-policy"]["data"]["policy"]
                .as_str()
                .unwrap()
                .contains(r#"path "sys/storage/raft/snapshot""#)
        );
        let role = &requests[3]["create-backup-role"]["data"];
        assert_eq!(role["bound_audiences"], json!(["openbao-internal"]));
        assert_eq!(role["token_policies"], json!(["backup"]));
        assert_eq!(
            role["bound_claims"],
            json!({"/kubernetes.io/namespace": "openbao",
                   "/kubernetes.io/serviceaccount/name": "selfinit-cluster-backup-serviceaccount"})
        );
        assert_eq!(
            role["bound_claims"]["/kubernetes.io/serviceaccount/name"],
            crate::names::service_account_name("selfinit-cluster")
        );
        assert_eq!(
            config["seal"],
            json!({"static": {"current_key_id": "k1",
                              "current_key": "file:///openbao/seal/key"}}),
            "self-init needs auto-unseal"
        );
        let mut problems = Vec::new();
        check(&cluster.spec, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(warnings(&cluster.spec).is_empty());
    }

    #[test]
    fn a_static_seal_from_a_secret_is_auto_unseal() {
        let spec: OpenBaoClusterSpec = serde_json::from_value(json!({
            "version": "2.4.1",
            "seal": {"static": {"secretKeyRef": {"name": "bao-seal", "key": "unseal.key"},
                                "keyId": "2026-01"}},
            "config": {"log_level": "debug"},
            "selfInit": {"enabled": true, "requests": [
                {"name": "a", "operation": "update", "path": "sys/auth/jwt",
                 "authMethod": {"type": "jwt"}},
            ]},
        }))
        .unwrap();
        let config = render("bao", "prod", &spec);
        assert_eq!(
            config["seal"],
            json!({"static": {"current_key_id": "2026-01",
                              "current_key": "file:///openbao/seal/unseal.key"}})
        );
        let mut problems = Vec::new();
        check(&spec, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn two_seals_are_refused_naming_both() {
        let spec: OpenBaoClusterSpec = serde_json::from_value(json!({
            "version": "2.4.1",
            "seal": {"static": {"secretKeyRef": {"name": "bao-seal", "key": "key"}}},
            "config": {"seal": {"transit": {"address": "https://transit:8200"}}},
        }))
        .unwrap();
        let mut problems = Vec::new();
        check(&spec, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.seal and spec.config.seal: give one seal; remove"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn unslashed_bound_claims_of_a_role_warn_but_pass() {
        let spec: OpenBaoClusterSpec = serde_json::from_value(json!({
            "version": "2.4.1",
            "seal": {"static": {"secretKeyRef": {"name": "bao-seal", "key": "key"}}},
            "selfInit": {"enabled": true, "requests": [
                {"name": "kv", "operation": "update", "path": "secret/data/x",
                 "data": {"bound_claims": {"a/b": "c"}}},
                {"name": "role", "operation": "update", "path": "auth/jwt/role/backup",
                 "data": {"bound_claims": {
                     "kubernetes.io/namespace": "openbao",
                     "/kubernetes.io/serviceaccount/name": "bao-backup-serviceaccount",
                     "sub": "system:serviceaccount:openbao:bao-backup-serviceaccount"}}},
            ]},
        }))
        .unwrap();
        let mut problems = Vec::new();
        check(&spec, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            warnings(&spec),
            [
                r#"spec.selfInit.requests[1].data.bound_claims."kubernetes.io/namespace": use "/kubernetes.io/namespace": OpenBao reads a key without a leading / as a top-level claim name, so ServiceAccount tokens never match"#
            ]
        );
    }

    #[test]
    fn raft_joins_every_peer_over_tls() {
        let spec = OpenBaoClusterSpec {
            replicas: Some(3),
            version: Some("2.4.1".into()),
            ..Default::default()
        };
        let config = render("bao", "prod", &spec);
        let raft = &config["storage"]["raft"];
        assert_eq!(raft["path"], "/openbao/data");
        let joins = raft["retry_join"].as_array().unwrap();
        assert_eq!(joins.len(), 3);
        assert_eq!(
            joins[2],
            json!({"leader_api_addr": "https://bao-2.bao-internal.prod.svc:8200",
                   "leader_ca_cert_file": "/openbao/tls/ca.crt"})
        );
        let tcp = &config["listener"][0]["tcp"];
        assert_eq!(tcp["tls_cert_file"], "/openbao/tls/tls.crt");
        assert!(tcp.get("tls_disable").is_none());
        assert_eq!(config["service_registration"], json!({"kubernetes": {}}));
        assert!(config.get("initialize").is_none());
    }

    #[test]
    fn extra_config_merges_but_cannot_take_over() {
        let spec: OpenBaoClusterSpec = serde_json::from_value(json!({
            "version": "2.4.1",
            "config": {"log_level": "debug", "ui": false, "storage": {"file": {}},
                       "seal": {"static": {"current_key_id": "k1", "current_key": "file:///k"}}},
        }))
        .unwrap();
        let config = render("bao", "prod", &spec);
        assert_eq!(config["log_level"], "debug");
        assert_eq!(config["ui"], false);
        assert!(config["storage"]["raft"].is_object(), "storage stays raft");
        let mut problems = Vec::new();
        check(&spec, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("spec.config.storage:"));
    }

    #[test]
    fn self_init_mistakes_name_their_field() {
        let spec: OpenBaoClusterSpec = serde_json::from_value(json!({
            "version": "2.4.1",
            "selfInit": {"enabled": true, "requests": [
                {"name": "a", "operation": "update", "path": "auth/jwt/config",
                 "authMethod": {"type": "jwt"}},
                {"name": "a", "operation": "update", "path": "sys/policies/acl/x",
                 "policy": {"policy": "p"}, "data": {"k": "v"}},
            ]},
        }))
        .unwrap();
        let mut problems = Vec::new();
        check(&spec, &mut problems);
        let text = problems.join("\n");
        for expected in [
            "spec.selfInit needs auto-unseal (OpenBao cannot keep Shamir keys it made itself): add spec.seal.static.secretKeyRef",
            "spec.selfInit.requests[1].name: \"a\" is used twice",
            "spec.selfInit.requests[1]: give at most one of",
            "spec.selfInit.requests[0].authMethod: applies to paths under sys/auth/",
        ] {
            assert!(text.contains(expected), "{expected} in:\n{text}");
        }
    }
}
