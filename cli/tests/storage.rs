//! The storage targets other than S3, end to end with the real binary and
//! real OpenBao: a directory (a mounted volume) and Azure Blob Storage (the
//! Azurite emulator). Each must hold backups as a bucket does: backup,
//! list, verify, restore and retention through the same keys and
//! manifests, and a failed or killed backup leaves nothing behind.

mod support;

use std::path::PathBuf;

use executor::s3::TargetConfig;
use executor::storage::Store;
use executor::storage::target::{AzureTarget, Backend};
use serde_json::{Value, json};
use support::{MIB, Run, Source, TOKEN, files_under, run_cli, run_cli_lines, set, sha256_hex};
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
        files_under(&self.backups())
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
    let mut args = args.to_vec();
    args.push("--json".into());
    run_cli_lines(&args).await
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

/// `--copy` as JSON for a copy into `bucket`, reached at `endpoint`.
fn s3_copy(bucket: &support::Bucket, endpoint: &str) -> String {
    json!({
        "bucket": bucket.name,
        "endpoint": endpoint,
        "region": testkit::garage::REGION,
        "credentialsDir": bucket.dir.join("s3"),
    })
    .to_string()
}

/// Second copies: a copy to another bucket and to a directory are
/// streamed from the primary, read back and verified (the same bytes and
/// manifest); a copy to a closed port and one whose read-back breaks are
/// reported not verified, leave nothing in their target, and leave the
/// backup and its exit code as they are. Retention prunes every target,
/// and a copy restores (and is checked) like the primary.
#[tokio::test(flavor = "multi_thread")]
async fn second_copies_are_verified_and_a_failed_copy_leaves_the_backup_alone() {
    use support::Bucket;
    use testkit::s3proxy::S3Proxy;
    let openbao = Source::start(12).await;
    let (primary, offsite, broken) = (
        Bucket::new("copy-primary").await,
        Bucket::new("copy-offsite").await,
        Bucket::new("copy-broken").await,
    );
    let scratch = Scratch::new("copies");
    let proxy = S3Proxy::start(broken.garage.endpoint.trim_start_matches("http://"), None).await;
    proxy.cut_downloads_after(MIB);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut backup = primary.args(&openbao.url());
    set(&mut backup, "--max-attempts", "2");
    for copy in [
        s3_copy(&offsite, &offsite.garage.endpoint),
        json!({"directory": scratch.backups()}).to_string(),
        s3_copy(&offsite, &format!("http://127.0.0.1:{closed}")),
        s3_copy(&broken, &proxy.url()),
    ] {
        backup.extend(["--copy".into(), copy]);
    }
    let run = run_cli(&backup, &[]).await;
    assert!(
        run.ok(),
        "a failed copy never fails the backup: {}",
        run.all_output()
    );
    let key = run.result["key"].as_str().unwrap().to_string();
    let manifest_key = format!("{key}.manifest.json");
    let copies = run.result["copies"]
        .as_array()
        .expect("copies reported")
        .clone();
    assert_eq!(copies.len(), 4, "{}", run.result);
    let offsite_name = format!("s3://{}", offsite.name);
    let directory = scratch.backups().display().to_string();
    assert_eq!(copies[0]["target"], offsite_name.as_str());
    assert_eq!(copies[0]["verified"], true, "{}", copies[0]);
    assert_eq!(copies[1]["target"], directory.as_str());
    assert_eq!(copies[1]["verified"], true, "{}", copies[1]);
    for (copy, what) in [
        (&copies[2], "closed port"),
        (&copies[3], "broken read-back"),
    ] {
        assert_eq!(copy["verified"], false, "{what}: {copy}");
        assert!(
            copy["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {copy}"
        );
    }
    assert_eq!(
        copies[3]["target"],
        format!("s3://{}", broken.name).as_str()
    );
    run.assert_no_secret(&[&primary.garage.secret_access_key]);

    // The copies hold the primary's bytes and manifest.
    let digest = primary.digest(&key).await;
    assert_eq!(digest.1, run.result["sha256"].as_str().unwrap());
    assert_eq!(offsite.digest(&key).await, digest);
    assert_eq!(
        offsite.read(&manifest_key).await,
        primary.read(&manifest_key).await
    );
    assert_eq!(
        sha256_hex(&std::fs::read(scratch.backups().join(&key)).unwrap()),
        digest.1
    );
    assert_eq!(scratch.files(), [key.clone(), manifest_key.clone()]);
    // The broken target: written, not verified, removed.
    broken.assert_untouched().await;
    assert!(
        proxy.count(testkit::s3proxy::Operation::UploadPart).0 >= 2,
        "the copy was written before its read-back broke"
    );
    // The primary is untouched by its copies' failures.
    assert_eq!(primary.keys().await.len(), 2);

    // Restore from the copy: the same backup, checked, into OpenBao.
    openbao
        .cluster
        .put_secret("app", json!({"copy": "after"}))
        .await;
    let mut restore = args(
        "restore",
        &scratch,
        &openbao.url(),
        &directory_flags(&scratch),
    );
    restore.push("--latest".into());
    let restored = run_cli(&restore, &[]).await;
    assert!(restored.ok(), "{}", restored.all_output());
    assert_eq!(restored.result["key"], key.as_str());
    assert_eq!(
        restored.result["object"]["sha256"],
        digest.1.as_str(),
        "{}",
        restored.result
    );

    // Retention runs on every target the copy reached.
    let mut second = primary.args(&openbao.url());
    set(&mut second, "--max-count", "1");
    second.extend([
        "--copy".into(),
        s3_copy(&offsite, &offsite.garage.endpoint),
        "--copy".into(),
        json!({"directory": scratch.backups()}).to_string(),
    ]);
    let run = run_cli(&second, &[]).await;
    assert!(run.ok(), "{}", run.all_output());
    let newer = run.result["key"].as_str().unwrap().to_string();
    for copy in run.result["copies"].as_array().unwrap() {
        assert_eq!(copy["verified"], true, "{copy}");
        assert_eq!(copy["pruned"], 1, "{copy}");
    }
    assert_eq!(
        scratch.files(),
        [newer.clone(), format!("{newer}.manifest.json")]
    );
    let mut keys = offsite.keys().await;
    keys.sort();
    assert_eq!(keys, [newer.clone(), format!("{newer}.manifest.json")]);

    // A copy altered afterwards fails `verify` on that target.
    std::fs::write(scratch.backups().join(&newer), b"tampered").unwrap();
    let run = run_cli(
        &args(
            "verify",
            &scratch,
            &openbao.url(),
            &directory_flags(&scratch),
        ),
        &[],
    )
    .await;
    assert!(!run.ok(), "{}", run.all_output());
}
