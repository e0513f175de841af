//! Launches Azurite, the Azure Storage emulator (npm package `azurite`,
//! which scripts/setup installs into the cache), on loopback with a random
//! port and a random account and key: only its Blob service.
//!
//! It runs under a `Guard`: it stops when this process exits.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::guard::Guard;
use crate::{free_port, random};

pub struct Azurite {
    /// The Blob service URL, the account as its first path segment.
    pub endpoint: String,
    pub account: String,
    /// The account key, base64 as Azure shows it.
    pub key: String,
    pub dir: PathBuf,
    guard: Guard,
}

impl Azurite {
    /// One server per test process, started on first use.
    pub fn shared() -> &'static Azurite {
        static SHARED: OnceLock<Azurite> = OnceLock::new();
        SHARED.get_or_init(|| Azurite::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// `azurite-blob`: $AZURITE_BIN, else on the PATH.
    pub fn binary() -> Result<PathBuf, String> {
        crate::find_binary("AZURITE_BIN", "azurite-blob").ok_or_else(|| {
            "azurite-blob not found: run scripts/setup (npm installs it) or set AZURITE_BIN".into()
        })
    }

    pub fn start() -> Result<Self, String> {
        let binary = Self::binary()?;
        let dir = std::env::temp_dir().join(format!(
            "openbao-backup-azurite-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let port = free_port();
        let account = format!("acct{}", hex::encode(random::<4>()));
        let key = base64::engine::general_purpose::STANDARD.encode(random::<32>());
        let mut command = Command::new("sh");
        command
            .env("AZURITE", &binary)
            .env("AZURITE_ACCOUNTS", format!("{account}:{key}"))
            .env("AZURITE_PORT", port.to_string());
        let guard = Guard::spawn(
            command,
            r#""$AZURITE" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" --location "$GUARD_DIR/data" --disableProductStyleUrl --disableTelemetry --silent >"$GUARD_DIR/azurite.log" 2>&1 & pids=$!"#,
            &dir,
        )?;
        let azurite = Self {
            endpoint: format!("http://127.0.0.1:{port}/{account}"),
            account,
            key,
            dir,
            guard,
        };
        azurite.wait_ready(port)?;
        Ok(azurite)
    }

    fn wait_ready(&self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(self.dir.join("azurite.log")).unwrap_or_default();
        Err(format!(
            "Azurite did not listen within 30 s; its log:\n{log}"
        ))
    }

    /// Stops the server now (it also stops when this process exits).
    pub fn stop(&self) {
        self.guard.stop();
    }
}
