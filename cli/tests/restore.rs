//! `restore`, `verify` and `decode` end to end: backups of real OpenBao
//! made by the real binary into Garage, read back through the plugin
//! chains and restored into real OpenBao, single nodes and a 3-node Raft
//! cluster, whose secrets are then read back from every node. Every
//! failure must leave the cluster's data as it was.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::{Bucket, MIB, Run, Source, TOKEN, run_cli, run_cli_lines, set, sha256_hex, unset};
use testkit::openbao::Node;
use testkit::plugins::{age_keypair, plugin_path};
use testkit::s3proxy::S3Proxy;
use testkit::{Cluster, ClusterSpec, OpenBaoProxy};

/// No restore reached OpenBao since it had seen `attempts`, and its data
/// is still `{"v": "current"}`.
async fn assert_not_asked(openbao: &Source, attempts: usize) {
    assert_eq!(
        openbao.restore_requests(),
        attempts,
        "OpenBao was not asked"
    );
    assert_eq!(
        openbao.cluster.secret("app").await,
        Some(json!({"v": "current"}))
    );
}

/// A temporary directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "openbao-backup-restore-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The plugins of a chain, as `--transform` (backup) and `--plugin`
/// (read-back) take them: the same JSON, the identity a secret file.
struct Chain {
    specs: Vec<Value>,
}

impl Chain {
    fn new(names: &[&str], recipient: &str, identity: &Path) -> Self {
        let specs = names
            .iter()
            .map(|name| match *name {
                "zstd" => json!({"file": plugin_path("zstd"), "config": {"level": 3}}),
                "age" => json!({"file": plugin_path("age"), "config": {"recipients": [recipient]},
                                "secretFiles": {"identities": identity}}),
                other => panic!("{other}"),
            })
            .collect();
        Self { specs }
    }

    fn add(&self, args: &mut Vec<String>, flag: &str) {
        for spec in &self.specs {
            args.extend([flag.to_string(), spec.to_string()]);
        }
    }
}

/// Arguments for `command` against the bucket (and OpenBao for restore).
fn command_args(bucket: &Bucket, command: &str, openbao: &str) -> Vec<String> {
    let mut args = bucket.args(openbao);
    args[0] = command.into();
    unset(&mut args, "--progress-interval");
    if command != "restore" {
        unset(&mut args, "--openbao-addr");
        unset(&mut args, "--token-file");
    }
    args
}

/// Backs up through `chain`; returns the key and the SHA-256 OpenBao sent.
async fn backup(bucket: &Bucket, openbao: &OpenBaoProxy, chain: &Chain) -> (String, String) {
    let mut args = bucket.args(&openbao.url());
    chain.add(&mut args, "--transform");
    let run = run_cli(&args, &[]).await;
    assert!(run.ok(), "backup failed:\n{}", run.all_output());
    let served = openbao.served().last().cloned().unwrap();
    (
        run.result["key"].as_str().unwrap().to_string(),
        served.sha256,
    )
}

async fn restore(bucket: &Bucket, openbao: &str, key: &str, chain: &Chain) -> Run {
    let mut args = command_args(bucket, "restore", openbao);
    set(&mut args, "--key", key);
    chain.add(&mut args, "--plugin");
    run_cli(&args, &[]).await
}

