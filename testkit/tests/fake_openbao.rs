//! The fake OpenBao held to the real one: the same requests go to a real
//! `bao` node and to the fake, and every answer the backup and restore
//! paths read (status code, OpenBao's error message) must be the same.

use std::collections::HashMap;

use serde_json::{Value, json};
use testkit::jwt::JwtIssuer;
use testkit::openbao::JwtAuth;
use testkit::snapshot::write_snapshot;
use testkit::{Cluster, ClusterSpec, FakeConfig, FakeOpenBao, Health, JwtRole, SnapshotSpec};

const BACKUP: &str = "backup-token";
const RESTORE: &str = "restore-token";
const DEFAULT: &str = "default-token";

/// A real node and a fake one, set up alike.
struct Pair {
    real: Cluster,
    fake: FakeOpenBao,
    issuer: JwtIssuer,
}

/// The role both servers know, binding the namespace by JSON pointer, and
/// one binding it the way the seed's documentation did (no leading `/`).
fn roles() -> [(&'static str, &'static str); 2] {
    [
        ("backup", "/kubernetes.io/namespace"),
        ("unslashed", "kubernetes.io/namespace"),
    ]
}

impl Pair {
    async fn start() -> Self {
        let issuer = JwtIssuer::generate();
        let mut spec = ClusterSpec::single()
            .with_token(BACKUP, &["backup"])
            .with_token(RESTORE, &["restore"])
            .with_token(DEFAULT, &["default"]);
        spec.jwt = Some(JwtAuth {
            keys: vec![issuer.public_key_pem()],
            roles: roles()
                .iter()
                .map(|(name, claim)| {
                    let role = json!({
                        "role_type": "jwt",
                        "user_claim": "sub",
                        "bound_audiences": ["openbao-internal"],
                        "bound_claims": { *claim: "prod" },
                        "token_policies": ["backup"],
                        "token_ttl": "5m",
                    });
                    (name.to_string(), role)
                })
                .collect(),
        });
        let real = Cluster::start(spec).await;

        let mut config = FakeConfig::new(SnapshotSpec::new(100_000, 1))
            .with_token(BACKUP, &["backup"])
            .with_token(RESTORE, &["restore"])
            .with_token(DEFAULT, &["default"]);
        config.jwt_keys = vec![issuer.public_key()];
        for (name, claim) in roles() {
            config.jwt_roles.insert(
                name.into(),
                JwtRole {
                    bound_audiences: vec!["openbao-internal".into()],
                    bound_claims: HashMap::from([(claim.into(), "prod".into())]),
                    policies: vec!["backup".into()],
                    ttl_seconds: 300,
                },
            );
        }
        let fake = FakeOpenBao::start(config).await;
        Self { real, fake, issuer }
    }

    /// The same request to both; their (status, first error) must agree.
    async fn same(&self, what: &str, request: impl Fn(&str) -> reqwest::RequestBuilder) -> u16 {
        let real = answer(request(&self.real.url().await)).await;
        let fake = answer(request(&self.fake.url())).await;
        assert_eq!(
            fake, real,
            "{what}: the fake answers (left) unlike OpenBao (right)"
        );
        real.0
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["errors"][0].clone())
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn snapshot_and_login_answers_match_the_real_server() {
    let pair = Pair::start().await;
    assert_eq!(
        pair.same("health", |url| http().get(format!("{url}/v1/sys/health")))
            .await,
        200
    );
    for (token, code) in [(BACKUP, 200), (RESTORE, 403), (DEFAULT, 403), ("nope", 403)] {
        let status = pair
            .same(&format!("snapshot with {token}"), |url| {
                http()
                    .get(format!("{url}/v1/sys/storage/raft/snapshot"))
                    .header("X-Vault-Token", token)
            })
            .await;
        assert_eq!(status, code, "{token}");
    }

    let now = chrono::Utc::now().timestamp();
    let claims = |aud: &str, ns: &str, exp: i64| {
        json!({"sub": "system:serviceaccount:prod:backup", "aud": [aud], "iat": now - 10,
               "exp": exp, "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": "backup"}}})
    };
    let stranger = JwtIssuer::generate();
    let cases = [
        (
            "good",
            "backup",
            pair.issuer
                .sign(&claims("openbao-internal", "prod", now + 600)),
            200,
        ),
        (
            "wrong audience",
            "backup",
            pair.issuer.sign(&claims("vault", "prod", now + 600)),
            400,
        ),
        (
            "wrong namespace",
            "backup",
            pair.issuer
                .sign(&claims("openbao-internal", "dev", now + 600)),
            400,
        ),
        (
            "expired",
            "backup",
            pair.issuer
                .sign(&claims("openbao-internal", "prod", now - 3600)),
            400,
        ),
        (
            "foreign signer",
            "backup",
            stranger.sign(&claims("openbao-internal", "prod", now + 600)),
            400,
        ),
        (
            "unknown role",
            "admin",
            pair.issuer
                .sign(&claims("openbao-internal", "prod", now + 600)),
            400,
        ),
        (
            "unslashed claim",
            "unslashed",
            pair.issuer
                .sign(&claims("openbao-internal", "prod", now + 600)),
            400,
        ),
    ];
    for (name, role, jwt, code) in cases {
        let status = pair
            .same(&format!("login: {name}"), |url| {
                http()
                    .post(format!("{url}/v1/auth/jwt/login"))
                    .json(&json!({"role": role, "jwt": jwt}))
            })
            .await;
        assert_eq!(status, code, "login: {name}");
    }
}

