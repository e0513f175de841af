//! The container image: `scripts/image` packages this build's binary, a
//! real OCI tool (umoci) unpacks the archive, and the binary runs from the
//! unpacked root filesystem with nothing from the host (chroot, empty
//! environment, the image's non-root user): `--version`, then a real backup
//! of real OpenBao into Garage through the built-in zstd plugin and the
//! keep-last plugin file the image ships. Two
//! builds of the same binary give the same archive.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{Bucket, Source, TOKEN, files_under, set, sha256_hex, succeed};

const BINARY: &str = "/usr/local/bin/openbao-backup";

/// The image's root filesystem, unpacked by umoci, and the runtime
/// configuration umoci derived from the image's config.
struct Unpacked {
    dir: PathBuf,
    rootfs: PathBuf,
    runtime: Value,
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn build_and_unpack() -> Unpacked {
    let dir = std::env::temp_dir().join(format!("openbao-backup-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("layout")).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let archive = dir.join("image.tar");
    succeed(
        Command::new(repo.join("scripts/image"))
            .args(["--binary", env!("CARGO_BIN_EXE_openbao-backup"), "--out"])
            .arg(&archive)
            .env(
                "PLUGINS_DIR",
                testkit::plugins::plugin_path("zstd").parent().unwrap(),
            ),
    );
    succeed(
        Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.join("layout")),
    );
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    succeed(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", dir.join("layout").display()))
            .arg(dir.join("bundle")),
    );
    let runtime = serde_json::from_slice(&std::fs::read(dir.join("bundle/config.json")).unwrap())
        .expect("umoci writes a runtime config");
    Unpacked {
        rootfs: dir.join("bundle/rootfs"),
        dir,
        runtime,
    }
}

impl Unpacked {
    /// The image's binary run inside its root filesystem as the image's
    /// user, with an empty environment (so `chroot` by its full path).
    fn command(&self, args: &[String]) -> Command {
        let user = &self.runtime["process"]["user"];
        let mut cmd = Command::new("/usr/sbin/chroot");
        cmd.env_clear()
            .arg(format!("--userspec={}:{}", user["uid"], user["gid"]))
            .arg(&self.rootfs)
            .arg(BINARY)
            .args(args);
        cmd
    }

    /// Every path in the root filesystem.
    fn paths(&self) -> Vec<String> {
        files_under(&self.rootfs)
            .into_iter()
            .map(|path| format!("/{path}"))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_runs_a_real_backup_with_nothing_from_the_host() {
    let image = build_and_unpack();

    // Runs as a non-root user, the binary as its entrypoint.
    assert_eq!(image.runtime["process"]["user"]["uid"], 65532);
    assert_eq!(image.runtime["process"]["args"][0], BINARY);
    // Nothing but the binary, its libraries, CA certificates, the user
    // database and the plugins: no shell, no package manager.
    let paths = image.paths();
    for path in &paths {
        assert!(
            path == BINARY
                || path.starts_with("/lib")
                || path.starts_with("/usr/lib")
                || path.starts_with("/usr/share/openbao-backup/plugins/")
                || [
                    "/etc/ssl/certs/ca-certificates.crt",
                    "/etc/passwd",
                    "/etc/group",
                    "/etc/nsswitch.conf",
                ]
                .contains(&path.as_str()),
            "unexpected {path} in the image: {paths:#?}"
        );
    }

    let version = succeed(&mut image.command(&["--version".into()]));
    assert_eq!(
        version.trim(),
        format!("openbao-backup {}", env!("CARGO_PKG_VERSION"))
    );

    // A real backup from inside the image: the token and S3 credentials are
    // copied in, as Kubernetes would mount them.
    let bucket = Bucket::new("image").await;
    let openbao = Source::start(2).await;
    let secrets = image.rootfs.join("tmp/secrets");
    std::fs::create_dir_all(secrets.join("s3")).unwrap();
    for file in ["token", "s3/accessKeyId", "s3/secretAccessKey"] {
        std::fs::copy(bucket.dir.join(file), secrets.join(file)).unwrap();
    }
    // The image's user must read them.
    succeed(Command::new("chmod").args(["-R", "a+rX"]).arg(&secrets));
    let mut args = bucket.args(&openbao.url());
    set(&mut args, "--token-file", "/tmp/secrets/token");
    set(&mut args, "--credentials-dir", "/tmp/secrets/s3");
    // The built-in zstd (inside the binary), and keep-last from the
    // image's plugin files.
    let keep_last = serde_json::json!({
        "file": "/usr/share/openbao-backup/plugins/keep-last.wasm",
        "config": {"maxCount": 5},
    });
    args.extend([
        "--transform".into(),
        "builtin:zstd".into(),
        "--retention-plugin".into(),
        keep_last.to_string(),
    ]);
    let out = image.command(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(TOKEN) && !String::from_utf8_lossy(&out.stderr).contains(TOKEN));
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    assert!(result["retention"]["deleted"].is_array(), "{result}");
    let key = result["key"].as_str().unwrap();
    let stored = bucket.read(key).await;
    assert_eq!(result["sha256"], sha256_hex(&stored));
    assert!(
        stored.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "a zstd frame"
    );
    let served = openbao.served().last().cloned().unwrap();
    assert_eq!(result["snapshot"]["sha256"], served.sha256);
}