#[tokio::test]
async fn every_chain_restores_exactly_the_snapshot_taken() {
    let dir = TempDir::new("chains");
    let (recipient, identity) = age_keypair(&dir.0);
    let bucket = Bucket::new("restore-chains").await;
    let openbao = Source::start(6).await;
    let chains = [&[][..], &["zstd"], &["age"], &["zstd", "age"]];
    let mut taken = Vec::new();
    for (i, names) in chains.iter().enumerate() {
        // Each backup holds other data.
        openbao
            .cluster
            .put_secret("app", json!({"backup": i}))
            .await;
        let chain = Chain::new(names, &recipient, &identity);
        taken.push(backup(&bucket, &openbao, &chain).await);
    }
    // The cluster's data changes again; each restore brings back its own.
    openbao
        .cluster
        .put_secret("app", json!({"backup": "none"}))
        .await;
    for (i, (names, (key, snapshot))) in chains.iter().zip(&taken).enumerate() {
        let chain = Chain::new(names, &recipient, &identity);
        let run = restore(&bucket, &openbao.url(), key, &chain).await;
        assert!(run.ok(), "{names:?}:\n{}", run.all_output());
        assert_eq!(
            openbao.cluster.secret("app").await,
            Some(json!({"backup": i})),
            "{names:?}: OpenBao serves the data of the backup restored"
        );
        assert_eq!(run.result["status"], "restored");
        assert_eq!(run.result["key"], key.as_str());
        assert_eq!(run.result["snapshot"]["sha256"], snapshot.as_str());
        assert_eq!(
            run.result["transforms"].as_array().unwrap().len(),
            names.len()
        );
        let key_text = std::fs::read_to_string(&identity).unwrap();
        let secret = key_text
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap();
        run.assert_no_secret(&[secret]);
    }

    // `list`: newest first, each with its chain.
    let mut list = command_args(&bucket, "list", "");
    list.push("--json".into());
    let listed = run_cli_lines(&list).await;
    let chains: Vec<usize> = listed
        .iter()
        .map(|b| b["transforms"].as_array().unwrap().len())
        .collect();
    assert_eq!(chains, [2, 1, 1, 0]);
    assert!(
        listed
            .iter()
            .all(|b| b["sha256"].as_str().unwrap().len() == 64)
    );
    let table = Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .args(&list[..list.len() - 1])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("zstd 0.1.0, age 0.1.0"), "{table}");

    // `latest` is the newest backup of the cluster: the zstd + age one, not
    // a copy of it stamped in 2099 by a clock running ahead.
    let (prefix, name) = taken[3].0.rsplit_once('/').unwrap();
    let future = format!(
        "{prefix}/20991231T000000.000Z-{}",
        name.split_once('-').unwrap().1
    );
    let mut manifest: Value =
        serde_json::from_slice(&bucket.read(&format!("{}.manifest.json", taken[3].0)).await)
            .unwrap();
    manifest["key"] = json!(future);
    put(&bucket, &future, bucket.read(&taken[3].0).await).await;
    put(
        &bucket,
        &format!("{future}.manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    let chain = Chain::new(&["zstd", "age"], &recipient, &identity);
    openbao
        .cluster
        .put_secret("app", json!({"backup": "none"}))
        .await;
    let run = restore(&bucket, &openbao.url(), "latest", &chain).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(run.result["key"], taken[3].0.as_str());
    assert_eq!(
        openbao.cluster.secret("app").await,
        Some(json!({"backup": 3}))
    );
    assert_eq!(openbao.restore_requests(), 5);
}

/// Backups made with the built-ins (`builtin:zstd`, `builtin:age`) record
/// the plugins' digests, and restore with no flag for what needs no secret
/// (the built-in is found by digest), with the same components as files,
/// and a backup made with the zstd file restores with no flag at all.
#[tokio::test]
async fn builtin_plugins_back_up_and_restore_without_plugin_files() {
    let dir = TempDir::new("builtins");
    let (recipient, identity) = age_keypair(&dir.0);
    let bucket = Bucket::new("restore-builtins").await;
    let openbao = Source::start(6).await;
    let url = openbao.url();
    let digest = |name: &str| sha256_hex(&std::fs::read(plugin_path(name)).unwrap());

    let builtins = |names: &[&str]| Chain {
        specs: names
            .iter()
            .map(|name| match *name {
                "zstd" => json!("builtin:zstd"),
                "age" => json!({"file": "builtin:age", "config": {"recipients": [recipient]}}),
                other => panic!("{other}"),
            })
            .collect(),
    };
    let add = |chain: &Chain, args: &mut Vec<String>, flag: &str| {
        for spec in &chain.specs {
            let spec = spec
                .as_str()
                .map_or_else(|| spec.to_string(), str::to_string);
            args.extend([flag.to_string(), spec]);
        }
    };
    let mut taken = Vec::new();
    for (i, (names, files)) in [
        (&["zstd", "age"][..], false),
        (&["zstd"][..], false),
        (&["zstd"][..], true),
    ]
    .into_iter()
    .enumerate()
    {
        openbao
            .cluster
            .put_secret("app", json!({"backup": i}))
            .await;
        let mut args = bucket.args(&url);
        if files {
            Chain::new(names, &recipient, &identity).add(&mut args, "--transform");
        } else {
            add(&builtins(names), &mut args, "--transform");
        }
        let run = run_cli(&args, &[]).await;
        assert!(run.ok(), "backup {names:?}:\n{}", run.all_output());
        let key = run.result["key"].as_str().unwrap().to_string();
        let manifest: Value =
            serde_json::from_slice(&bucket.read(&format!("{key}.manifest.json")).await).unwrap();
        for (record, name) in manifest["transforms"].as_array().unwrap().iter().zip(names) {
            assert_eq!(record["name"], *name);
            assert_eq!(
                record["sha256"],
                digest(name),
                "{name}: the component's digest"
            );
        }
        taken.push(key);
    }

    let restored = async |key: &str, plugins: &[String], expected: usize| {
        openbao
            .cluster
            .put_secret("app", json!({"backup": "none"}))
            .await;
        let mut args = command_args(&bucket, "restore", &url);
        set(&mut args, "--key", key);
        args.extend(plugins.iter().cloned());
        let run = run_cli(&args, &[]).await;
        assert!(run.ok(), "{plugins:?}:\n{}", run.all_output());
        assert_eq!(
            openbao.cluster.secret("app").await,
            Some(json!({"backup": expected}))
        );
    };
    // zstd by digest, age given as a built-in with the identity.
    let age = json!({"file": "builtin:age", "secretFiles": {"identities": identity}});
    restored(&taken[0], &["--plugin".into(), age.to_string()], 0).await;
    // The same backup with the components as files.
    let mut files = Vec::new();
    Chain::new(&["zstd", "age"], &recipient, &identity).add(&mut files, "--plugin");
    restored(&taken[0], &files, 0).await;
    // No plugin flag at all: made with builtin:zstd, then with the file.
    restored(&taken[1], &[], 1).await;
    restored(&taken[2], &[], 2).await;
}

#[tokio::test]
async fn decode_writes_a_snapshot_that_tar_and_sha256sum_accept() {
    let dir = TempDir::new("decode");
    let (recipient, identity) = age_keypair(&dir.0);
    let chain = Chain::new(&["zstd", "age"], &recipient, &identity);
    let bucket = Bucket::new("restore-decode").await;
    let openbao = Source::start(3).await;
    let (key, taken) = backup(&bucket, &openbao, &chain).await;

    // An S3 URL names the bucket too.
    let mut verify = command_args(&bucket, "verify", "");
    unset(&mut verify, "--bucket");
    set(&mut verify, "--key", &format!("s3://{}/{key}", bucket.name));
    chain.add(&mut verify, "--plugin");
    let run = run_cli(&verify, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(run.result["status"], "verified");
    assert_eq!(run.result["snapshot"]["sha256"], taken.as_str());

    // From the bucket.
    let output = dir.0.join("snapshot.snap");
    let mut decode = command_args(&bucket, "decode", "");
    set(&mut decode, "--key", &key);
    set(&mut decode, "--output", output.to_str().unwrap());
    chain.add(&mut decode, "--plugin");
    let run = run_cli(&decode, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(sha256_hex(&std::fs::read(&output).unwrap()), taken);

    let listed = Command::new("tar")
        .arg("-tzf")
        .arg(&output)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    for file in ["meta.json", "state.bin", "SHA256SUMS"] {
        assert!(listed.lines().any(|l| l == file), "{file} in:\n{listed}");
    }
    let extracted = dir.0.join("extracted");
    std::fs::create_dir_all(&extracted).unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&output)
        .arg("-C")
        .arg(&extracted)
        .status()
        .unwrap();
    assert!(untar.success());
    let sums = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&extracted)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );

    // From a downloaded object and its manifest, without the bucket.
    let object = dir.0.join("backup.snap");
    std::fs::write(&object, bucket.read(&key).await).unwrap();
    let manifest = dir.0.join("backup.snap.manifest.json");
    std::fs::write(
        &manifest,
        bucket.read(&format!("{key}.manifest.json")).await,
    )
    .unwrap();
    let offline = dir.0.join("offline.snap");
    let mut decode = vec![
        "decode".to_string(),
        "--file".into(),
        object.display().to_string(),
        "--output".into(),
        offline.display().to_string(),
    ];
    chain.add(&mut decode, "--plugin");
    let run = run_cli(&decode, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(sha256_hex(&std::fs::read(&offline).unwrap()), taken);
}

/// Every way a backup can be unfit, or its restore break: the restore fails
/// naming why, and OpenBao installed nothing.
#[tokio::test]
async fn a_restore_that_fails_leaves_openbao_as_it_was() {
    let dir = TempDir::new("failures");
    let (recipient, identity) = age_keypair(&dir.0);
    let bucket = Bucket::new("restore-failures").await;
    let openbao = Source::start(6).await;
    openbao
        .cluster
        .put_secret("app", json!({"v": "backed up"}))
        .await;
    let plain = Chain::new(&[], &recipient, &identity);
    let sealed = Chain::new(&["zstd", "age"], &recipient, &identity);
    let (plain_key, _) = backup(&bucket, &openbao, &plain).await;
    let (sealed_key, _) = backup(&bucket, &openbao, &sealed).await;
    let object = bucket.read(&plain_key).await;
    let manifest = bucket.read(&format!("{plain_key}.manifest.json")).await;
    // What a restore would undo.
    openbao
        .cluster
        .put_secret("app", json!({"v": "current"}))
        .await;
    let url = openbao.url();

    let expect_refused = async |run: &Run, cause: &str, words: &str| {
        assert!(!words.is_empty(), "name the words the reason must hold");
        assert!(!run.ok(), "expected {cause}: {}", run.all_output());
        assert_eq!(run.result["cause"], cause, "{}", run.all_output());
        assert!(run.reason().contains(words), "{}", run.reason());
        // README "Exit codes": one per cause.
        let code = match cause {
            "config" => 2,
            "storage" => 5,
            "invalid-snapshot" => 6,
            "plugin" => 7,
            other => panic!("no exit code expected for {other}"),
        };
        assert_eq!(run.output.status.code(), Some(code), "{cause}");
        assert_eq!(
            openbao.cluster.secret("app").await,
            Some(json!({"v": "current"})),
            "the cluster's data is as it was"
        );
    };

    // The manifest's digest altered: the object and archive are intact, so
    // only the held-back last bytes keep OpenBao from installing it.
    let mut tampered: Value = serde_json::from_slice(&manifest).unwrap();
    tampered["snapshot"]["sha256"] = json!("0".repeat(64));
    tampered["object"]["sha256"] = json!("0".repeat(64));
    put(
        &bucket,
        &format!("{plain_key}.manifest.json"),
        serde_json::to_vec(&tampered).unwrap(),
    )
    .await;
    let attempts = openbao.restore_requests();
    let run = restore(&bucket, &url, &plain_key, &plain).await;
    expect_refused(&run, "invalid-snapshot", "the manifest records").await;
    assert_eq!(
        openbao.restore_requests(),
        attempts + 1,
        "the upload was started, then broken"
    );
    // The manifest's Raft index altered, its digests intact.
    let mut tampered: Value = serde_json::from_slice(&manifest).unwrap();
    tampered["raft"]["index"] = json!(tampered["raft"]["index"].as_u64().unwrap() + 1000);
    put(
        &bucket,
        &format!("{plain_key}.manifest.json"),
        serde_json::to_vec(&tampered).unwrap(),
    )
    .await;
    let run = restore(&bucket, &url, &plain_key, &plain).await;
    expect_refused(&run, "invalid-snapshot", "the manifest records index").await;
    put(
        &bucket,
        &format!("{plain_key}.manifest.json"),
        manifest.clone(),
    )
    .await;

    // A backup of another cluster, unless that is said explicitly.
    let attempts = openbao.restore_requests();
    let mut args = command_args(&bucket, "restore", &url);
    set(&mut args, "--key", &plain_key);
    set(&mut args, "--cluster", "staging");
    let run = run_cli(&args, &[]).await;
    expect_refused(
        &run,
        "config",
        "a backup of cluster prod/bao, not prod/staging",
    )
    .await;
    assert!(
        run.reason().contains("--allow-other-cluster"),
        "{}",
        run.reason()
    );
    assert_eq!(
        openbao.restore_requests(),
        attempts,
        "OpenBao was not asked"
    );

    // A flipped byte, then a truncated object.
    let mut corrupted = object.clone();
    corrupted[object.len() / 2] ^= 0x40;
    put(&bucket, &plain_key, corrupted).await;
    // The archive's checks see both before the digests are known.
    let run = restore(&bucket, &url, &plain_key, &plain).await;
    expect_refused(
        &run,
        "invalid-snapshot",
        "gzip stream is incomplete or corrupt: corrupt gzip stream does not have a matching checksum",
    )
    .await;
    put(&bucket, &plain_key, object[..object.len() - 1000].to_vec()).await;
    let run = restore(&bucket, &url, &plain_key, &plain).await;
    expect_refused(&run, "invalid-snapshot", "incomplete deflate stream").await;
    put(&bucket, &plain_key, object.clone()).await;

    // The wrong age identity; then no plugins at all.
    let (_, other) = age_keypair(&dir.0.join("other"));
    let wrong = Chain::new(&["zstd", "age"], &recipient, &other);
    let run = restore(&bucket, &url, &sealed_key, &wrong).await;
    expect_refused(&run, "plugin", "wrong age key").await;
    let attempts = openbao.restore_requests();
    // The built-ins have the plugin files' digests, so they are found; age
    // then lacks the identity, which only a --plugin can give.
    let run = restore(&bucket, &url, &sealed_key, &plain).await;
    expect_refused(&run, "plugin", "identities is empty").await;
    // A transform neither given nor built in.
    let sealed_manifest = bucket.read(&format!("{sealed_key}.manifest.json")).await;
    let mut unknown: Value = serde_json::from_slice(&sealed_manifest).unwrap();
    unknown["transforms"][0]["sha256"] = json!("0".repeat(64));
    put(
        &bucket,
        &format!("{sealed_key}.manifest.json"),
        serde_json::to_vec(&unknown).unwrap(),
    )
    .await;
    let run = restore(&bucket, &url, &sealed_key, &plain).await;
    expect_refused(
        &run,
        "config",
        "which is not a built-in of this binary: give that plugin's file with --plugin",
    )
    .await;
    put(
        &bucket,
        &format!("{sealed_key}.manifest.json"),
        sealed_manifest,
    )
    .await;
    assert_eq!(
        openbao.restore_requests(),
        attempts,
        "OpenBao was not asked"
    );

    // The download breaks half-way.
    let proxy = S3Proxy::start(bucket.garage.endpoint.trim_start_matches("http://"), None).await;
    proxy.cut_downloads_after(2 * MIB);
    let mut args = command_args(&bucket, "restore", &url);
    set(&mut args, "--endpoint", &proxy.url());
    set(&mut args, "--key", &plain_key);
    let run = run_cli(&args, &[]).await;
    expect_refused(&run, "storage", "broke after").await;

    // A token that may back up but not restore: OpenBao's refusal is the reason.
    let backup_only = Cluster::start(ClusterSpec::single().with_token(TOKEN, &["backup"])).await;
    backup_only
        .put_secret("app", json!({"v": "untouched"}))
        .await;
    let run = restore(&bucket, &backup_only.url().await, &plain_key, &plain).await;
    assert_eq!(run.result["cause"], "auth", "{}", run.all_output());
    assert!(run.reason().contains("needs `update`"), "{}", run.reason());
    assert_eq!(run.output.status.code(), Some(3), "auth has its exit code");
    assert_eq!(
        backup_only.secret("app").await,
        Some(json!({"v": "untouched"}))
    );
}

/// A cluster sealed with another key refuses the snapshot and says why;
/// `--force` makes OpenBao take it and then seal itself, which the restore
/// reports instead of claiming success.
#[tokio::test]
async fn a_snapshot_sealed_with_another_key_is_refused_and_force_is_reported() {
    let bucket = Bucket::new("restore-other-key").await;
    let openbao = Source::start(0).await;
    let none = Chain { specs: Vec::new() };
    let (key, _) = backup(&bucket, &openbao, &none).await;

    let other = Cluster::start(ClusterSpec::single().with_token(TOKEN, &["restore"])).await;
    other.put_secret("app", json!({"v": "other"})).await;
    let other_url = other.url().await;
    let run = restore(&bucket, &other_url, &key, &none).await;
    assert!(!run.ok());
    assert_eq!(run.result["cause"], "openbao", "{}", run.all_output());
    let reason = run.reason();
    assert!(
        reason.contains("another seal key") && reason.contains("--force"),
        "{reason}"
    );
    assert_eq!(other.secret("app").await, Some(json!({"v": "other"})));

    let mut args = command_args(&bucket, "restore", &other_url);
    set(&mut args, "--key", &key);
    args.push("--force".into());
    let run = run_cli(&args, &[]).await;
    assert!(!run.ok(), "{}", run.all_output());
    assert_eq!(run.result["cause"], "openbao");
    assert!(run.reason().contains("sealed itself"), "{}", run.reason());
}

/// Another cluster with the same seal key (a new cluster after losing the
/// old one, its seal key kept) takes the backup without force; a 3-node
/// cluster then serves the restored data from every node, standbys too.
#[tokio::test]
async fn a_new_three_node_cluster_with_the_seal_key_serves_the_backup_from_every_node() {
    let bucket = Bucket::new("restore-new-cluster").await;
    let old = Source::start(2).await;
    old.cluster
        .put_secret("app", json!({"v": "from the old cluster"}))
        .await;
    let none = Chain { specs: Vec::new() };
    let (key, _) = backup(&bucket, &old, &none).await;

    let mut spec = ClusterSpec::three_nodes().with_token(TOKEN, &["restore"]);
    spec.seal_key = Some(old.cluster.seal_key.clone());
    let new = Cluster::start(spec).await;
    new.put_secret("app", json!({"v": "new and empty"})).await;
    // Every node, so the restore can find the active one and wait for all.
    // Restored as another cluster's backup: said explicitly.
    let mut args = command_args(&bucket, "restore", &new.urls().join(","));
    set(&mut args, "--key", &key);
    set(&mut args, "--cluster", "bao-new");
    args.push("--allow-other-cluster".into());
    let run = run_cli(&args, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    // The result says which Raft state the cluster went back to.
    let manifest: Value =
        serde_json::from_slice(&bucket.read(&format!("{key}.manifest.json")).await).unwrap();
    assert_eq!(run.result["raft"]["index"], manifest["raft"]["index"]);
    assert_eq!(run.result["raft"]["term"], manifest["raft"]["term"]);
    assert!(manifest["raft"]["index"].as_u64().unwrap() > 0);
    for url in new.urls() {
        assert_eq!(
            new.secret_on(&url, "app").await,
            Some(json!({"v": "from the old cluster"})),
            "{url} serves the restored data"
        );
    }
}

#[tokio::test]
async fn a_decode_that_fails_leaves_no_file() {
    let dir = TempDir::new("decode-fails");
    let bucket = Bucket::new("restore-decode-fails").await;
    let openbao = Source::start(2).await;
    let (key, _) = backup(&bucket, &openbao, &Chain { specs: Vec::new() }).await;
    let manifest_key = format!("{key}.manifest.json");
    let mut tampered: Value = serde_json::from_slice(&bucket.read(&manifest_key).await).unwrap();
    tampered["snapshot"]["sha256"] = json!("f".repeat(64));
    put(
        &bucket,
        &manifest_key,
        serde_json::to_vec(&tampered).unwrap(),
    )
    .await;
    let output = dir.0.join("snapshot.snap");
    let mut decode = command_args(&bucket, "decode", "");
    set(&mut decode, "--key", &key);
    set(&mut decode, "--output", output.to_str().unwrap());
    let run = run_cli(&decode, &[]).await;
    assert!(!run.ok());
    assert!(
        run.reason().contains("decoded snapshot"),
        "{}",
        run.reason()
    );
    assert!(!output.exists() && !dir.0.join("snapshot.snap.partial").exists());
}

/// With `--manifest-key-file` only manifests signed with the key are read.
/// Whoever may write to the bucket can plant an older genuine backup under
/// the newest one's name (its manifest's `key` rewritten to match): without
/// the key that reads as a good backup; with it, that restore, an altered
/// or unsigned manifest and another key are refused before OpenBao is
/// asked anything, and the genuine backup restores.
#[tokio::test]
async fn signed_manifests_refuse_an_older_backup_planted_under_a_newer_key() {
    let dir = TempDir::new("signed");
    let key_file = dir.0.join("manifest.key");
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let key_flag = [
        "--manifest-key-file".to_string(),
        key_file.display().to_string(),
    ];
    let bucket = Bucket::new("restore-signed").await;
    let openbao = Source::start(2).await;
    let url = openbao.url();
    let mut taken = Vec::new();
    for v in ["older", "newer"] {
        openbao.cluster.put_secret("app", json!({"v": v})).await;
        let mut args = bucket.args(&url);
        args.extend(key_flag.clone());
        let run = run_cli(&args, &[]).await;
        assert!(run.ok(), "{}", run.all_output());
        taken.push(run.result["key"].as_str().unwrap().to_string());
    }
    let (older, newer) = (&taken[0], &taken[1]);
    let manifest_of = |key: &str| format!("{key}.manifest.json");
    let genuine: Value = serde_json::from_slice(&bucket.read(&manifest_of(newer)).await).unwrap();
    assert_eq!(genuine["signature"]["alg"], "HMAC-SHA256");
    assert_eq!(genuine["signature"]["keyId"].as_str().unwrap().len(), 16);
    let genuine_object = bucket.read(newer).await;
    openbao
        .cluster
        .put_secret("app", json!({"v": "current"}))
        .await;

    // The older backup planted under the newer name, its key rewritten.
    let mut planted: Value =
        serde_json::from_slice(&bucket.read(&manifest_of(older)).await).unwrap();
    planted["key"] = json!(newer);
    put(&bucket, newer, bucket.read(older).await).await;
    put(
        &bucket,
        &manifest_of(newer),
        serde_json::to_vec(&planted).unwrap(),
    )
    .await;
    // Without the key it reads as a good backup, with a warning.
    let mut verify = command_args(&bucket, "verify", "");
    set(&mut verify, "--key", newer);
    let run = run_cli(&verify, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert!(
        run.stderr().contains("signature was not checked"),
        "{}",
        run.stderr()
    );

    let attempts = openbao.restore_requests();
    let restore_signed = async |manifest: Option<Value>, key_file: &Path| {
        if let Some(manifest) = manifest {
            put(
                &bucket,
                &manifest_of(newer),
                serde_json::to_vec(&manifest).unwrap(),
            )
            .await;
        }
        let mut args = command_args(&bucket, "restore", &url);
        set(&mut args, "--key", newer);
        set(&mut args, "--manifest-key-file", key_file.to_str().unwrap());
        run_cli(&args, &[]).await
    };
    let refused = async |run: Run, words: &str| {
        assert!(!run.ok(), "expected a refusal: {}", run.all_output());
        assert_eq!(
            run.result["cause"],
            "invalid-snapshot",
            "{}",
            run.all_output()
        );
        let reason = run.reason();
        assert!(
            reason.contains(&format!("the manifest of {newer} {words}")),
            "{reason}"
        );
        assert_not_asked(&openbao, attempts).await;
    };
    refused(
        restore_signed(None, &key_file).await,
        "does not match its signature",
    )
    .await;

    // The genuine object back; its manifest altered (an older start time),
    // then unsigned, then checked with another key.
    put(&bucket, newer, genuine_object).await;
    let mut altered = genuine.clone();
    altered["startedAt"] = json!("2020-01-01T00:00:00Z");
    refused(
        restore_signed(Some(altered), &key_file).await,
        "does not match its signature",
    )
    .await;
    let mut unsigned = genuine.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    refused(
        restore_signed(Some(unsigned), &key_file).await,
        "has no signature, but --manifest-key-file (MANIFEST_KEY_FILE)",
    )
    .await;
    let other_key = dir.0.join("other.key");
    std::fs::write(&other_key, [7u8; 32]).unwrap();
    refused(
        restore_signed(Some(genuine.clone()), &other_key).await,
        "is signed with key id",
    )
    .await;

    // A key too short is refused naming the flag, by backup and restore.
    let short_key = dir.0.join("short.key");
    std::fs::write(&short_key, [7u8; 16]).unwrap();
    let run = restore_signed(None, &short_key).await;
    assert_eq!(run.result["cause"], "config", "{}", run.all_output());
    assert!(
        run.reason()
            .contains("--manifest-key-file (MANIFEST_KEY_FILE) holds 16 bytes"),
        "{}",
        run.reason()
    );
    let mut args = bucket.args(&url);
    set(
        &mut args,
        "--manifest-key-file",
        short_key.to_str().unwrap(),
    );
    let run = run_cli(&args, &[]).await;
    assert_eq!(run.result["cause"], "config", "{}", run.all_output());
    assert_eq!(bucket.keys().await.len(), 4, "no backup was written");

    // The genuine backup restores with the key.
    let run = restore_signed(None, &key_file).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(
        openbao.cluster.secret("app").await,
        Some(json!({"v": "newer"}))
    );
    assert_eq!(openbao.restore_requests(), attempts + 1);
    let mut list = command_args(&bucket, "list", "");
    list.push("--json".into());
    let listed = run_cli_lines(&list).await;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|b| b["signed"] == true), "{listed:?}");
}

async fn put(bucket: &Bucket, key: &str, bytes: Vec<u8>) {
    bucket
        .client
        .put_object()
        .bucket(&bucket.name)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
}

/// A restore replaces OpenBao's data: which backup is always said, with
/// --key or --latest, or BACKUP_KEY (the operator's restore Job sets it,
/// `latest` by default). Without one, nothing is read or restored.
#[tokio::test]
async fn a_restore_restores_only_a_backup_chosen_explicitly() {
    let bucket = Bucket::new("restore-explicit").await;
    let openbao = Source::start(1).await;
    openbao
        .cluster
        .put_secret("app", json!({"v": "backed up"}))
        .await;
    let (key, _) = backup(&bucket, &openbao, &Chain { specs: Vec::new() }).await;
    openbao
        .cluster
        .put_secret("app", json!({"v": "current"}))
        .await;
    let url = openbao.url();
    let args = command_args(&bucket, "restore", &url);

    let attempts = openbao.restore_requests();
    let run = run_cli(&args, &[]).await;
    assert!(!run.ok());
    assert_eq!(run.output.status.code(), Some(2));
    assert!(
        run.reason()
            .contains("restore needs --key KEY (BACKUP_KEY) or --latest"),
        "{}",
        run.reason()
    );
    assert_not_asked(&openbao, attempts).await;

    // The operator's restore Job: BACKUP_KEY=latest.
    let run = run_cli(&args, &[("BACKUP_KEY", "latest")]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(run.result["key"], key.as_str(), "{}", run.result);
    assert_eq!(
        openbao.cluster.secret("app").await,
        Some(json!({"v": "backed up"}))
    );

    let mut latest = args.clone();
    latest.push("--latest".into());
    let run = run_cli(&latest, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(run.result["key"], key.as_str(), "{}", run.result);
}

/// `verify` of an object altered in the bucket exits with the integrity
/// code (README "Exit codes"); without --key it reads the newest backup.
#[tokio::test]
async fn a_tampered_object_fails_verify_with_the_integrity_exit_code() {
    let bucket = Bucket::new("verify-tampered").await;
    let openbao = Source::start(2).await;
    let (key, _) = backup(&bucket, &openbao, &Chain { specs: Vec::new() }).await;
    let verify = command_args(&bucket, "verify", "");
    let run = run_cli(&verify, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let mut object = bucket.read(&key).await;
    let middle = object.len() / 2;
    object[middle] ^= 0x40;
    put(&bucket, &key, object).await;
    let run = run_cli(&verify, &[]).await;
    assert!(!run.ok());
    assert_eq!(
        run.result["cause"],
        "invalid-snapshot",
        "{}",
        run.all_output()
    );
    assert_eq!(run.output.status.code(), Some(6));
}

/// The findings of a preview, by check: (verdict, message, override).
fn findings(run: &Run) -> std::collections::BTreeMap<String, (String, String, Option<String>)> {
    assert_eq!(run.result["status"], "previewed", "{}", run.all_output());
    run.result["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                (
                    f["verdict"].as_str().unwrap().to_string(),
                    f["message"].as_str().unwrap().to_string(),
                    f["override"].as_str().map(String::from),
                ),
            )
        })
        .collect()
}

/// `restore --dry-run` compares the manifest with the live cluster and
/// sends nothing: OpenBao's data and Raft index stay as they were. What it
/// refuses, a restore refuses, naming the flag that forces it.
#[tokio::test]
async fn a_dry_run_sends_nothing_and_a_restore_refuses_what_it_refuses() {
    let bucket = Bucket::new("restore-dry-run").await;
    let openbao = Source::start(1).await;
    openbao
        .cluster
        .put_secret("app", json!({"v": "backed up"}))
        .await;
    let none = Chain { specs: Vec::new() };
    let (key, _) = backup(&bucket, &openbao, &none).await;
    let manifest_key = format!("{key}.manifest.json");
    let manifest: Value = serde_json::from_slice(&bucket.read(&manifest_key).await).unwrap();
    // What the preview compares with: recorded from sys/seal-status.
    assert_eq!(manifest["openbao"]["sealType"], "static", "{manifest}");
    assert!(
        manifest["openbao"]["version"]
            .as_str()
            .unwrap()
            .starts_with("2.")
    );
    assert!(
        !manifest["openbao"]["clusterId"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    openbao
        .cluster
        .put_secret("app", json!({"v": "current"}))
        .await;

    let url = openbao.url();
    let dry_run = async |extra: &[&str]| {
        let mut args = command_args(&bucket, "restore", &url);
        set(&mut args, "--key", &key);
        args.extend(["--dry-run", "--json"].map(String::from));
        let mut extra = extra.iter().peekable();
        while let Some(flag) = extra.next() {
            match extra.next_if(|value| !value.starts_with("--")) {
                Some(value) => set(&mut args, flag, value),
                None => args.push(flag.to_string()),
            }
        }
        run_cli(&args, &[]).await
    };
    let (attempts, index) = (
        openbao.restore_requests(),
        openbao.cluster.raft_index().await,
    );
    let run = dry_run(&[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let found = findings(&run);
    for check in [
        "cluster",
        "raft",
        "version",
        "seal",
        "age",
        "size",
        "plugins",
        "signature",
    ] {
        assert_eq!(found[check].0, "ok", "{check}: {found:?}");
    }
    let raft = &found["raft"].1;
    let behind = openbao.cluster.raft_index().await - manifest["raft"]["index"].as_u64().unwrap();
    assert!(
        raft.starts_with(&format!("goes back {behind} entries")),
        "{raft}"
    );
    assert!(
        found["seal"]
            .1
            .contains("the same `static` seal and cluster id"),
        "{found:?}"
    );
    assert_eq!(run.result["key"], key.as_str());
    // Nothing was sent: no restore request, the data and the index as they were.
    assert_not_asked(&openbao, attempts).await;
    assert_eq!(
        openbao.cluster.raft_index().await,
        index,
        "OpenBao's Raft index unchanged"
    );

    // For people: the report as text.
    let mut args = command_args(&bucket, "restore", &url);
    set(&mut args, "--key", &key);
    args.push("--dry-run".into());
    // The proxy runs on this test's runtime: wait without blocking it.
    let text = tokio::process::Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .args(&args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success(), "{stdout}");
    assert!(
        stdout.starts_with(&format!("restore preview of {key}\n"))
            && stdout.contains("  ok     raft      goes back ")
            && stdout.ends_with("verdict: a restore would go ahead\n"),
        "{stdout}"
    );

    // Another cluster's backup: refused, naming the flag; exit code 2.
    let run = dry_run(&["--cluster", "staging"]).await;
    assert_eq!(run.output.status.code(), Some(2), "{}", run.all_output());
    let cluster = &findings(&run)["cluster"];
    assert_eq!(
        (cluster.0.as_str(), cluster.2.as_deref()),
        ("refuse", Some("allowOtherCluster"))
    );
    let run = dry_run(&["--cluster", "staging", "--allow-other-cluster"]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(findings(&run)["cluster"].0, "warn");

    // A backup sealed by another seal type (as its manifest records it):
    // the preview refuses it, and so does a restore, before OpenBao is
    // sent anything, naming --force.
    let mut other_seal = manifest.clone();
    other_seal["openbao"]["sealType"] = json!("awskms");
    put(
        &bucket,
        &manifest_key,
        serde_json::to_vec(&other_seal).unwrap(),
    )
    .await;
    let run = dry_run(&[]).await;
    assert_eq!(run.output.status.code(), Some(2), "{}", run.all_output());
    let seal = &findings(&run)["seal"];
    assert_eq!(
        (seal.0.as_str(), seal.2.as_deref()),
        ("refuse", Some("force"))
    );
    let run = restore(&bucket, &url, &key, &none).await;
    assert_eq!(run.output.status.code(), Some(2), "{}", run.all_output());
    assert_eq!(run.result["cause"], "config");
    let reason = run.reason();
    assert!(
        reason.contains("`awskms` seal, the live cluster has a `static` seal")
            && reason.contains("give --force (RESTORE_FORCE) if that is meant"),
        "{reason}"
    );
    assert_not_asked(&openbao, attempts).await;
    put(
        &bucket,
        &manifest_key,
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;

    // A transform no plugin undoes cannot be forced: the preview names it.
    let mut unknown = manifest.clone();
    unknown["transforms"] =
        json!([{"name": "mystery", "version": "1.0.0", "sha256": "c".repeat(64)}]);
    put(
        &bucket,
        &manifest_key,
        serde_json::to_vec(&unknown).unwrap(),
    )
    .await;
    let run = dry_run(&[]).await;
    let plugins = &findings(&run)["plugins"];
    assert_eq!((plugins.0.as_str(), plugins.2.as_deref()), ("refuse", None));
    assert!(
        plugins.1.contains("no plugin undoes mystery 1.0.0"),
        "{plugins:?}"
    );
    put(
        &bucket,
        &manifest_key,
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    assert_not_asked(&openbao, attempts).await;

    // verify and restore log their progress as backup does.
    for command in ["verify", "restore"] {
        let mut args = command_args(&bucket, command, &url);
        set(&mut args, "--key", &key);
        set(&mut args, "--progress-interval", "0s");
        let run = run_cli(&args, &[]).await;
        assert!(run.ok(), "{}", run.all_output());
        let stderr = String::from_utf8_lossy(&run.output.stderr);
        let verb = if command == "verify" {
            "verified"
        } else {
            "restored"
        };
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("{verb} ")) && l.contains("/s of ")),
            "{stderr}"
        );
    }
    assert_eq!(
        openbao.cluster.secret("app").await,
        Some(json!({"v": "backed up"}))
    );
}

/// `drill`: the newest backup into a throwaway OpenBao (fresh, with the
/// cluster's static seal key), verified before the throwaway hears of it,
/// restored with force, unsealed at the manifest's Raft index, the canary
/// read back with a token of the restored data. A failure names its step.
#[tokio::test]
async fn a_drill_restores_into_a_throwaway_and_names_the_step_that_failed() {
    let bucket = Bucket::new("drill").await;
    let openbao = Source::start(1).await;
    openbao
        .cluster
        .put_secret("canary", json!({"value": "alive-7d1e"}))
        .await;
    let (key, snapshot) = backup(&bucket, &openbao, &Chain { specs: Vec::new() }).await;
    let manifest: Value =
        serde_json::from_slice(&bucket.read(&format!("{key}.manifest.json")).await).unwrap();
    // A token of the restored data that may read the canary, and one that may not.
    let admin = bucket.dir.join("admin.token");
    std::fs::write(&admin, testkit::openbao::ADMIN_TOKEN).unwrap();
    let unprivileged = bucket.dir.join("token");
    let spool = bucket.dir.join("spool");
    let drill = |url: &str, token: &Path| {
        let mut args = command_args(&bucket, "restore", url);
        args[0] = "drill".into();
        set(&mut args, "--spool-dir", spool.to_str().unwrap());
        set(&mut args, "--token-file", token.to_str().unwrap());
        args.extend(
            [
                "--canary-path",
                "secret/data/canary",
                "--canary-key",
                "value",
            ]
            .map(String::from),
        );
        args
    };
    let seal_key = &openbao.cluster.seal_key;

    let throwaway = Node::start_throwaway(seal_key).await.unwrap();
    let run = run_cli(&drill(&throwaway.url, &admin), &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let result = &run.result;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["key"], key.as_str());
    assert_eq!(result["snapshot"]["sha256"], snapshot.as_str());
    assert_eq!(result["raft"]["index"], manifest["raft"]["index"]);
    assert!(
        result["appliedIndex"].as_u64().unwrap() >= manifest["raft"]["index"].as_u64().unwrap()
    );
    assert!(
        result["recoverySeconds"].as_f64().unwrap() > 0.0,
        "{result}"
    );
    assert_eq!(result["canary"], "secret/data/canary");
    run.assert_no_secret(&["alive-7d1e", testkit::openbao::ADMIN_TOKEN]);
    // The throwaway serves the backup's data, unsealed by its own seal.
    let read = reqwest::Client::new()
        .get(format!("{}/v1/secret/data/canary", throwaway.url))
        .header("X-Vault-Token", testkit::openbao::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(read["data"]["data"]["value"], "alive-7d1e");
    throwaway.stop();
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);

    // A canary the token may not read: the canary step fails.
    let throwaway = Node::start_throwaway(seal_key).await.unwrap();
    let run = run_cli(&drill(&throwaway.url, &unprivileged), &[]).await;
    assert!(!run.ok());
    assert_eq!(run.result["step"], "canary", "{}", run.all_output());
    assert_eq!(run.result["cause"], "auth");
    assert_eq!(run.result["key"], key.as_str());
    assert!(
        run.reason().contains("secret/data/canary"),
        "{}",
        run.reason()
    );
    // The same throwaway, no longer fresh: refused at the start step.
    let run = run_cli(&drill(&throwaway.url, &admin), &[]).await;
    assert_eq!(run.result["step"], "start", "{}", run.all_output());
    assert!(
        run.reason().contains("not a fresh OpenBao"),
        "{}",
        run.reason()
    );
    throwaway.stop();

    // A tampered backup fails at the verify step; the throwaway (behind a
    // proxy counting every request) never got a byte, nor a question.
    let mut object = bucket.read(&key).await;
    let middle = object.len() / 2;
    object[middle] ^= 0x40;
    put(&bucket, &key, object).await;
    let throwaway = Node::start_throwaway(seal_key).await.unwrap();
    let proxy = OpenBaoProxy::start(&throwaway.url).await;
    let run = run_cli(&drill(&proxy.url(), &admin), &[]).await;
    assert!(!run.ok());
    assert_eq!(run.result["step"], "verify", "{}", run.all_output());
    assert_eq!(run.result["cause"], "invalid-snapshot");
    assert_eq!(run.output.status.code(), Some(6));
    assert_eq!(proxy.requests(), 0, "the throwaway was asked something");
    assert_eq!(throwaway.health().await, 501, "the throwaway stays fresh");
    // No verified snapshot is left behind, whatever happened.
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
}