#[tokio::test]
async fn restore_answers_match_the_real_server() {
    let pair = Pair::start().await;
    let token_snapshot = |url: String| async move {
        http()
            .get(format!("{url}/v1/sys/storage/raft/snapshot"))
            .header("X-Vault-Token", BACKUP)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    };
    let real_archive = token_snapshot(pair.real.url().await).await;
    let fake_archive = token_snapshot(pair.fake.url()).await;
    let restore = |path: &'static str, token: &'static str, real: Vec<u8>, fake: Vec<u8>| {
        let pair = &pair;
        async move {
            let real = answer(
                http()
                    .post(format!(
                        "{}/v1/sys/storage/raft/{path}",
                        pair.real.url().await
                    ))
                    .header("X-Vault-Token", token)
                    .body(real),
            )
            .await;
            let fake = answer(
                http()
                    .post(format!("{}/v1/sys/storage/raft/{path}", pair.fake.url()))
                    .header("X-Vault-Token", token)
                    .body(fake),
            )
            .await;
            (real, fake)
        }
    };

    // The backup policy cannot restore: the same refusal.
    let (real, fake) = restore(
        "snapshot",
        BACKUP,
        real_archive.clone(),
        fake_archive.clone(),
    )
    .await;
    assert_eq!(fake, real);
    assert_eq!(real.0, 403);

    // A corrupted archive: both refuse it and install nothing.
    let flip = |mut archive: Vec<u8>| {
        let middle = archive.len() / 2;
        archive[middle] ^= 1;
        archive
    };
    let (real, fake) = restore(
        "snapshot",
        RESTORE,
        flip(real_archive.clone()),
        flip(fake_archive.clone()),
    )
    .await;
    assert_eq!(fake, real, "a flipped byte");
    assert_eq!(real.0, 500);
    assert!(pair.fake.restored().is_empty());

    // From another cluster: refused without force, installed with it.
    let other = Cluster::start(ClusterSpec::single()).await;
    let mut foreign = Vec::new();
    write_snapshot(
        &SnapshotSpec::new(5_000, 2),
        b"another-barrier",
        &mut foreign,
    )
    .unwrap();
    let (real, fake) = restore("snapshot", RESTORE, other.snapshot().await, foreign.clone()).await;
    assert_eq!(fake, real, "a snapshot of another cluster");
    let (real, fake) = restore("snapshot-force", RESTORE, other.snapshot().await, foreign).await;
    assert_eq!((fake.0, real.0), (204, 204), "{real:?} / {fake:?}");
    assert!(pair.fake.restored()[0].forced);
}

/// What `sys/health` says, as the leader search reads it.
async fn health(url: &str) -> (u16, Value, Value, Value) {
    let response = http()
        .get(format!("{url}/v1/sys/health"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["initialized"].clone(),
        body["sealed"].clone(),
        body["standby"].clone(),
    )
}

#[tokio::test]
async fn health_matches_real_nodes_in_every_state() {
    let fake = FakeOpenBao::start(FakeConfig::new(SnapshotSpec::new(1000, 1))).await;
    let active = Cluster::start(ClusterSpec::single()).await;
    let uninitialized = testkit::openbao::Node::start_uninitialized().await.unwrap();
    let sealed = testkit::openbao::Node::start_sealed().await.unwrap();
    for (state, real) in [
        (Health::Active, active.url().await),
        (Health::Uninitialized, uninitialized.url.clone()),
        (Health::Sealed, sealed.url.clone()),
    ] {
        fake.set_health(state);
        assert_eq!(health(&fake.url()).await, health(&real).await, "{state:?}");
    }
    // Standbys are checked in a real Raft cluster by the backup tests; open
    // source OpenBao has no performance standbys, only the fake does.
    fake.set_health(Health::PerformanceStandby);
    assert_eq!(health(&fake.url()).await.0, 473);
}

/// A restore sent to a standby: OpenBao takes the upload, cannot apply it
/// ("node is not the leader") and seals that node. The fake does the same.
#[tokio::test]
async fn a_restore_sent_to_a_standby_seals_it_in_both() {
    let real = Cluster::start(ClusterSpec::three_nodes().with_token(RESTORE, &["restore"])).await;
    let fake = FakeOpenBao::start(
        FakeConfig::new(SnapshotSpec::new(1000, 1)).with_token(RESTORE, &["restore"]),
    )
    .await;
    fake.set_health(Health::Standby);
    let active = real.url().await;
    let standby = real.urls().into_iter().find(|u| *u != active).unwrap();
    let snapshot = real.snapshot().await;
    let post = |url: String, body: Vec<u8>| async move {
        answer(
            http()
                .post(format!("{url}/v1/sys/storage/raft/snapshot"))
                .header("X-Vault-Token", RESTORE)
                .body(body),
        )
        .await
    };
    let mut archive = Vec::new();
    write_snapshot(
        &SnapshotSpec::new(1000, 1),
        b"fake-barrier-key",
        &mut archive,
    )
    .unwrap();
    let (real_answer, fake_answer) = (
        post(standby.clone(), snapshot).await,
        post(fake.url(), archive).await,
    );
    assert_eq!(fake_answer, real_answer);
    assert_eq!(real_answer.0, 204);
    // The real standby seals itself within a few seconds.
    let mut sealed = false;
    for _ in 0..100 {
        if health(&standby).await.0 == 503 {
            sealed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(sealed, "the real standby sealed itself");
    assert_eq!(health(&fake.url()).await.0, 503);
}
