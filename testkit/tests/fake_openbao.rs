//! The fake OpenBao over HTTP: the answers the backup and restore paths rely
//! on, checked against OpenBao's documented behaviour.

use std::collections::HashMap;

use testkit::jwt::JwtIssuer;
use testkit::snapshot::write_snapshot;
use testkit::{FakeConfig, FakeOpenBao, Health, JwtRole, SnapshotSpec};

const ROOT: &str = "s.root";

async fn snapshot(fake: &FakeOpenBao, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/v1/sys/storage/raft/snapshot", fake.url()))
        .header("X-Vault-Token", token)
        .send()
        .await
        .unwrap()
}

async fn restore(fake: &FakeOpenBao, path: &str, token: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/sys/storage/raft/{path}", fake.url()))
        .header("X-Vault-Token", token)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn config() -> FakeConfig {
    FakeConfig::new(SnapshotSpec::new(100_000, 1))
        .with_token(ROOT, &["root"])
        .with_token("s.backup", &["backup"])
        .with_token("s.restore", &["restore"])
}

#[tokio::test]
async fn health_codes_follow_the_node_state() {
    let fake = FakeOpenBao::start(config()).await;
    for (health, code) in [
        (Health::Active, 200),
        (Health::Standby, 429),
        (Health::PerformanceStandby, 473),
        (Health::Uninitialized, 501),
        (Health::Sealed, 503),
    ] {
        fake.set_health(health);
        let resp = reqwest::get(format!("{}/v1/sys/health", fake.url()))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), code, "{health:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            body["sealed"],
            matches!(health, Health::Sealed | Health::Uninitialized)
        );
    }
    // A sealed node refuses everything else, with OpenBao's error body.
    let resp = snapshot(&fake, ROOT).await;
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0], "Vault is sealed");
}

#[tokio::test]
async fn snapshot_needs_read_on_its_path() {
    let fake = FakeOpenBao::start(config()).await;
    for (token, code) in [
        ("s.backup", 200),
        (ROOT, 200),
        ("s.restore", 403),
        ("s.unknown", 403),
        ("", 403),
    ] {
        assert_eq!(
            snapshot(&fake, token).await.status().as_u16(),
            code,
            "token {token:?}"
        );
    }
}

#[tokio::test]
async fn restore_installs_only_verified_archives() {
    let fake = FakeOpenBao::start(config()).await;
    let archive = snapshot(&fake, "s.backup")
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();

    // The backup policy cannot restore.
    let resp = restore(&fake, "snapshot", "s.backup", archive.clone()).await;
    assert_eq!(resp.status().as_u16(), 403);

    // One flipped bit in state.bin: the checksums catch it.
    let mut corrupt = Vec::new();
    let stored = SnapshotSpec {
        gzip_level: 0,
        ..SnapshotSpec::new(100_000, 1)
    };
    write_snapshot(&stored, b"fake-barrier-key", &mut corrupt).unwrap();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 1;
    let resp = restore(&fake, "snapshot", "s.restore", corrupt).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(
        fake.restored().is_empty(),
        "a refused snapshot must change nothing"
    );

    // From another cluster (other barrier key): refused, unless forced.
    let mut foreign = Vec::new();
    write_snapshot(
        &SnapshotSpec::new(5_000, 2),
        b"another-barrier",
        &mut foreign,
    )
    .unwrap();
    let resp = restore(&fake, "snapshot", "s.restore", foreign.clone()).await;
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    let message = body["errors"][0].as_str().unwrap();
    assert!(message.contains("sealed hashes"), "{message}");
    let resp = restore(&fake, "snapshot-force", "s.restore", foreign).await;
    assert_eq!(resp.status().as_u16(), 204);

    let resp = restore(&fake, "snapshot", "s.restore", archive.clone()).await;
    assert_eq!(resp.status().as_u16(), 204);
    let restored = fake.restored();
    assert_eq!(restored.len(), 2);
    assert!(restored[0].forced && !restored[1].forced);
    assert_eq!(
        restored[1].sha256,
        fake.served()[0].sha256,
        "the installed snapshot is the one served"
    );
    assert_eq!(restored[1].size, archive.len() as u64);
}

#[tokio::test]
async fn jwt_login_issues_a_token_with_the_role_policies() {
    let issuer = JwtIssuer::generate();
    let mut config = config();
    config.jwt_keys = vec![issuer.public_key()];
    config.jwt_roles.insert(
        "backup".into(),
        JwtRole {
            bound_audiences: vec!["openbao-internal".into()],
            bound_claims: HashMap::new(),
            policies: vec!["backup".into()],
            ttl_seconds: 60,
        },
    );
    let fake = FakeOpenBao::start(config).await;
    let jwt = issuer.service_account_token("ns", "sa", "openbao-internal");
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/auth/jwt/login", fake.url()))
        .json(&serde_json::json!({"role": "backup", "jwt": jwt}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["auth"]["client_token"].as_str().unwrap();
    assert_eq!(
        login["auth"]["policies"],
        serde_json::json!(["default", "backup"])
    );
    assert_eq!(snapshot(&fake, token).await.status().as_u16(), 200);
}
