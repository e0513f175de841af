//! Test kit for openbao-backup: real OpenBao (`bao`) and Garage (S3)
//! launchers, fault proxies in front of each, a fake OpenBao for what a
//! real one cannot produce, Raft snapshot archives, JWTs, and a
//! kube-apiserver launcher.

pub mod azurite;
pub mod fake_openbao;
pub mod garage;
pub mod guard;
pub mod jwt;
pub mod kube;
pub mod openbao;
pub mod openbao_proxy;
pub mod plugins;
pub mod retention_cases;
pub mod s3proxy;
pub mod snapshot;
pub mod tls;

/// Random bytes from the OS, for tokens, keys and names.
pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the OS provides randomness");
    bytes
}

/// A free TCP port on loopback (free when asked; servers bind it right
/// after), never one this process was given before: the OS may hand a
/// just-released port out again, and a server given the same port for two
/// listeners fails to start.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if GIVEN.lock().expect("lock").insert(port) {
            return port;
        }
    }
}

/// A program: the path in `$env_var` if set, else `name` on the PATH.
pub fn find_binary(env_var: &str, name: &str) -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(path.into());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

pub use fake_openbao::{FakeConfig, FakeOpenBao, Health, JwtRole};
pub use openbao::{Cluster, ClusterSpec};
pub use openbao_proxy::{Fault, OpenBaoProxy};
pub use snapshot::SnapshotSpec;
