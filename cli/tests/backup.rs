//! The `backup` command end to end: the real binary, real OpenBao (`bao`,
//! single nodes and a 3-node Raft cluster, behind a proxy that records
//! and breaks snapshot downloads) and a real Garage S3 server. The fake
//! OpenBao serves only what a real node cannot: archives of an exact size
//! and of more than a GiB, and a performance standby. After every failure
//! the bucket must hold nothing.

mod support;

use support::{Bucket, MIB, Source, TOKEN, run_cli, set, sha256_hex, succeed, unset};
use testkit::jwt::JwtIssuer;
use testkit::openbao::{JwtAuth, Node};
use testkit::s3proxy::{Injection, Operation, S3Proxy};
use testkit::{
    Cluster, ClusterSpec, FakeConfig, FakeOpenBao, Fault, Health, OpenBaoProxy, SnapshotSpec,
};

/// The fake, behind a proxy, for archives a real node cannot produce.
async fn fake(spec: SnapshotSpec) -> (FakeOpenBao, OpenBaoProxy) {
    let fake = FakeOpenBao::start(FakeConfig::new(spec).with_token(TOKEN, &["backup"])).await;
    let proxy = OpenBaoProxy::start(&fake.url()).await;
    (fake, proxy)
}

/// Checks a successful run against what OpenBao served and what the bucket
/// holds: object bytes, manifest, metadata.
async fn assert_backed_up(
    bucket: &Bucket,
    openbao: &OpenBaoProxy,
    run: &support::Run,
) -> serde_json::Value {
    assert!(run.ok(), "backup failed:\n{}", run.all_output());
    let result = &run.result;
    assert_eq!(result["status"], "succeeded");
    let served = openbao
        .served()
        .last()
        .cloned()
        .expect("OpenBao served a snapshot");
    assert!(served.complete);
    assert_eq!(result["size"], served.size);
    assert_eq!(result["sha256"], served.sha256);

    let key = result["key"].as_str().unwrap();
    assert!(
        key.starts_with("clusters/test/prod/bao/") && key.ends_with(".snap"),
        "{key}"
    );
    assert_eq!(
        bucket.digest(key).await,
        (served.size, served.sha256.clone()),
        "object bytes differ from the snapshot"
    );

    let manifest_key = format!("{key}.manifest.json");
    assert_eq!(result["manifestKey"], manifest_key);
    let manifest: serde_json::Value =
        serde_json::from_slice(&bucket.read(&manifest_key).await).unwrap();
    assert_eq!(manifest["snapshot"]["sha256"], served.sha256);
    assert_eq!(manifest["snapshot"]["size"], served.size);
    assert_eq!(manifest["cluster"], "bao");
    assert!(
        manifest["raft"]["term"].as_u64() > Some(0) && manifest["raft"]["index"].as_u64() > Some(0),
        "Raft metadata from the archive: {}",
        manifest["raft"]
    );
    assert_eq!(manifest["key"], key);

    let head = bucket
        .client
        .head_object()
        .bucket(&bucket.name)
        .key(key)
        .send()
        .await
        .unwrap();
    let meta = head.metadata().unwrap();
    assert_eq!(meta["openbao-cluster"], "bao");
    assert_eq!(
        meta["source-node"],
        manifest["sourceNode"].as_str().unwrap()
    );
    assert_eq!(bucket.open_uploads().await, 0);
    let mut keys = bucket.keys().await;
    keys.sort();
    assert_eq!(keys, vec![key.to_string(), manifest_key]);
    manifest
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trips_from_empty_state_to_part_boundaries() {
    let part = 5 * MIB;
    let cases = [
        ("empty state", SnapshotSpec::new(0, 1)),
        ("one small part", SnapshotSpec::new(100 * 1024, 2)),
        ("exactly one part", SnapshotSpec::with_archive_size(part, 3)),
        (
            "exactly three parts",
            SnapshotSpec::with_archive_size(3 * part, 4),
        ),
        (
            "one byte over two parts",
            SnapshotSpec::with_archive_size(2 * part + 1, 5),
        ),
    ];
    for (name, spec) in cases {
        let expected_parts = spec.archive_size().div_ceil(part);
        let bucket = Bucket::new("round-trip").await;
        let (_fake, openbao) = fake(spec).await;
        let run = run_cli(&bucket.args(&openbao.url()), &[]).await;
        let manifest = assert_backed_up(&bucket, &openbao, &run).await;
        assert_eq!(manifest["upload"]["parts"], expected_parts, "{name}");
        assert_eq!(run.result["parts"], expected_parts, "{name}");
    }
}

/// A source that writes 64 MiB at a time, at the default part size and
/// concurrency and at the README's tuning example: the memory a backup
/// adds to the binary's own (that of backing up a tiny snapshot) stays
/// within the documented `(concurrency + 1) x partSize`, and the
/// operator's Job limit keeps a real margin over the peak.
#[tokio::test(flavor = "multi_thread")]
async fn streams_more_than_a_gibibyte_in_bounded_memory() {
    let peak = async |state_size: u64, part_size: u64, concurrency: u64| {
        let bucket = Bucket::new("big").await;
        let spec = SnapshotSpec {
            gzip_level: 0,
            ..SnapshotSpec::new(state_size, 6)
        };
        let fake = FakeOpenBao::start(
            FakeConfig::new(spec)
                .with_token(TOKEN, &["backup"])
                .with_write_size(64 * MIB as usize),
        )
        .await;
        let openbao = OpenBaoProxy::start(&fake.url()).await;
        let mut args = bucket.args(&openbao.url());
        set(&mut args, "--part-size", &part_size.to_string());
        set(&mut args, "--concurrency", &concurrency.to_string());
        let run = run_cli(&args, &[]).await;
        assert_backed_up(&bucket, &openbao, &run).await;
        assert!(run.result["size"].as_u64().unwrap() > state_size);
        assert!(
            state_size < part_size || run.stderr().contains("streamed"),
            "progress lines expected:\n{}",
            run.stderr()
        );
        run.result["peakMemoryBytes"]
            .as_u64()
            .expect("peak memory reported")
    };
    let own = peak(MIB, 5 * MIB, 1).await;
    for (part_size, concurrency, state_size) in
        [(10 * MIB, 3, 1100 * MIB), (20 * MIB, 5, 400 * MIB)]
    {
        let peak = peak(state_size, part_size, concurrency).await;
        let parts = (concurrency + 1) * part_size;
        let limit = job_memory_limit(part_size, concurrency);
        let case = format!("{} MiB x {concurrency}", part_size / MIB);
        eprintln!(
            "{case}: peak {} MiB, of which the binary's own {} MiB; Job limit {} MiB",
            peak / MIB,
            own / MIB,
            limit / MIB
        );
        // Before the parts were cut straight from the stream, the stages
        // between held about twice as much (61-71 MiB more at the defaults).
        // The slack covers network buffers and allocator rounding.
        assert!(
            peak <= own + parts + parts / 4,
            "{case}: the backup added {} MiB, over (concurrency + 1) x partSize = {} MiB",
            (peak - own) / MIB,
            parts / MIB
        );
        assert!(
            peak + peak / 3 <= limit,
            "{case}: the Job limit {} MiB leaves no margin over the peak {} MiB",
            limit / MIB,
            peak / MIB
        );
    }
}

/// The memory limit the operator gives a backup Job without transforms.
fn job_memory_limit(part_size: u64, concurrency: u64) -> u64 {
    contract::executor::memory::job_memory(part_size, concurrency as u16, 0).limit
}

/// A real 3-node Raft cluster, a sealed node and one never initialized,
/// plus the fake's performance standby (open-source OpenBao has none), each
/// behind a proxy that counts snapshot requests.
#[tokio::test(flavor = "multi_thread")]
async fn finds_the_active_node_and_never_snapshots_the_others() {
    let bucket = Bucket::new("leader").await;
    let cluster = Cluster::start(ClusterSpec::three_nodes().with_token(TOKEN, &["backup"])).await;
    let sealed = Node::start_sealed().await.unwrap();
    let uninitialized = Node::start_uninitialized().await.unwrap();
    let perf_standby = FakeOpenBao::start(FakeConfig::new(SnapshotSpec::new(1024, 7))).await;
    perf_standby.set_health(Health::PerformanceStandby);
    let active = cluster.url().await;
    let mut upstreams = vec![
        sealed.url.clone(),
        uninitialized.url.clone(),
        perf_standby.url(),
    ];
    // The standbys first: they must be passed over.
    let mut nodes = cluster.urls();
    nodes.sort_by_key(|url| *url == active);
    upstreams.extend(nodes);
    let mut proxies = Vec::new();
    for upstream in &upstreams {
        proxies.push(OpenBaoProxy::start(upstream).await);
    }
    let addrs = proxies
        .iter()
        .map(|p| p.url())
        .collect::<Vec<_>>()
        .join(",");
    let run = run_cli(&bucket.args(&addrs), &[]).await;
    let leader = proxies.last().unwrap();
    let manifest = assert_backed_up(&bucket, leader, &run).await;
    assert_eq!(manifest["sourceNode"], format!("{}/", leader.url()));
    for proxy in &proxies[..proxies.len() - 1] {
        assert_eq!(
            proxy.snapshot_requests(),
            0,
            "a non-active node was asked for a snapshot"
        );
    }

    // No active node at all: a clear error listing every node's state.
    let bucket = Bucket::new("no-leader").await;
    let addrs = format!(
        "{},{},http://127.0.0.1:9",
        proxies[3].url(),
        proxies[0].url()
    );
    let run = run_cli(&bucket.args(&addrs), &[]).await;
    assert!(!run.ok());
    let reason = run.reason();
    assert!(reason.contains("no active OpenBao node"), "{reason}");
    assert!(
        reason.contains("is standby")
            && reason.contains("is sealed")
            && reason.contains("unreachable"),
        "{reason}"
    );
    assert_eq!(run.result["cause"], "no-active-node");
    bucket.assert_untouched().await;
}

/// A node with JWT auth trusting `issuer`, whose role `backup` binds the
/// namespace of a ServiceAccount token by JSON pointer, as documented.
async fn jwt_source(issuer: &JwtIssuer) -> Source {
    let mut spec = ClusterSpec::single();
    spec.jwt = Some(JwtAuth {
        keys: vec![issuer.public_key_pem()],
        roles: vec![(
            "backup".into(),
            serde_json::json!({
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_audiences": ["openbao-internal"],
                "bound_claims": {"/kubernetes.io/namespace": "prod"},
                "token_policies": ["backup"],
                "token_ttl": "5m",
            }),
        )],
    });
    Source::with(spec, 0).await
}

fn jwt_args(bucket: &Bucket, openbao: &OpenBaoProxy, jwt: &str, role: &str) -> Vec<String> {
    let jwt_file = bucket.dir.join("jwt");
    std::fs::write(&jwt_file, jwt).unwrap();
    let mut args = bucket.args(&openbao.url());
    unset(&mut args, "--token-file");
    args.extend([
        "--jwt-role".into(),
        role.into(),
        "--jwt-file".into(),
        jwt_file.to_str().unwrap().into(),
    ]);
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_login_succeeds_with_a_valid_service_account_token() {
    let issuer = JwtIssuer::generate();
    let openbao = jwt_source(&issuer).await;
    let bucket = Bucket::new("jwt-good").await;
    let jwt = issuer.service_account_token("prod", "bao-backup-serviceaccount", "openbao-internal");
    let run = run_cli(&jwt_args(&bucket, &openbao, &jwt, "backup"), &[]).await;
    assert_backed_up(&bucket, &openbao, &run).await;
    assert!(
        run.stderr().contains("openbao-internal"),
        "the audience is logged"
    );
    run.assert_no_secret(&[&jwt, &bucket.garage.secret_access_key]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_jwt_logins_fail_without_touching_the_bucket() {
    let issuer = JwtIssuer::generate();
    let stranger = JwtIssuer::generate();
    let openbao = jwt_source(&issuer).await;
    let now = chrono::Utc::now().timestamp();
    let claims = |aud: &str, ns: &str, exp: i64| serde_json::json!({"sub": "system:serviceaccount:x:y", "aud": [aud], "iat": now - 10, "exp": exp, "kubernetes.io": {"namespace": ns}});
    let cases = [
        (
            "wrong audience",
            issuer.sign(&claims("vault", "prod", now + 600)),
            "backup",
            "audience",
        ),
        (
            "wrong namespace",
            issuer.sign(&claims("openbao-internal", "dev", now + 600)),
            "backup",
            "bound claim",
        ),
        (
            "expired",
            issuer.sign(&claims("openbao-internal", "prod", now - 3600)),
            "backup",
            "expired",
        ),
        (
            "foreign signer",
            stranger.sign(&claims("openbao-internal", "prod", now + 600)),
            "backup",
            "signature",
        ),
        (
            "unknown role",
            issuer.sign(&claims("openbao-internal", "prod", now + 600)),
            "admin",
            "could not be found",
        ),
    ];
    for (name, jwt, role, expected) in cases {
        let bucket = Bucket::new("jwt-bad").await;
        let run = run_cli(&jwt_args(&bucket, &openbao, &jwt, role), &[]).await;
        assert!(!run.ok(), "{name}: must fail");
        let reason = run.reason();
        assert!(
            reason.contains("authentication failed") && reason.contains(expected),
            "{name}: {reason}"
        );
        assert_eq!(run.result["cause"], "auth", "{name}");
        run.assert_no_secret(&[&jwt]);
        bucket.assert_untouched().await;
    }
    assert_eq!(openbao.snapshot_requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_without_the_snapshot_policy_is_refused() {
    let openbao = Source::with(ClusterSpec::single().with_token(TOKEN, &["default"]), 0).await;
    let bucket = Bucket::new("token-policy").await;
    let run = run_cli(&bucket.args(&openbao.url()), &[]).await;
    assert!(!run.ok());
    let reason = run.reason();
    assert!(
        reason.contains("permission denied") && reason.contains("sys/storage/raft/snapshot"),
        "{reason}"
    );
    run.assert_no_secret(&[TOKEN]);
    bucket.assert_untouched().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_openbao_fault_aborts_the_upload() {
    let openbao = Source::start(20).await;
    let full = openbao.cluster.snapshot().await.len() as u64;
    let part = 5 * MIB;
    let cases = [
        (
            "cut before the first part",
            Fault::CutAfter(MIB),
            "broke after",
        ),
        (
            "cut after two parts",
            Fault::CutAfter(2 * part + 12345),
            "broke after",
        ),
        ("stall after a part", Fault::StallAfter(part + 1), "stalled"),
        (
            "clean end inside the archive",
            Fault::TruncateAfter(2 * part + 777),
            "invalid snapshot",
        ),
        (
            "clean end inside the tar end marker",
            Fault::TruncateAfter(full - 600),
            "invalid snapshot",
        ),
        (
            "clean end inside the gzip trailer",
            Fault::TruncateAfter(full - 3),
            "invalid snapshot",
        ),
        ("403", Fault::Status(403), "permission denied"),
        ("503", Fault::Status(503), "503"),
        ("500", Fault::Status(500), "500"),
    ];
    for (name, fault, expected) in cases {
        let bucket = Bucket::new("fault").await;
        openbao.set_fault(fault);
        let mut args = bucket.args(&openbao.url());
        args.extend(["--stall-timeout".into(), "2s".into()]);
        let run = run_cli(&args, &[]).await;
        assert!(!run.ok(), "{name}: must fail");
        let reason = run.reason();
        assert!(reason.contains(expected), "{name}: {reason}");
        run.assert_no_secret(&[TOKEN, &bucket.garage.secret_access_key]);
        bucket.assert_untouched().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_s3_errors_are_retried_per_part() {
    let bucket = Bucket::new("s3-retry").await;
    let proxy = S3Proxy::start(bucket.garage.endpoint.trim_start_matches("http://"), None).await;
    proxy.inject(Injection {
        operation: Operation::UploadPart,
        status: 503,
        times: 2,
    });
    proxy.inject(Injection {
        operation: Operation::UploadPart,
        status: 500,
        times: 1,
    });
    let openbao = Source::start(12).await;
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--endpoint", &proxy.url());
    let run = run_cli(&args, &[]).await;
    assert_backed_up(&bucket, &openbao, &run).await;
    let parts = run.result["parts"].as_u64().unwrap() as usize;
    assert_eq!(parts, 3);
    let (total, failed) = proxy.count(Operation::UploadPart);
    assert_eq!(
        (total, failed),
        (parts + 3, 3),
        "three injected failures, each retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_errors_after_retries_abort_the_upload() {
    let bucket = Bucket::new("s3-fail").await;
    let proxy = S3Proxy::start(bucket.garage.endpoint.trim_start_matches("http://"), None).await;
    proxy.inject(Injection {
        operation: Operation::UploadPart,
        status: 500,
        times: 1000,
    });
    let openbao = Source::start(12).await;
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--endpoint", &proxy.url());
    set(&mut args, "--max-attempts", "2");
    let run = run_cli(&args, &[]).await;
    assert!(!run.ok());
    let reason = run.reason();
    assert!(
        reason.contains("S3 error")
            && reason.contains("UploadPart")
            && reason.contains("InternalError"),
        "{reason}"
    );
    assert_eq!(run.result["cause"], "storage");
    bucket.assert_untouched().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_auth_failures_are_not_retried() {
    let bucket = Bucket::new("s3-auth").await;
    let proxy = S3Proxy::start(bucket.garage.endpoint.trim_start_matches("http://"), None).await;
    let openbao = Source::start(0).await;
    let wrong = "0".repeat(64);
    std::fs::write(bucket.dir.join("s3/secretAccessKey"), &wrong).unwrap();
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--endpoint", &proxy.url());
    let run = run_cli(&args, &[]).await;
    assert!(!run.ok());
    let reason = run.reason();
    assert!(
        reason.contains("CreateMultipartUpload") && reason.contains("check the S3 credentials"),
        "{reason}"
    );
    assert_eq!(
        proxy.count(Operation::CreateMultipartUpload).0,
        1,
        "an auth failure must not be retried"
    );
    run.assert_no_secret(&[&wrong, TOKEN]);
    bucket.assert_untouched().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_manifest_removes_the_object() {
    let bucket = Bucket::new("manifest-fail").await;
    let proxy = S3Proxy::start(bucket.garage.endpoint.trim_start_matches("http://"), None).await;
    proxy.inject(Injection {
        operation: Operation::PutObject,
        status: 403,
        times: 1,
    });
    let openbao = Source::start(1).await;
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--endpoint", &proxy.url());
    let run = run_cli(&args, &[]).await;
    assert!(!run.ok());
    assert!(run.reason().contains("PutObject"), "{}", run.reason());
    bucket.assert_untouched().await;
}

/// CompleteMultipartUpload took effect but its answer was lost (the SDK's
/// retry then gets NoSuchUpload): HeadObject finds the object and the
/// backup finishes. A Complete that did not take effect leaves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_complete_answer_is_checked_before_aborting() {
    let bucket = Bucket::new("complete-lost").await;
    let proxy = S3Proxy::start(bucket.garage.endpoint.trim_start_matches("http://"), None).await;
    proxy.lose_answers(Injection {
        operation: Operation::CompleteMultipartUpload,
        status: 500,
        times: 1,
    });
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--endpoint", &proxy.url());
    let run = run_cli(&args, &[]).await;
    assert_backed_up(&bucket, &openbao, &run).await;
    assert_eq!(
        proxy.count(Operation::CompleteMultipartUpload).1,
        1,
        "the first answer was lost"
    );

    let bucket = Bucket::new("complete-failed").await;
    proxy.inject(Injection {
        operation: Operation::CompleteMultipartUpload,
        status: 500,
        times: 1000,
    });
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--endpoint", &proxy.url());
    set(&mut args, "--max-attempts", "2");
    let run = run_cli(&args, &[]).await;
    assert!(!run.ok());
    assert!(
        run.reason().contains("CompleteMultipartUpload failed"),
        "{}",
        run.reason()
    );
    bucket.assert_untouched().await;
}

/// A SIGKILL (an OOM kill) mid-upload leaves an open upload, a kill after
/// CompleteMultipartUpload an object without a manifest: the next backup
/// sweeps both once they are older than --sweep-after, and reports them.
#[tokio::test(flavor = "multi_thread")]
async fn the_next_backup_sweeps_what_a_killed_one_left() {
    let bucket = Bucket::new("sigkill").await;
    let openbao = Source::start(16).await;
    openbao.set_fault(Fault::StallAfter(12 * MIB));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .args(bucket.args(&openbao.url()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if bucket.open_uploads().await > 0 && openbao.served().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();
    let open = bucket
        .client
        .list_multipart_uploads()
        .bucket(&bucket.name)
        .send()
        .await
        .unwrap();
    assert_eq!(open.uploads().len(), 1, "the killed upload stays");
    let killed = open.uploads()[0].key().unwrap().to_string();
    let orphan = "clusters/test/prod/bao/20261124T030000.000Z-scheduled-0a0b0c.snap";
    bucket
        .client
        .put_object()
        .bucket(&bucket.name)
        .key(orphan)
        .body(b"completed, but no manifest".to_vec().into())
        .send()
        .await
        .unwrap();
    openbao.set_fault(Fault::None);

    // Younger than the default 12h: a backup that may still be running.
    let mut args = bucket.args(&openbao.url());
    let run = run_cli(&args, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert!(run.result.get("swept").is_none(), "{}", run.result);
    assert_eq!(bucket.open_uploads().await, 1);
    let first = run.result["key"].as_str().unwrap().to_string();

    set(&mut args, "--sweep-after", "0s");
    let run = run_cli(&args, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let swept = &run.result["swept"];
    assert_eq!(swept["deletedObjects"], serde_json::json!([orphan]));
    assert_eq!(swept["abortedUploads"], serde_json::json!([killed]));
    assert_eq!(bucket.open_uploads().await, 0);
    let second = run.result["key"].as_str().unwrap().to_string();
    let mut keys = bucket.keys().await;
    keys.sort();
    let mut expected = vec![
        first.clone(),
        format!("{first}.manifest.json"),
        second.clone(),
        format!("{second}.manifest.json"),
    ];
    expected.sort();
    assert_eq!(keys, expected, "only complete backups stay");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_aborts_the_upload() {
    let bucket = Bucket::new("sigterm").await;
    let openbao = Source::start(16).await;
    openbao.set_fault(Fault::StallAfter(12 * MIB));
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_openbao-backup"));
    cmd.args(bucket.args(&openbao.url()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Wait until parts are in the bucket, then stop the Job the way Kubernetes does.
    for _ in 0..100 {
        if bucket.open_uploads().await > 0 && openbao.served().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        bucket.open_uploads().await,
        1,
        "the upload should be under way"
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("backup failed: cancelled: received SIGTERM"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(8), "cancelled has its exit code");
    bucket.assert_untouched().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_the_result_file_and_reads_credentials_from_the_environment() {
    let bucket = Bucket::new("result-file").await;
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    unset(&mut args, "--credentials-dir");
    let result_file = bucket.dir.join("termination-log");
    args.extend(["--kind".into(), "pre-upgrade".into()]);
    let garage = bucket.garage;
    // The operator's way: the result file from the environment.
    let run = run_cli(
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", &garage.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &garage.secret_access_key),
            ("LOG_FORMAT", "json"),
            ("RESULT_FILE", result_file.to_str().unwrap()),
        ],
    )
    .await;
    assert_backed_up(&bucket, &openbao, &run).await;
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result_file).unwrap()).unwrap();
    assert_eq!(written, run.result);
    assert_eq!(written["kind"], "pre-upgrade");
    assert!(written["key"].as_str().unwrap().contains("-pre-upgrade-"));
    for field in [
        "durationSeconds",
        "throughputBytesPerSecond",
        "startedAt",
        "completedAt",
        "sourceNode",
    ] {
        assert!(!written[field].is_null(), "{field} missing from {written}");
    }
    for line in run.stderr().lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("--log-format json: not JSON: {line}"));
    }
    run.assert_no_secret(&[&garage.secret_access_key, TOKEN]);
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_name_the_flag_and_write_a_failed_result() {
    let bucket = Bucket::new("config").await;
    let result_file = bucket.dir.join("result.json");
    let mut args = bucket.args("http://127.0.0.1:9");
    args.extend(["--jwt-role".into(), "backup".into()]);
    // The variable's old name, which Jobs of an older operator set.
    let run = run_cli(
        &args,
        &[("BACKUP_RESULT_FILE", result_file.to_str().unwrap())],
    )
    .await;
    assert!(!run.ok());
    assert!(
        run.reason()
            .contains("both --jwt-role (OPENBAO_JWT_ROLE) and --token-file"),
        "{}",
        run.reason()
    );
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&result_file).unwrap()).unwrap();
    assert_eq!(
        (written["status"].as_str(), written["cause"].as_str()),
        (Some("failed"), Some("config"))
    );
    bucket.assert_untouched().await;
}

/// Under the Hardened profile (as the operator sets it) an endpoint whose
/// name resolves to loopback is refused before any connection; the same
/// endpoint works under Development.
#[tokio::test(flavor = "multi_thread")]
async fn hardened_refuses_an_endpoint_that_resolves_to_loopback() {
    let bucket = Bucket::new("hardened").await;
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    let port = bucket
        .garage
        .endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    unset(&mut args, "--endpoint");
    args.extend(["--endpoint".into(), format!("http://localhost:{port}")]);
    let run = run_cli(
        &args,
        &[
            ("SECURITY_PROFILE", "Hardened"),
            ("SERVICE_CIDRS", "10.96.0.0/12"),
        ],
    )
    .await;
    assert!(!run.ok());
    assert_eq!(run.result["cause"], "config", "{}", run.reason());
    assert!(
        run.reason()
            .contains("--endpoint (S3_ENDPOINT) `http://localhost:")
            && run.reason().contains(
                "is a loopback address: the Hardened profile (SECURITY_PROFILE) refuses it"
            ),
        "{}",
        run.reason()
    );
    bucket.assert_untouched().await;
    let development = run_cli(&args, &[("SECURITY_PROFILE", "Development")]).await;
    assert_backed_up(&bucket, &openbao, &development).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_custom_ca_bundles_for_openbao_and_s3() {
    let ca = testkit::tls::TestCa::generate();
    let bucket = Bucket::new("tls").await;
    let ca_file = bucket.dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let mut spec = ClusterSpec::single().with_token(TOKEN, &["backup"]);
    spec.tls = Some(ca.clone());
    let openbao = Cluster::start(spec).await;
    openbao.fill("tls", 11).await;
    let openbao_url = openbao.url().await;
    let proxy = S3Proxy::start(
        bucket.garage.endpoint.trim_start_matches("http://"),
        Some(ca.clone()),
    )
    .await;
    assert!(openbao_url.starts_with("https://") && proxy.url().starts_with("https://"));

    let mut args = bucket.args(&openbao_url);
    set(&mut args, "--endpoint", &proxy.url());
    // Without the CA, both sides refuse the certificate with a clear reason.
    let run = run_cli(&args, &[]).await;
    assert!(!run.ok());
    assert!(
        run.reason().contains("certificate") && run.reason().contains("UnknownIssuer"),
        "{}",
        run.reason()
    );
    set(&mut args, "--openbao-cacert", ca_file.to_str().unwrap());
    let run = run_cli(&args, &[]).await;
    assert!(!run.ok());
    assert!(
        run.reason().contains("S3 error") && run.reason().contains("certificate"),
        "{}",
        run.reason()
    );
    bucket.assert_untouched().await;

    // With both CAs the backup goes through; over TLS part payloads are
    // unsigned and protected by TLS and their CRC32. The S3 CA comes from the
    // credentials Secret's `caCert` key, as the operator mounts it.
    std::fs::write(bucket.dir.join("s3/caCert"), &ca.ca_pem).unwrap();
    let run = run_cli(&args, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let key = run.result["key"].as_str().unwrap();
    assert_eq!(
        bucket.digest(key).await,
        (
            run.result["size"].as_u64().unwrap(),
            run.result["sha256"].as_str().unwrap().to_string()
        )
    );
    assert_eq!(proxy.count(Operation::UploadPart), (3, 0));
}

fn plugin_path(name: &str) -> String {
    testkit::plugins::plugin_path(name).display().to_string()
}

/// Backups under the cluster's prefix, oldest first (keys sort by time).
async fn backup_keys(bucket: &Bucket) -> Vec<String> {
    let mut keys: Vec<String> = bucket
        .keys()
        .await
        .into_iter()
        .filter(|k| k.ends_with(".snap"))
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn max_count_keeps_the_newest_and_ignores_pre_upgrade_snapshots() {
    let bucket = Bucket::new("max-count").await;
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--max-count", "2");
    let mut taken = Vec::new();
    for kind in ["scheduled", "pre-upgrade", "scheduled", "manual"] {
        set(&mut args, "--kind", kind);
        let run = run_cli(&args, &[]).await;
        assert!(run.ok(), "{}", run.all_output());
        taken.push(run.result["key"].as_str().unwrap().to_string());
        if kind == "manual" {
            let deleted = &run.result["retention"]["deleted"];
            assert_eq!(deleted[0]["key"], taken[0].as_str());
            assert_eq!(deleted[0]["reason"], "beyond the newest 2 (maxCount)");
        }
    }
    // The first scheduled one went; the pre-upgrade snapshot stays.
    assert_eq!(backup_keys(&bucket).await, taken[1..].to_vec());
    for key in &taken[1..] {
        assert!(
            bucket
                .keys()
                .await
                .contains(&format!("{key}.manifest.json"))
        );
    }
    assert!(
        !bucket
            .keys()
            .await
            .contains(&format!("{}.manifest.json", taken[0]))
    );
}

#[tokio::test]
async fn a_retention_plugin_decides_and_the_host_keeps_the_new_backup() {
    let bucket = Bucket::new("retention-plugin").await;
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    for _ in 0..2 {
        assert!(run_cli(&args, &[]).await.ok());
    }
    // This policy (gfs keeping no period) deletes everything, the new backup too.
    let plugin = serde_json::json!({"file": plugin_path("gfs"), "config": {}});
    set(&mut args, "--retention-plugin", &plugin.to_string());
    let run = run_cli(&args, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let key = run.result["key"].as_str().unwrap();
    assert_eq!(backup_keys(&bucket).await, vec![key.to_string()]);
    let report = &run.result["retention"];
    assert_eq!(report["deleted"].as_array().unwrap().len(), 2);
    assert_eq!(report["refused"][0]["key"], key);
    assert_eq!(
        report["refused"][0]["reason"],
        "kept: the backup just taken"
    );
}

#[tokio::test]
async fn a_builtin_retention_plugin_decides_by_name() {
    let bucket = Bucket::new("retention-builtin").await;
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    for _ in 0..2 {
        assert!(run_cli(&args, &[]).await.ok());
    }
    let plugin = serde_json::json!({"file": "builtin:keep-last", "config": {"maxCount": 2}});
    set(&mut args, "--retention-plugin", &plugin.to_string());
    let run = run_cli(&args, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let report = &run.result["retention"];
    assert_eq!(report["deleted"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(
        report["deleted"][0]["reason"],
        "beyond the newest 2 (maxCount)"
    );
    assert_eq!(backup_keys(&bucket).await.len(), 2);
    // The short form: keep-last with no configuration deletes nothing.
    set(&mut args, "--retention-plugin", "builtin:keep-last");
    let run = run_cli(&args, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(backup_keys(&bucket).await.len(), 3);
    // A built-in of the wrong kind is refused before OpenBao is asked.
    let asked = openbao.snapshot_requests();
    set(&mut args, "--retention-plugin", "builtin:zstd");
    let run = run_cli(&args, &[]).await;
    assert!(
        run.reason()
            .contains("builtin:zstd: `zstd` is a transform plugin, not a retention plugin"),
        "{}",
        run.reason()
    );
    assert_eq!(openbao.snapshot_requests(), asked, "OpenBao was not asked");
}

#[tokio::test]
async fn a_retention_plugin_that_cannot_run_stops_the_backup_before_it_starts() {
    let bucket = Bucket::new("retention-bad-plugin").await;
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    // A transform is not a retention plugin.
    set(&mut args, "--retention-plugin", &plugin_path("misbehave"));
    let run = run_cli(&args, &[]).await;
    assert!(!run.ok());
    assert!(
        run.reason().contains("--retention-plugin") && run.reason().contains("transform"),
        "{}",
        run.reason()
    );
    assert_eq!(openbao.snapshot_requests(), 0, "OpenBao was not asked");
    bucket.assert_untouched().await;

    let pinned = serde_json::json!({"file": plugin_path("gfs"), "sha256": "0".repeat(64)});
    set(&mut args, "--retention-plugin", &pinned.to_string());
    let run = run_cli(&args, &[]).await;
    assert!(run.reason().contains("digest mismatch"), "{}", run.reason());
    bucket.assert_untouched().await;
}

fn transform(args: &mut Vec<String>, spec: serde_json::Value) {
    args.extend(["--transform".to_string(), spec.to_string()]);
}

/// zstd then age into Garage: `age -d | zstd -d` gives back the exact
/// snapshot, and the manifest records the chain, without the secret.
#[tokio::test]
async fn a_backup_through_zstd_then_age_is_undone_by_the_age_and_zstd_clis() {
    let bucket = Bucket::new("zstd-age").await;
    let openbao = Source::start(12).await;
    let dir = std::env::temp_dir().join(format!("openbao-backup-zstd-age-{}", std::process::id()));
    let (recipient, identity) = testkit::plugins::age_keypair(&dir);
    let age = testkit::plugins::plugin_path("age");
    let age_sha256 = sha256_hex(&std::fs::read(&age).unwrap());
    let mut args = bucket.args(&openbao.url());
    transform(
        &mut args,
        serde_json::json!({"file": plugin_path("zstd"), "config": {"level": 3}}),
    );
    // The identity rides along as a secret setting (restore needs it): it
    // must reach neither the manifest nor the output.
    transform(
        &mut args,
        serde_json::json!({"file": age, "sha256": age_sha256,
                           "config": {"recipients": [recipient]},
                           "secretFiles": {"identities": identity}}),
    );
    let run = run_cli(&args, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let served = openbao.served().last().cloned().unwrap();
    let key = run.result["key"].as_str().unwrap();
    let stored = bucket.read(key).await;
    assert!(stored.starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(run.result["size"], stored.len());
    assert_eq!(run.result["sha256"], sha256_hex(&stored));
    assert_eq!(run.result["snapshot"]["sha256"], served.sha256);
    assert_eq!(run.result["snapshot"]["size"], served.size);

    let plain = testkit::plugins::run_with_stdin(
        std::process::Command::new("sh").args([
            "-c",
            &format!("age -d -i {} | zstd -d -c", identity.display()),
        ]),
        stored.clone(),
    );
    assert_eq!(plain.len() as u64, served.size);
    assert_eq!(sha256_hex(&plain), served.sha256, "age -d | zstd -d");

    let manifest_bytes = bucket.read(&format!("{key}.manifest.json")).await;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["snapshot"]["sha256"], served.sha256);
    assert_eq!(manifest["object"]["sha256"], sha256_hex(&stored));
    assert_eq!(manifest["object"]["size"], stored.len());
    let chain = manifest["transforms"].as_array().unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0]["name"], "zstd");
    assert_eq!(chain[0]["config"], serde_json::json!({"level": 3}));
    assert_eq!(
        chain[0]["sha256"],
        sha256_hex(&std::fs::read(plugin_path("zstd")).unwrap())
    );
    assert_eq!(chain[1]["name"], "age");
    assert_eq!(chain[1]["sha256"], age_sha256);
    assert_eq!(
        chain[1]["config"],
        serde_json::json!({"recipients": [recipient]})
    );
    let secret = std::fs::read_to_string(&identity).unwrap();
    let secret = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    assert!(!String::from_utf8_lossy(&manifest_bytes).contains(secret));
    run.assert_no_secret(&[secret]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A plugin that fails after parts went up: the upload is aborted and the
/// bucket is left as it was; the result names the plugin and the reason.
#[tokio::test]
async fn a_transform_failing_mid_stream_leaves_nothing_behind() {
    let bucket = Bucket::new("transform-fails").await;
    let openbao = Source::start(16).await;
    for (action, reason) in [
        ("fail", "told to fail"),
        ("panic", "panicked"),
        ("loop", "longer than its 300ms limit"),
    ] {
        let mut args = bucket.args(&openbao.url());
        // Two 5 MiB parts are uploaded before it misbehaves.
        transform(
            &mut args,
            serde_json::json!({"file": plugin_path("misbehave"),
                               "config": {"do": action, "after": 12 * MIB}}),
        );
        set(&mut args, "--plugin-call-timeout", "300ms");
        let run = run_cli(&args, &[]).await;
        assert!(!run.ok(), "{action}");
        assert_eq!(run.result["cause"], "plugin", "{action}");
        assert_eq!(run.output.status.code(), Some(7), "{action}: exit code");
        let why = run.reason();
        assert!(
            why.contains("transform 1 (misbehave ") && why.contains(reason),
            "{action}: {why}"
        );
        bucket.assert_untouched().await;
    }
}

#[tokio::test]
async fn a_transform_that_cannot_run_stops_the_backup_before_it_starts() {
    let bucket = Bucket::new("transform-bad").await;
    let openbao = Source::start(0).await;
    let cases = [
        // A retention plugin is not a transform.
        (
            serde_json::json!({"file": plugin_path("gfs")}),
            "is a retention plugin, not a transform plugin",
        ),
        // age without recipients: the plugin refuses its configuration.
        (
            serde_json::json!({"file": plugin_path("age")}),
            "recipients is empty",
        ),
        (
            serde_json::json!({"file": plugin_path("zstd"), "sha256": "0".repeat(64)}),
            "digest mismatch",
        ),
        (
            serde_json::json!({"file": plugin_path("age"),
                               "secretFiles": {"identities": "/nonexistent/key.txt"}}),
            "secret setting `identities`",
        ),
    ];
    for (spec, expected) in cases {
        let mut args = bucket.args(&openbao.url());
        transform(&mut args, spec);
        let run = run_cli(&args, &[]).await;
        assert!(!run.ok());
        let why = run.reason();
        assert!(why.contains(expected), "{why}");
        assert!(
            why.contains("--transform 1") || why.contains("transform 1 (age"),
            "{why}"
        );
        assert_eq!(
            openbao.snapshot_requests(),
            0,
            "OpenBao was not asked: {why}"
        );
    }
    bucket.assert_untouched().await;
}

/// The variables a shell set up for `bao` and the AWS CLI holds work
/// without a flag: BAO_ADDR, BAO_TOKEN (never printed), AWS_ENDPOINT_URL
/// and AWS_REGION; our own names win over them.
#[tokio::test]
async fn a_shell_set_up_for_bao_and_the_aws_cli_needs_no_flags() {
    let bucket = Bucket::new("bao-aws-env").await;
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    for flag in ["--openbao-addr", "--token-file", "--endpoint", "--region"] {
        unset(&mut args, flag);
    }
    let garage = bucket.garage;
    let url = openbao.url();
    let run = run_cli(
        &args,
        &[
            ("BAO_ADDR", &url),
            ("BAO_TOKEN", TOKEN),
            ("AWS_ENDPOINT_URL", &garage.endpoint),
            ("AWS_REGION", testkit::garage::REGION),
        ],
    )
    .await;
    assert_backed_up(&bucket, &openbao, &run).await;
    run.assert_no_secret(&[TOKEN]);
    assert!(
        run.stderr().contains("BAO_TOKEN"),
        "the log says where the token came from:\n{}",
        run.stderr()
    );

    // Ours first: OPENBAO_ADDR and S3_ENDPOINT beat BAO_ADDR and
    // AWS_ENDPOINT_URL_S3 (both pointing nowhere), and the S3-specific AWS
    // name beats the general one.
    let run = run_cli(
        &args,
        &[
            ("OPENBAO_ADDR", &url),
            ("BAO_ADDR", "http://127.0.0.1:9"),
            ("BAO_TOKEN", TOKEN),
            ("AWS_ENDPOINT_URL_S3", &garage.endpoint),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_REGION", testkit::garage::REGION),
        ],
    )
    .await;
    assert!(run.ok(), "{}", run.all_output());
    let run = run_cli(
        &args,
        &[
            ("BAO_ADDR", &url),
            ("BAO_TOKEN", TOKEN),
            ("S3_ENDPOINT", &garage.endpoint),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9"),
            ("AWS_REGION", testkit::garage::REGION),
        ],
    )
    .await;
    assert!(run.ok(), "{}", run.all_output());

    // --endpoint-url, as the AWS CLI spells it.
    let mut flags = bucket.args(&openbao.url());
    let at = flags.iter().position(|a| a == "--endpoint").unwrap();
    flags[at] = "--endpoint-url".into();
    let run = run_cli(&flags, &[]).await;
    assert!(run.ok(), "{}", run.all_output());

    // A token in the environment and a token file: one login only.
    let mut both = args.clone();
    set(
        &mut both,
        "--token-file",
        bucket.dir.join("token").to_str().unwrap(),
    );
    let run = run_cli(
        &both,
        &[
            ("BAO_ADDR", &url),
            ("BAO_TOKEN", TOKEN),
            ("AWS_ENDPOINT_URL", &garage.endpoint),
        ],
    )
    .await;
    assert!(!run.ok());
    assert!(
        run.reason()
            .contains("both --token-file (OPENBAO_TOKEN_FILE) and BAO_TOKEN are set"),
        "{}",
        run.reason()
    );
    run.assert_no_secret(&[TOKEN]);
}

/// Without --region (S3_REGION) the region comes from the AWS chain, as
/// the AWS CLI reads it: AWS_REGION, AWS_DEFAULT_REGION, the profile.
/// Garage signs with `garage`, so only a run that found it succeeds; with
/// nothing set, `us-east-1` is used and Garage refuses it.
#[tokio::test]
async fn the_region_comes_from_the_aws_chain_when_not_given() {
    let bucket = Bucket::new("region-chain").await;
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    unset(&mut args, "--region");
    let region = testkit::garage::REGION;
    let profile = bucket.dir.join("aws-config");
    std::fs::write(
        &profile,
        format!("[default]\nregion = us-east-1\n\n[profile backups]\nregion = {region}\n"),
    )
    .unwrap();
    let nowhere = bucket.dir.join("no-aws-config");
    let (profile, nowhere) = (profile.to_str().unwrap(), nowhere.to_str().unwrap());
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        ("AWS_REGION", vec![("AWS_REGION", region)]),
        ("AWS_DEFAULT_REGION", vec![("AWS_DEFAULT_REGION", region)]),
        (
            "the profile",
            vec![("AWS_CONFIG_FILE", profile), ("AWS_PROFILE", "backups")],
        ),
        (
            "S3_REGION before AWS_REGION",
            vec![("S3_REGION", region), ("AWS_REGION", "eu-west-3")],
        ),
        (
            "AWS_REGION before the profile",
            vec![("AWS_REGION", region), ("AWS_CONFIG_FILE", profile)],
        ),
    ];
    for (name, env) in cases {
        let mut env = env.clone();
        if !env.iter().any(|(k, _)| *k == "AWS_CONFIG_FILE") {
            env.push(("AWS_CONFIG_FILE", nowhere));
        }
        let run = run_cli(&args, &env).await;
        assert!(run.ok(), "{name}:\n{}", run.all_output());
    }
    // Nothing set: the fallback, said in the log; Garage refuses it.
    let run = run_cli(&args, &[("AWS_CONFIG_FILE", nowhere)]).await;
    assert!(!run.ok());
    assert!(
        run.stderr().contains("no S3 region set") && run.stderr().contains("us-east-1"),
        "{}",
        run.stderr()
    );
    assert_eq!(run.result["cause"], "storage");
}

/// One exit code per cause (README "Exit codes"), each produced here by
/// real servers.
#[tokio::test]
async fn the_exit_code_names_the_cause() {
    let bucket = Bucket::new("exit-codes").await;
    let openbao = Source::start(0).await;
    let code = |run: &support::Run| run.output.status.code();

    // 2: configuration.
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--part-size", "1Mi");
    let run = run_cli(&args, &[]).await;
    assert_eq!(
        (code(&run), &run.result["cause"]),
        (Some(2), &"config".into())
    );

    // 3: OpenBao refused the token.
    let wrong = bucket.dir.join("wrong-token");
    std::fs::write(&wrong, "not-a-token-of-this-cluster").unwrap();
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--token-file", wrong.to_str().unwrap());
    let run = run_cli(&args, &[]).await;
    assert_eq!(
        (code(&run), &run.result["cause"]),
        (Some(3), &"auth".into())
    );

    // 4: OpenBao unreachable.
    let run = run_cli(&bucket.args("http://127.0.0.1:9"), &[]).await;
    assert_eq!(
        (code(&run), &run.result["cause"]),
        (Some(4), &"no-active-node".into())
    );

    // 5: storage unreachable.
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--endpoint", "http://127.0.0.1:9");
    set(&mut args, "--max-attempts", "1");
    let run = run_cli(&args, &[]).await;
    assert_eq!(
        (code(&run), &run.result["cause"]),
        (Some(5), &"storage".into())
    );

    // 2 as well for what clap refuses before anything runs.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .args(["backup", "--no-such-flag"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    bucket.assert_untouched().await;
}

/// The wasm toolchain an author has: rustup's wasm std, or (where rustup
/// cannot fetch it, as scripts/build-plugins falls back) Debian's rustc-web
/// with build-std.
fn author_cargo(command: &mut std::process::Command) -> Vec<String> {
    let rustup_has_wasm = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown"));
    if rustup_has_wasm {
        return Vec::new();
    }
    command
        .env("CARGO", "/usr/bin/cargo")
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1");
    vec!["--".into(), "-Zbuild-std=std,panic_abort".into()]
}

/// A plugin author's path, outside this repository: guest-sdk as
/// `cargo package` makes it for the registry, `plugin new`, `cargo test`,
/// `plugin build` (no wasm-tools), `plugin inspect`, then backups that
/// the new policy prunes.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_made_with_plugin_new_outside_the_repository_prunes_backups() {
    let binary = env!("CARGO_BIN_EXE_openbao-backup");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let work = std::env::temp_dir().join(format!("openbao-backup-author-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // Its own target directory: the one of this test run is locked by it.
    // Kept between runs, so later runs build only the plugin.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-author");

    // guest-sdk exactly as published: the packaged crate, WIT file inside.
    succeed(
        std::process::Command::new("cargo")
            .args([
                "package",
                "--quiet",
                "--no-verify",
                "--allow-dirty",
                "-p",
                "guest-sdk",
            ])
            .current_dir(repo)
            .env("CARGO_TARGET_DIR", &target),
    );
    let packaged = target.join(format!(
        "package/guest-sdk-{}.crate",
        env!("CARGO_PKG_VERSION")
    ));
    succeed(
        std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&packaged)
            .arg("-C")
            .arg(&work),
    );
    let sdk = work.join(format!("guest-sdk-{}", env!("CARGO_PKG_VERSION")));
    assert!(
        sdk.join("wit/plugin.wit").is_file(),
        "the WIT file travels with the crate"
    );

    for (name, kind) in [("keep-two", "retention"), ("pass-through", "transform")] {
        let dir = work.join(name);
        succeed(
            std::process::Command::new(binary)
                .args(["plugin", "new", name, "--kind", kind, "--dir"])
                .arg(&dir)
                .arg("--sdk-path")
                .arg(&sdk),
        );
        succeed(
            std::process::Command::new("cargo")
                .args(["test", "--quiet"])
                .current_dir(&dir)
                .env("CARGO_TARGET_DIR", &target),
        );
        let mut build = std::process::Command::new(binary);
        build
            .args(["plugin", "build"])
            .arg(&dir)
            .env("CARGO_TARGET_DIR", &target);
        let extra = author_cargo(&mut build);
        let built: serde_json::Value = serde_json::from_str(&succeed(build.args(extra))).unwrap();
        assert_eq!(
            (built["name"].as_str(), built["kind"].as_str()),
            (Some(name), Some(kind))
        );
        let inspected: serde_json::Value = serde_json::from_str(&succeed(
            std::process::Command::new(binary)
                .args(["plugin", "inspect"])
                .arg(built["file"].as_str().unwrap()),
        ))
        .unwrap();
        assert_eq!(inspected["sha256"], built["sha256"]);
    }

    let bucket = Bucket::new("plugin-new").await;
    let openbao = Source::start(0).await;
    let mut args = bucket.args(&openbao.url());
    let plugin = serde_json::json!({
        "file": target.join("plugins/keep-two.wasm"),
        "config": {"keep": 2},
    });
    set(&mut args, "--retention-plugin", &plugin.to_string());
    let mut taken = Vec::new();
    for _ in 0..3 {
        let run = run_cli(&args, &[]).await;
        assert!(run.ok(), "{}", run.all_output());
        taken.push(run.result["key"].as_str().unwrap().to_string());
    }
    assert_eq!(
        backup_keys(&bucket).await,
        taken[1..].to_vec(),
        "the newest two"
    );
    let _ = std::fs::remove_dir_all(&work);
}
