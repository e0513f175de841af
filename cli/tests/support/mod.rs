//! Shared pieces of the integration tests: a bucket per test in the shared
//! Garage, a real OpenBao node behind a recording proxy, the backup binary
//! as a child process, and bucket inspection.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use aws_sdk_s3::Client;
use executor::s3::TargetConfig;
use sha2::{Digest, Sha256};
use testkit::garage::{Garage, REGION};
use testkit::{Cluster, ClusterSpec, OpenBaoProxy};

pub const MIB: u64 = 1024 * 1024;
/// A token id (real OpenBao refuses ids with a dot).
pub const TOKEN: &str = "backup-token-7f1c2e9a";

/// A real OpenBao node (`TOKEN` may back up and restore), behind a proxy
/// that records every snapshot it served and breaks downloads on demand.
/// Derefs to the proxy, whose URL the commands get.
pub struct Source {
    pub cluster: Cluster,
    pub proxy: OpenBaoProxy,
}

impl Source {
    /// A single node holding at least `fill_mib` MiB of kv data.
    pub async fn start(fill_mib: u64) -> Self {
        Self::with(
            ClusterSpec::single().with_token(TOKEN, &["backup", "restore"]),
            fill_mib,
        )
        .await
    }

    pub async fn with(spec: ClusterSpec, fill_mib: u64) -> Self {
        let cluster = Cluster::start(spec).await;
        if fill_mib > 0 {
            cluster.fill("data", fill_mib).await;
        }
        let proxy = OpenBaoProxy::start(&cluster.url().await).await;
        Self { cluster, proxy }
    }
}

impl std::ops::Deref for Source {
    type Target = OpenBaoProxy;

    fn deref(&self) -> &OpenBaoProxy {
        &self.proxy
    }
}

/// A fresh bucket in the shared Garage and a scratch directory.
pub struct Bucket {
    pub name: String,
    pub client: Client,
    pub garage: &'static Garage,
    pub dir: PathBuf,
}

impl Drop for Bucket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bucket {
    pub async fn new(test: &str) -> Self {
        let garage = Garage::shared();
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).unwrap();
        let name = format!("{}-{}", test.replace('_', "-"), hex::encode(random));
        let dir = std::env::temp_dir().join(format!("openbao-backup-test-{name}"));
        std::fs::create_dir_all(dir.join("s3")).unwrap();
        std::fs::write(dir.join("s3/accessKeyId"), &garage.access_key_id).unwrap();
        std::fs::write(
            dir.join("s3/secretAccessKey"),
            format!("{}\n", garage.secret_access_key),
        )
        .unwrap();
        std::fs::write(dir.join("token"), TOKEN).unwrap();
        let client = s3_client(&garage.endpoint, &dir.join("s3")).await;
        client
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .expect("create bucket");
        Self {
            name,
            client,
            garage,
            dir,
        }
    }

    /// Arguments for a backup into this bucket with token auth and 5 MiB parts.
    pub fn args(&self, openbao: &str) -> Vec<String> {
        [
            "backup",
            "--openbao-addr",
            openbao,
            "--token-file",
            self.dir.join("token").to_str().unwrap(),
            "--endpoint",
            &self.garage.endpoint,
            "--region",
            REGION,
            "--bucket",
            &self.name,
            "--credentials-dir",
            self.dir.join("s3").to_str().unwrap(),
            "--path-prefix",
            "clusters/test",
            "--cluster",
            "bao",
            "--namespace",
            "prod",
            "--part-size",
            "5MiB",
            "--progress-interval",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Every key in the bucket.
    pub async fn keys(&self) -> Vec<String> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    /// Multipart uploads still open in the bucket.
    pub async fn open_uploads(&self) -> usize {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.name)
            .send()
            .await
            .unwrap();
        out.uploads().len()
    }

    /// After a failure: no object, no manifest, no parts left behind.
    pub async fn assert_untouched(&self) {
        assert_eq!(
            self.keys().await,
            Vec::<String>::new(),
            "a failed backup must leave no object"
        );
        assert_eq!(
            self.open_uploads().await,
            0,
            "a failed backup must leave no multipart upload"
        );
    }

    /// Streams an object back and returns its size and SHA-256.
    pub async fn digest(&self, key: &str) -> (u64, String) {
        let mut body = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .unwrap()
            .body;
        let (mut size, mut hasher) = (0u64, Sha256::new());
        while let Some(chunk) = body.try_next().await.unwrap() {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        (size, hex::encode(hasher.finalize()))
    }

    pub async fn read(&self, key: &str) -> Vec<u8> {
        let out = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }
}

pub async fn s3_client(endpoint: &str, credentials_dir: &Path) -> Client {
    executor::s3::client(&TargetConfig {
        backend: Default::default(),
        endpoint: Some(endpoint.to_string()),
        bucket: String::new(),
        region: Some(REGION.into()),
        path_prefix: String::new(),
        part_size: 5 * MIB,
        concurrency: 1,
        credentials_dir: Some(credentials_dir.to_path_buf()),
        ca_bundle: None,
        hardened: None,
        force_path_style: true,
        checksums: true,
        max_attempts: 3,
    })
    .await
    .unwrap()
}

/// The backup binary's outcome.
pub struct Run {
    pub output: Output,
    pub result: serde_json::Value,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Everything the command printed.
    pub fn all_output(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.output.stdout),
            self.stderr()
        )
    }

    /// The one-line reason printed on failure.
    pub fn reason(&self) -> String {
        let lines: Vec<&str> = self
            .output
            .stderr
            .split(|b| *b == b'\n')
            .filter_map(|l| std::str::from_utf8(l).ok())
            .filter(|l| {
                ["backup", "restore", "verify", "decode", "drill"]
                    .iter()
                    .any(|c| l.starts_with(&format!("{c} failed: ")))
            })
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "exactly one reason line expected in:\n{}",
            self.stderr()
        );
        lines[0].to_string()
    }

    pub fn assert_no_secret(&self, secrets: &[&str]) {
        let all = self.all_output();
        for secret in secrets {
            assert!(
                !all.contains(secret),
                "a secret leaked into the output:\n{all}"
            );
        }
    }
}

/// Runs the binary with `args` (the command first).
pub async fn run_cli(args: &[String], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_openbao-backup"));
    cmd.args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("LOG_LEVEL", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().await.expect("backup binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let result = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "stdout must end with the JSON result, got:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Run { output, result }
}

/// Sets `flag` to `value` in `args`, replacing an earlier value.
pub fn set(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(at) => args[at + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
}

/// Removes `flag` and its value from `args`.
pub fn unset(args: &mut Vec<String>, flag: &str) {
    let at = args.iter().position(|a| a == flag).expect("flag present");
    args.drain(at..at + 2);
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Runs the binary, failing the test unless it succeeds, and parses each
/// stdout line as JSON.
pub async fn run_cli_lines(args: &[String]) -> Vec<serde_json::Value> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_openbao-backup"))
        .args(args)
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

/// Every file under `root`, as a path relative to it, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
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
    walk(root, root, &mut files);
    files.sort();
    files
}

/// Runs `command` (a tool, not the binary under test), failing the test
/// with its output unless it succeeds; returns its stdout.
pub fn succeed(command: &mut std::process::Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (scripts/setup installs it)"));
    assert!(
        out.status.success(),
        "{command:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
