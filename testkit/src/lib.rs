//! Test kit for openbao-backup: a faithful fake OpenBao, real Raft snapshot
//! archives, JWTs, a Garage (real S3) launcher and an S3 fault proxy.

pub mod garage;
pub mod jwt;
pub mod openbao;
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

pub use openbao::{FakeConfig, FakeOpenBao, Fault, Health, JwtRole};
pub use snapshot::SnapshotSpec;
