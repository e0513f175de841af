//! What a backup or restore Job runs: the OpenBao client, the S3 client,
//! the snapshot archive check, and the commands (backup, restore, verify,
//! decode, list, drill).

pub mod archive;
pub mod backup;
pub mod bucket;
pub mod drill;
pub mod error;
pub mod memory;
pub mod openbao;
pub mod progress;
pub mod restore;
pub mod s3;
pub mod storage;

pub use error::Error;
