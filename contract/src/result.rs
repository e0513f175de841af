//! What the executor reports: the one JSON line a backup prints (and
//! writes to the result file, the Job's termination message), and the
//! restore's. The operator reads these back, so they live here, typed on
//! both sides. The kubelet keeps 4 KiB of a termination message: every
//! list in a result is cut to a byte budget, and counts say how many
//! entries there were.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::snapshot::{ContentDigest, RaftInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    Scheduled,
    Manual,
    PreUpgrade,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Manual => "manual",
            Self::PreUpgrade => "pre-upgrade",
        }
    }
}

/// The one JSON line the command prints, and writes to --result-file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
#[allow(clippy::large_enum_variant)] // one per run: size does not matter
pub enum BackupResult {
    #[serde(rename_all = "camelCase")]
    Succeeded {
        key: String,
        manifest_key: String,
        bucket: String,
        /// The stored object's size and SHA-256.
        size: u64,
        sha256: String,
        /// The snapshot as OpenBao served it (before the transforms).
        #[serde(default)]
        snapshot: ContentDigest,
        kind: BackupKind,
        source_node: String,
        started_at: DateTime<Utc>,
        completed_at: DateTime<Utc>,
        duration_seconds: f64,
        throughput_bytes_per_second: u64,
        parts: u32,
        /// Peak resident memory of the command, to size the Job's limits.
        peak_memory_bytes: Option<u64>,
        /// What retention deleted (or why it could not).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retention: Option<RetentionReport>,
        /// Leftovers of interrupted backups removed (or why they could not be).
        #[serde(default, skip_serializing_if = "SweepReport::is_empty")]
        swept: SweepReport,
        /// The second copies, in the order given: each verified or not.
        /// A failed copy leaves the backup (and its exit code) as it is.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        copies: Vec<CopyReport>,
    },
    #[serde(rename_all = "camelCase")]
    Failed {
        cause: String,
        reason: String,
        kind: BackupKind,
        started_at: DateTime<Utc>,
        completed_at: DateTime<Utc>,
    },
}

/// A second copy of the backup: where it went (never a credential),
/// whether it was read back whole and matched the manifest's digests, and
/// why not. Errors are cut to [`COPY_ERROR_BUDGET`] characters so that four
/// copies fit in a termination message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    pub target: String,
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Backups retention deleted from this target.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pruned: usize,
    /// Why retention on this target failed (the copy stands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_error: Option<String>,
}

/// The most characters of a copy's error kept in the result ([`cut`]).
pub const COPY_ERROR_BUDGET: usize = 300;

/// What retention did, in the backup's result. The result is also the
/// Job's termination message, of which the kubelet keeps 4 KiB, and a run
/// may delete thousands of backups: in JSON the lists are cut to fit
/// [`REPORT_BUDGET`] bytes, and the counts say how many there were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "ReportJson", from = "ReportJson")]
pub struct RetentionReport {
    pub deleted: Vec<DeletedBackup>,
    /// Deletions the policy asked for that the host refused, with why.
    pub refused: Vec<DeletedBackup>,
    /// Set when retention failed; the new backup stands regardless.
    pub error: Option<String>,
    /// Deleted backups not in `deleted`: a report read back from JSON
    /// whose list was cut.
    pub unlisted_deleted: usize,
    /// Refused deletions not in `refused`, likewise.
    pub unlisted_refused: usize,
}

impl RetentionReport {
    pub fn deleted_count(&self) -> usize {
        self.deleted.len() + self.unlisted_deleted
    }

    pub fn refused_count(&self) -> usize {
        self.refused.len() + self.unlisted_refused
    }
}

/// The most bytes a report takes in JSON, whatever retention did; the
/// rest of a backup's result stays well under 2 KiB (its keys are bounded
/// by the CRD's limits on their parts).
pub const REPORT_BUDGET: usize = 2048;
/// The most characters of a reason or an error in JSON.
const MAX_TEXT: usize = 256;

/// The JSON form: counts, and as many entries as fit the budget.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportJson {
    #[serde(default)]
    deleted_count: usize,
    #[serde(default)]
    deleted: Vec<DeletedBackup>,
    #[serde(default, skip_serializing_if = "is_zero")]
    refused_count: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    refused: Vec<DeletedBackup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

