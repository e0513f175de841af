//! What `openbao-backup drill` reports: the one JSON line it prints (and
//! writes to the result file, the drill Job's termination message), read
//! back by the operator into `status.restoreTest`. Bounded like the other
//! results: the reason is cut to [`crate::result::MAX_REASON`] characters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::snapshot::{ContentDigest, RaftInfo};

/// The steps of a drill, in order; a failed drill names the one that
/// failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrillStep {
    /// The whole backup downloaded and every digest checked, before the
    /// throwaway OpenBao receives a byte.
    Verify,
    /// The throwaway OpenBao answers, fresh (never initialised).
    Start,
    /// `sys/init` of the throwaway.
    Initialise,
    /// The verified snapshot sent (forced: the throwaway has other keys).
    Restore,
    /// The throwaway comes back active and unsealed with the restored data.
    Unseal,
    /// Its applied Raft index reaches the manifest's.
    RaftIndex,
    /// The canary secret read back.
    Canary,
    /// The throwaway and the drill Job deleted (the operator's step).
    Cleanup,
}

impl DrillStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Start => "start",
            Self::Initialise => "initialise",
            Self::Restore => "restore",
            Self::Unseal => "unseal",
            Self::RaftIndex => "raft-index",
            Self::Canary => "canary",
            Self::Cleanup => "cleanup",
        }
    }
}

/// The one JSON line `drill` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum DrillResult {
    Succeeded(DrillReport),
    #[serde(rename_all = "camelCase")]
    Failed {
        step: DrillStep,
        cause: String,
        reason: String,
        /// The backup drilled, once known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        completed_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub key: String,
    pub snapshot: ContentDigest,
    /// The Raft index and term the manifest recorded.
    pub raft: RaftInfo,
    /// The applied Raft index the throwaway reached (at least `raft.index`).
    pub applied_index: u64,
    /// The canary path read, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Download and checks, before the throwaway got a byte.
    pub verify_seconds: f64,
    /// Measured time to recover: from the restore's first byte to the
    /// throwaway unsealed at the manifest's index (and the canary read).
    pub recovery_seconds: f64,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_result_reads_back_with_its_step() {
        let line = r#"{"status":"failed","step":"raft-index","cause":"openbao","reason":"r","completedAt":"2026-11-30T01:00:00Z"}"#;
        let result: DrillResult = serde_json::from_str(line).unwrap();
        assert!(matches!(
            result,
            DrillResult::Failed {
                step: DrillStep::RaftIndex,
                ..
            }
        ));
        assert_eq!(serde_json::to_string(&result).unwrap(), line);
        assert_eq!(
            serde_json::to_value(DrillStep::Initialise).unwrap(),
            DrillStep::Initialise.as_str()
        );
    }
}
