//! What a backup or restore Job runs: the OpenBao client, the S3 client,
//! the snapshot archive check, and the commands (backup, restore, verify,
//! decode, list).

pub mod archive;
pub mod backup;
pub mod bucket;
pub mod error;
pub mod memory;
pub mod openbao;
pub mod restore;
pub mod s3;
pub mod storage;

pub use error::Error;
