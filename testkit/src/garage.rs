//! Launches a real Garage S3 server on loopback for tests, benchmarks and the
//! local demo: single node, one access key allowed to create buckets.
//!
//! It runs under a `Guard`: it stops when this process exits.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::guard::Guard;
use crate::{free_port, random};

pub const REGION: &str = "garage";

pub struct Garage {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub dir: PathBuf,
    guard: Guard,
}

impl Garage {
    /// One server per test process, started on first use.
    pub fn shared() -> &'static Garage {
        static SHARED: OnceLock<Garage> = OnceLock::new();
        SHARED.get_or_init(|| Garage::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// The `garage` binary: $GARAGE_BIN, else `garage` on the PATH.
    pub fn binary() -> Result<PathBuf, String> {
        crate::find_binary("GARAGE_BIN", "garage").ok_or_else(|| {
            "garage not found: run scripts/setup (it builds Garage) or set GARAGE_BIN".into()
        })
    }

    pub fn start() -> Result<Self, String> {
        let binary = Self::binary()?;
        let dir = std::env::temp_dir().join(format!(
            "openbao-backup-garage-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let (s3_port, rpc_port) = (free_port(), free_port());
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "lmdb"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3_port}"
s3_region = "{REGION}"
root_domain = ".s3.garage.localhost"
"#,
                dir = dir.display(),
                secret = hex::encode(random::<32>()),
            ),
        )
        .map_err(|e| format!("cannot write the Garage config: {e}"))?;
        let access_key_id = format!("GK{}", hex::encode(random::<12>()));
        let secret_access_key = hex::encode(random::<32>());

        let mut command = Command::new("sh");
        command
            .env("GARAGE", &binary)
            .env("GARAGE_CONFIG", &config)
            .env("GARAGE_DEFAULT_ACCESS_KEY", &access_key_id)
            .env("GARAGE_DEFAULT_SECRET_KEY", &secret_access_key)
            .env("RUST_LOG", "garage=warn");
        let guard = Guard::spawn(
            command,
            r#""$GARAGE" -c "$GARAGE_CONFIG" server --single-node --default-access-key >"$GUARD_DIR/garage.log" 2>&1 & pids=$!"#,
            &dir,
        )?;
        let garage = Self {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            access_key_id,
            secret_access_key,
            dir,
            guard,
        };
        garage.wait_ready()?;
        Ok(garage)
    }

    /// Ready when the default key exists, which Garage creates after its
    /// layout is in place.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self
                .cli(&["key", "info", &self.access_key_id])?
                .status
                .success()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default();
        Err(format!(
            "Garage did not become ready within 30 s; its log:\n{log}"
        ))
    }

    /// Runs a `garage` admin command against this server.
    pub fn cli(&self, args: &[&str]) -> Result<std::process::Output, String> {
        Command::new(Self::binary()?)
            .arg("-c")
            .arg(self.dir.join("garage.toml"))
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .map_err(|e| format!("cannot run garage {}: {e}", args.join(" ")))
    }

    /// Environment for the AWS CLI and the backup command.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", REGION.to_string()),
            // AWS CLI v1 reads only this one.
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ]
    }

    /// Stops the server now (it also stops when this process exits).
    pub fn stop(&self) {
        self.guard.stop();
    }
}
