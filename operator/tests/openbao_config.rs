//! The configuration the operator renders for
//! examples/openbaocluster-selfinit.yaml, run by the real OpenBao (`bao`,
//! from scripts/setup) on loopback: the static seal auto-unseals,
//! self-init sets up JWT auth, and the backup ServiceAccount's token logs
//! in with the documented role and reads a Raft snapshot. The role as it
//! was first documented (`kubernetes.io/namespace`, no leading `/`)
//! refuses that token.
//!
//! What only a Kubernetes pod has is swapped for loopback: plain HTTP on
//! free ports, one node (no `retry_join`, no service registration), a
//! temporary Raft directory and seal key file, and our test issuer's
//! public key instead of the API server's OIDC discovery.

use std::path::Path;

use operator::api::OpenBaoCluster;
use operator::{names, openbao_config};
use serde_json::{Value, json};
use testkit::jwt::JwtIssuer;
use testkit::openbao::Node;

const CLUSTER: &str = "selfinit-cluster";
const NAMESPACE: &str = "openbao";
const AUDIENCE: &str = "openbao-internal";

#[tokio::test]
async fn the_self_init_example_lets_the_backup_account_take_a_snapshot() {
    let issuer = JwtIssuer::generate();
    let example: OpenBaoCluster = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/openbaocluster-selfinit.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut config = openbao_config::render(CLUSTER, NAMESPACE, &example.spec);
    add_unslashed_role(&mut config);
    let bao = start(config, &issuer).await;

    let token =
        issuer.service_account_token(NAMESPACE, &names::service_account_name(CLUSTER), AUDIENCE);
    let (status, body) = login(&bao, "backup", &token).await;
    assert_eq!(status, 200, "{body}\n{}", bao.log());
    let client_token = body["auth"]["client_token"].as_str().unwrap();

    let snapshot = reqwest::Client::new()
        .get(format!("{}/v1/sys/storage/raft/snapshot", bao.url))
        .header("X-Vault-Token", client_token)
        .send()
        .await
        .unwrap();
    assert_eq!(snapshot.status(), 200);
    let bytes = snapshot.bytes().await.unwrap();
    assert_eq!(bytes[..2], [0x1f, 0x8b], "a gzip archive");

    let (status, body) = login(&bao, "unslashed", &token).await;
    assert_eq!(status, 400, "{body}");
    let error = body["errors"][0].as_str().unwrap();
    // Either unslashed claim is missing, whichever OpenBao checks first.
    assert!(
        error.contains(r#"claim "kubernetes.io/namespace" is missing"#)
            || error.contains(r#"claim "kubernetes.io/serviceaccount/name" is missing"#),
        "{error}"
    );
}

/// A second self-init role like the documented `backup` role, but with
/// the `bound_claims` keys written without their leading `/`, as the
/// example first had them.
fn add_unslashed_role(config: &mut Value) {
    let requests = config["initialize"][0]["selfInit"]["request"]
        .as_array_mut()
        .unwrap();
    let mut role = requests
        .iter()
        .find_map(|r| r.get("create-backup-role"))
        .unwrap()
        .clone();
    role["path"] = json!("auth/jwt/role/unslashed");
    let claims = role["data"]["bound_claims"].as_object().unwrap();
    role["data"]["bound_claims"] = claims
        .iter()
        .map(|(k, v)| (k.trim_start_matches('/').to_string(), v.clone()))
        .collect();
    requests.push(json!({ "create-unslashed-role": role }));
}

/// The rendered configuration of `CLUSTER`'s first pod, run by real
/// OpenBao with what only a pod has swapped for loopback.
async fn start(mut config: Value, issuer: &JwtIssuer) -> Node {
    let (dir, api, cluster) = Node::scratch("selfinit");
    std::fs::create_dir_all(&dir).unwrap();
    on_loopback(&mut config, &dir, api, cluster, issuer);
    let url = format!("http://127.0.0.1:{api}");
    // The pods give each node its addresses the same way.
    let env = [
        ("BAO_API_ADDR", url.clone()),
        ("BAO_CLUSTER_ADDR", format!("https://127.0.0.1:{cluster}")),
        ("BAO_RAFT_NODE_ID", format!("{CLUSTER}-0")),
    ];
    Node::start_config(&dir, &config, url, &env)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn login(node: &Node, role: &str, jwt: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/auth/jwt/login", node.url))
        .json(&json!({"role": role, "jwt": jwt}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The rendered configuration, made to run here: plain HTTP on
/// `api`/`cluster`, a single Raft node in `dir` that starts fast, no
/// Kubernetes service registration, the seal key in a file of 32 random
/// bytes, and JWT auth trusting `issuer` instead of the API server.
fn on_loopback(config: &mut Value, dir: &Path, api: u16, cluster: u16, issuer: &JwtIssuer) {
    let tcp = &mut config["listener"][0]["tcp"];
    tcp["address"] = json!(format!("127.0.0.1:{api}"));
    tcp["cluster_address"] = json!(format!("127.0.0.1:{cluster}"));
    let tcp = tcp.as_object_mut().unwrap();
    tcp.remove("tls_cert_file");
    tcp.remove("tls_key_file");
    tcp.insert("tls_disable".into(), json!(true));

    let raft = &mut config["storage"]["raft"];
    raft["path"] = json!(dir.join("data"));
    raft["performance_multiplier"] = json!(1);
    raft.as_object_mut().unwrap().remove("retry_join");
    config
        .as_object_mut()
        .unwrap()
        .remove("service_registration");

    let key = dir.join("seal.key");
    std::fs::write(&key, testkit::random::<32>()).unwrap();
    let seal = &mut config["seal"]["static"]["current_key"];
    assert_eq!(seal, "file:///openbao/seal/key", "the example's Secret key");
    *seal = json!(format!("file://{}", key.display()));

    let requests = config["initialize"][0]["selfInit"]["request"]
        .as_array_mut()
        .unwrap();
    let jwt_config = requests
        .iter_mut()
        .find_map(|r| r.get_mut("configure-jwt-auth"))
        .unwrap();
    assert_eq!(jwt_config["path"], "auth/jwt/config");
    jwt_config["data"] = json!({"jwt_validation_pubkeys": [issuer.public_key_pem()]});
}
