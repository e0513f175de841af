//! The storage targets other than S3, end to end with the real binary and
//! real OpenBao: a directory (a mounted volume) and Azure Blob Storage (the
//! Azurite emulator). Each must hold backups as a bucket does: backup,
//! list, verify, restore and retention through the same keys and
//! manifests, and a failed or killed backup leaves nothing behind.

mod support;

use std::path::{Path, PathBuf};

use executor::s3::TargetConfig;
use executor::storage::Store;
use executor::storage::target::{AzureTarget, Backend};
use serde_json::{Value, json};
use support::{MIB, Run, Source, TOKEN, run_cli, set, sha256_hex};
use testkit::Fault;
use testkit::azurite::Azurite;

/// A scratch directory with the token file, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "openbao-backup-storage-{name}-{}",
            hex::encode(testkit::random::<4>())
        ));
        std::fs::create_dir_all(dir.join("backups")).unwrap();
        std::fs::create_dir_all(dir.join("credentials")).unwrap();
        std::fs::write(dir.join("token"), TOKEN).unwrap();
        Self(dir)
    }

    fn backups(&self) -> PathBuf {
        self.0.join("backups")
    }

    /// Every file under the backup directory, relative, sorted.
    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.backups(), &self.backups(), &mut files);
        files.sort();
        files
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Arguments for `command` with `storage` (the target's flags).
fn args(command: &str, scratch: &Scratch, openbao: &str, storage: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec![command.into()];
    if command == "backup" || command == "restore" {
        args.extend([
            "--openbao-addr".into(),
            openbao.into(),
            "--token-file".into(),
            scratch.0.join("token").display().to_string(),
        ]);
    }
    if command == "backup" {
        args.extend(["--part-size".into(), "5MiB".into()]);
    }
    args.extend(
        [
            "--path-prefix",
            "clusters/test",
            "--cluster",
            "bao",
            "--namespace",
            "prod",
        ]
        .map(String::from),
    );
    args.extend(storage.iter().cloned());
    args
}

fn directory_flags(scratch: &Scratch) -> Vec<String> {
    vec![
        "--directory".into(),
        scratch.backups().display().to_string(),
    ]
}

async fn list(args: &[String]) -> Vec<Value> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .args(args)
        .arg("--json")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Backup, list, verify, restore and retention through one target; returns
/// the key of the backup retention kept.
async fn round_trip(scratch: &Scratch, openbao: &Source, storage: &[String]) -> String {
    let url = openbao.url();
    openbao
        .cluster
        .put_secret("app", json!({"backup": 1}))
        .await;
    let run = run_cli(&args("backup", scratch, &url, storage), &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let first = run.result["key"].as_str().unwrap().to_string();
    let served = openbao.served().last().cloned().unwrap();
    assert_eq!(run.result["sha256"], served.sha256.as_str());
    assert!(
        run.result["parts"].as_u64() >= Some(2),
        "several parts: {}",
        run.result
    );

    let listed = list(&args("list", scratch, &url, storage)).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["key"], first.as_str());
    assert_eq!(listed[0]["sha256"], served.sha256.as_str());

    let run = run_cli(&args("verify", scratch, &url, storage), &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(run.result["key"], first.as_str());

    openbao
        .cluster
        .put_secret("app", json!({"backup": "none"}))
        .await;
    let mut restore = args("restore", scratch, &url, storage);
    restore.push("--latest".into());
    let run = run_cli(&restore, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    assert_eq!(run.result["key"], first.as_str());
    assert_eq!(
        openbao.cluster.secret("app").await,
        Some(json!({"backup": 1})),
        "OpenBao serves the restored data"
    );

    // Retention: the second backup with --max-count 1 deletes the first.
    let mut backup = args("backup", scratch, &url, storage);
    set(&mut backup, "--max-count", "1");
    let run = run_cli(&backup, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let second = run.result["key"].as_str().unwrap().to_string();
    assert_eq!(
        run.result["retention"]["deleted"][0]["key"],
        first.as_str(),
        "{}",
        run.result
    );
    let listed = list(&args("list", scratch, &url, storage)).await;
    let keys: Vec<&str> = listed.iter().filter_map(|b| b["key"].as_str()).collect();
    assert_eq!(keys, [second.as_str()]);
    second
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_holds_backups_as_a_bucket_does() {
    let scratch = Scratch::new("dir");
    let openbao = Source::start(12).await;
    let key = round_trip(&scratch, &openbao, &directory_flags(&scratch)).await;
    // The bucket's key layout, as files; nothing temporary left.
    assert_eq!(
        scratch.files(),
        [key.clone(), format!("{key}.manifest.json")]
    );
    let bytes = std::fs::read(scratch.backups().join(&key)).unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(scratch.backups().join(format!("{key}.manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["object"]["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(manifest["key"], key.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_directory_backup_leaves_nothing_and_a_killed_one_is_swept() {
    let scratch = Scratch::new("dir-fail");
    let openbao = Source::start(16).await;
    let url = openbao.url();
    let storage = directory_flags(&scratch);

    // A stream cut after two parts: the temporary file is removed.
    openbao.set_fault(Fault::CutAfter(10 * MIB + 12345));
    let run = run_cli(&args("backup", &scratch, &url, &storage), &[]).await;
    assert!(!run.ok());
    assert!(run.reason().contains("broke after"), "{}", run.reason());
    assert_eq!(scratch.files(), Vec::<String>::new());

    // A missing mount is refused naming the flag, creating nothing.
    let mut missing = args("backup", &scratch, &url, &storage);
    let absent = scratch.0.join("not-mounted");
    set(&mut missing, "--directory", absent.to_str().unwrap());
    let run: Run = run_cli(&missing, &[]).await;
    assert!(
        run.reason().contains("--directory (BACKUP_DIRECTORY)"),
        "{}",
        run.reason()
    );
    assert!(!absent.exists());

    // A SIGKILL mid-upload leaves the temporary file...
    openbao.set_fault(Fault::StallAfter(12 * MIB));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .args(args("backup", &scratch, &url, &storage))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = |files: &[String]| files.iter().any(|f| f.contains(".partial-"));
    for _ in 0..100 {
        if partial(&scratch.files()) && openbao.served().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    child.kill().await.unwrap();
    let left = scratch.files();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(partial(&left), "{left:?}");
    openbao.set_fault(Fault::None);

    // ...which is not a backup, and which the next backup removes once
    // older than --sweep-after.
    let listed = list(&args("list", &scratch, &url, &storage)).await;
    assert!(listed.is_empty(), "{listed:?}");
    let mut backup = args("backup", &scratch, &url, &storage);
    set(&mut backup, "--sweep-after", "0s");
    let run = run_cli(&backup, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let killed = left[0].replace("/.", "/");
    let killed = killed.split(".partial-").next().unwrap();
    assert_eq!(run.result["swept"]["abortedUploads"], json!([killed]));
    let key = run.result["key"].as_str().unwrap();
    assert_eq!(
        scratch.files(),
        [key.to_string(), format!("{key}.manifest.json")]
    );
}

fn azure_flags(azurite: &Azurite, scratch: &Scratch, container: &str) -> Vec<String> {
    std::fs::write(scratch.0.join("credentials/accountKey"), &azurite.key).unwrap();
    [
        "--azure-account",
        &azurite.account,
        "--azure-container",
        container,
        "--azure-endpoint",
        &azurite.endpoint,
        "--credentials-dir",
        scratch.0.join("credentials").to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// A new container in Azurite, as the backups' store.
async fn container(azurite: &Azurite, scratch: &Scratch, name: &str) -> Store {
    let target = TargetConfig {
        backend: Backend::Azure(AzureTarget {
            account: azurite.account.clone(),
            container: name.into(),
            endpoint: Some(azurite.endpoint.clone()),
        }),
        endpoint: None,
        bucket: String::new(),
        region: None,
        path_prefix: String::new(),
        part_size: 5 * MIB,
        concurrency: 1,
        credentials_dir: Some(scratch.0.join("credentials")),
        ca_bundle: None,
        force_path_style: false,
        checksums: true,
        max_attempts: 3,
        hardened: None,
    };
    let store = Store::open(&target).await.unwrap();
    let Store::Azure(azure) = &store else {
        unreachable!()
    };
    azure.create_container().await.unwrap();
    store
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_blob_storage_holds_backups_as_a_bucket_does() {
    let azurite = Azurite::shared();
    let scratch = Scratch::new("azure");
    let name = format!("backups-{}", hex::encode(testkit::random::<4>()));
    let storage = azure_flags(azurite, &scratch, &name);
    let store = container(azurite, &scratch, &name).await;
    let openbao = Source::start(12).await;
    let key = round_trip(&scratch, &openbao, &storage).await;
    let mut blobs: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
    blobs.sort();
    assert_eq!(blobs, [key.clone(), format!("{key}.manifest.json")]);
    let bytes = store.get(&key).await.unwrap().unwrap();
    let served = openbao.served().last().cloned().unwrap();
    assert_eq!(sha256_hex(&bytes), served.sha256);

    // A failed backup (the stream cut after two staged blocks) commits no
    // blob, and its output holds no secret.
    let url = openbao.url();
    openbao.set_fault(Fault::CutAfter(10 * MIB + 12345));
    let run = run_cli(&args("backup", &scratch, &url, &storage), &[]).await;
    assert!(!run.ok());
    assert!(run.reason().contains("broke after"), "{}", run.reason());
    run.assert_no_secret(&[TOKEN, &azurite.key]);
    assert_eq!(store.list("").await.unwrap().len(), 2, "no new blob");

    // A wrong key: Azure's refusal, with the hint, and no secret.
    std::fs::write(
        scratch.0.join("credentials/accountKey"),
        "d3Jvbmcga2V5IHdyb25nIGtleQ==",
    )
    .unwrap();
    openbao.set_fault(Fault::None);
    let run = run_cli(&args("verify", &scratch, &url, &storage), &[]).await;
    assert!(!run.ok());
    let reason = run.reason();
    assert!(
        reason.contains("Azure Blob error")
            && reason.contains("403")
            && reason.contains("check --azure-account"),
        "{reason}"
    );
    run.assert_no_secret(&[&azurite.key]);
}

/// Google Cloud Storage's XML API refuses the `x-amz-checksum-*` headers
/// the SDK adds by default: with `--s3-checksum none` no request carries
/// one, and the backup still verifies (by its own SHA-256) and restores.
#[tokio::test(flavor = "multi_thread")]
async fn without_checksums_no_request_carries_a_checksum_header() {
    use support::Bucket;
    use testkit::s3proxy::{Operation, S3Proxy};
    let openbao = Source::start(12).await;
    let sent = async |checksum: &str| {
        let bucket = Bucket::new("checksums").await;
        let proxy =
            S3Proxy::start(bucket.garage.endpoint.trim_start_matches("http://"), None).await;
        let mut backup = bucket.args(&openbao.url());
        set(&mut backup, "--endpoint", &proxy.url());
        set(&mut backup, "--s3-checksum", checksum);
        let run = run_cli(&backup, &[]).await;
        assert!(run.ok(), "{}", run.all_output());
        let mut verify = bucket.args(&openbao.url());
        verify[0] = "verify".into();
        for flag in [
            "--openbao-addr",
            "--token-file",
            "--progress-interval",
            "--part-size",
        ] {
            support::unset(&mut verify, flag);
        }
        set(&mut verify, "--endpoint", &proxy.url());
        set(&mut verify, "--s3-checksum", checksum);
        let run = run_cli(&verify, &[]).await;
        assert!(run.ok(), "{}", run.all_output());
        [
            Operation::CreateMultipartUpload,
            Operation::UploadPart,
            Operation::CompleteMultipartUpload,
            Operation::PutObject,
            Operation::GetObject,
        ]
        .map(|op| proxy.checksum_headers(op))
        .concat()
    };
    let with = sent("crc32").await;
    assert!(
        with.iter().any(|h| h.contains("x-amz-checksum-crc32")),
        "by default parts carry their CRC32: {with:?}"
    );
    assert_eq!(sent("none").await, Vec::<String>::new());
}
