//! openbao-backup: backups of OpenBao Raft snapshots to S3-compatible storage.

pub mod api;
pub mod archive;
pub mod backup;
pub mod chain;
pub mod cli;
pub mod error;
pub mod memory;
pub mod openbao;
pub mod operator;
pub mod plugin;
pub mod plugin_command;
pub mod plugin_spec;
pub mod restore;
pub mod retention;
pub mod s3;
pub mod secret;
pub mod signing;
pub mod units;