impl From<RetentionReport> for ReportJson {
    fn from(report: RetentionReport) -> Self {
        let mut json = ReportJson {
            deleted_count: report.deleted_count(),
            refused_count: report.refused_count(),
            deleted: Vec::new(),
            refused: Vec::new(),
            error: report.error.map(|error| cut(error, MAX_TEXT)),
        };
        // Two counts and at most 256 characters of error (6 bytes each
        // when escaped) leave room for entries, listed while they fit.
        let empty = serde_json::to_string(&json).map_or(REPORT_BUDGET, |text| text.len());
        let mut room = REPORT_BUDGET.saturating_sub(empty + r#","refused":[]"#.len());
        let shortened = |entries: Vec<DeletedBackup>| {
            entries.into_iter().map(|entry| DeletedBackup {
                key: entry.key,
                reason: cut(entry.reason, MAX_TEXT),
            })
        };
        json.deleted = list_within(shortened(report.deleted), &mut room);
        json.refused = list_within(shortened(report.refused), &mut room);
        json
    }
}

/// The first `entries` whose JSON (each with its comma) fits in `room`
/// bytes; `room` keeps what is left. Reports in a backup's result list
/// through this, so the result fits a termination message whatever the
/// run did.
pub fn list_within<T: Serialize>(entries: impl IntoIterator<Item = T>, room: &mut usize) -> Vec<T> {
    let mut listed = Vec::new();
    for entry in entries {
        let size = serde_json::to_string(&entry).map_or(usize::MAX, |text| text.len() + 1);
        if size > *room {
            break;
        }
        *room -= size;
        listed.push(entry);
    }
    listed
}

/// At most `max` characters of `text`.
pub fn cut(text: String, max: usize) -> String {
    text.chars().take(max).collect()
}

impl From<ReportJson> for RetentionReport {
    fn from(json: ReportJson) -> Self {
        RetentionReport {
            unlisted_deleted: json.deleted_count.saturating_sub(json.deleted.len()),
            unlisted_refused: json.refused_count.saturating_sub(json.refused.len()),
            deleted: json.deleted,
            refused: json.refused,
            error: json.error,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedBackup {
    pub key: String,
    pub reason: String,
}

/// What the sweep removed, in the backup's result. Like the retention
/// report, its JSON holds counts and lists only what fits
/// [`SWEEP_BUDGET`] bytes: a sweep of thousands of leftovers must not push
/// the result past the 4 KiB of a termination message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "SweepJson", from = "SweepJson")]
pub struct SweepReport {
    /// Keys of the multipart uploads aborted.
    pub aborted_uploads: Vec<String>,
    /// Objects without a manifest deleted.
    pub deleted_objects: Vec<String>,
    /// Set when the sweep failed; the backup goes on regardless.
    pub error: Option<String>,
    /// Aborted uploads not in `aborted_uploads`: a report read back from
    /// JSON whose list was cut.
    pub unlisted_aborted: usize,
    /// Deleted objects not in `deleted_objects`, likewise.
    pub unlisted_deleted: usize,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The most bytes a sweep report takes in JSON, whatever it removed.
pub const SWEEP_BUDGET: usize = 512;
/// The most characters of its error: 6 bytes each when escaped, so the
/// error alone stays inside the budget (the log has it whole).
const MAX_ERROR: usize = 64;

/// The JSON form: counts, and as many keys as fit the budget.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SweepJson {
    #[serde(default, skip_serializing_if = "is_zero")]
    aborted_count: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aborted_uploads: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    deleted_count: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deleted_objects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<SweepReport> for SweepJson {
    fn from(report: SweepReport) -> Self {
        let mut json = SweepJson {
            aborted_count: report.aborted_uploads.len() + report.unlisted_aborted,
            deleted_count: report.deleted_objects.len() + report.unlisted_deleted,
            aborted_uploads: Vec::new(),
            deleted_objects: Vec::new(),
            error: report.error.map(|error| cut(error, MAX_ERROR)),
        };
        let empty = serde_json::to_string(&json).map_or(SWEEP_BUDGET, |text| text.len());
        let brackets = r#","abortedUploads":[],"deletedObjects":[]"#.len();
        let mut room = SWEEP_BUDGET.saturating_sub(empty + brackets);
        json.aborted_uploads = list_within(report.aborted_uploads, &mut room);
        json.deleted_objects = list_within(report.deleted_objects, &mut room);
        json
    }
}

impl From<SweepJson> for SweepReport {
    fn from(json: SweepJson) -> Self {
        SweepReport {
            unlisted_aborted: json
                .aborted_count
                .saturating_sub(json.aborted_uploads.len()),
            unlisted_deleted: json
                .deleted_count
                .saturating_sub(json.deleted_objects.len()),
            aborted_uploads: json.aborted_uploads,
            deleted_objects: json.deleted_objects,
            error: json.error,
        }
    }
}

/// The one JSON line `restore`, `verify` and `decode` print (and write to
/// the result file). Every field is bounded: the key by the CRD's limits
/// on its parts, the reason cut to [`MAX_REASON`] characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum ReadBackResult {
    Restored(ReadBackReport),
    Verified(ReadBackReport),
    Decoded(ReadBackReport),
    /// `restore --dry-run`: nothing was sent.
    Previewed(crate::preview::PreviewReport),
    #[serde(rename_all = "camelCase")]
    Failed {
        cause: String,
        reason: String,
        completed_at: DateTime<Utc>,
    },
}

/// The most characters of a failure's reason in a result.
pub const MAX_REASON: usize = 1024;

/// A backup read back and checked end to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadBackReport {
    pub key: String,
    pub snapshot: ContentDigest,
    pub object: ContentDigest,
    pub raft: RaftInfo,
    /// The transforms undone, as `name version`, in the order applied.
    pub transforms: Vec<String>,
    /// The node restored into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Whether the restore was forced past OpenBao's seal check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced: Option<bool>,
    /// The file decoded into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_back_result_says_its_status_first_and_reads_back() {
        let line = r#"{"status":"restored","key":"ns/bao/k.snap","snapshot":{"size":7,"sha256":"ab"},"object":{"size":9,"sha256":"cd"},"raft":{"index":42,"term":3,"stateSize":5},"transforms":["zstd 0.1.0"],"node":"https://bao-0:8200/","forced":false,"startedAt":"2026-11-30T01:00:00Z","durationSeconds":1.5}"#;
        let result: ReadBackResult = serde_json::from_str(line).unwrap();
        let ReadBackResult::Restored(report) = &result else {
            panic!("{result:?}")
        };
        assert_eq!((report.raft.index, report.snapshot.size), (42, 7));
        assert_eq!(serde_json::to_string(&result).unwrap(), line);

        let failed: ReadBackResult = serde_json::from_str(
            r#"{"cause":"config","completedAt":"2026-11-30T01:00:00Z","reason":"no backup","status":"failed"}"#,
        )
        .unwrap();
        assert!(matches!(failed, ReadBackResult::Failed { reason, .. } if reason == "no backup"));
    }
}
