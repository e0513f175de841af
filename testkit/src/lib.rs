//! Test kit for openbao-backup: a faithful fake OpenBao, real Raft snapshot
//! archives, JWTs, a Garage (real S3) launcher and an S3 fault proxy.

pub mod garage;
pub mod jwt;
pub mod openbao;
pub mod s3proxy;
pub mod snapshot;
pub mod tls;

pub use openbao::{FakeConfig, FakeOpenBao, Fault, Health, JwtRole};
pub use snapshot::SnapshotSpec;
