//! A restore's preview: what restoring a backup into a live cluster would
//! do, finding by finding, before a byte of the snapshot is sent. The
//! executor prints it (`restore --dry-run`); the operator records it in an
//! `OpenBaoRestore`'s status.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::snapshot::{ContentDigest, RaftInfo};

/// How a finding weighs on the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// The restore goes ahead; worth reading first.
    Warn,
    /// A restore is refused unless `override_` says it is meant (when it
    /// can be).
    Refuse,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Refuse => "refuse",
        }
    }
}

/// What forces a refused finding, as the command line and the
/// `OpenBaoRestore` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Override {
    /// A backup of another cluster (a new cluster replacing a lost one).
    AllowOtherCluster,
    /// A backup sealed otherwise than the live cluster (`snapshot-force`).
    Force,
}

impl Override {
    /// The command line's flag and variable.
    pub fn flag(self) -> &'static str {
        match self {
            Self::AllowOtherCluster => "--allow-other-cluster (RESTORE_ALLOW_OTHER_CLUSTER)",
            Self::Force => "--force (RESTORE_FORCE)",
        }
    }

    /// The `OpenBaoRestore` field.
    pub fn spec_field(self) -> &'static str {
        match self {
            Self::AllowOtherCluster => "spec.allowOtherCluster",
            Self::Force => "spec.force",
        }
    }
}

/// One comparison of the backup with the live cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// `cluster`, `raft`, `version`, `seal`, `age`, `size`, `plugins`,
    /// `signature`.
    pub check: String,
    pub verdict: Verdict,
    pub message: String,
    /// What would force it, for a refusal that can be forced (and for a
    /// warning that was forced).
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_: Option<Override>,
}

/// The preview of restoring `key` into the live cluster at `node`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewReport {
    pub key: String,
    pub node: String,
    pub object: ContentDigest,
    pub raft: RaftInfo,
    pub findings: Vec<Finding>,
    pub started_at: DateTime<Utc>,
    pub duration_seconds: f64,
}

impl PreviewReport {
    /// Whether a restore would be refused.
    pub fn refused(&self) -> bool {
        self.findings.iter().any(|f| f.verdict == Verdict::Refuse)
    }

    /// The refusals as one line; see [`refusal`].
    pub fn refusal(&self, name: impl Fn(Override) -> &'static str) -> Option<String> {
        refusal(&self.key, &self.findings, name)
    }

    /// The report for people: one line per finding.
    pub fn render(&self) -> String {
        let mut out = format!(
            "restore preview of {}\n  into {} (nothing was sent)\n",
            self.key, self.node
        );
        for f in &self.findings {
            let force = match (f.verdict, f.override_) {
                (Verdict::Refuse, Some(o)) => format!(" [{} forces it]", o.flag()),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  {:<6} {:<9} {}{force}\n",
                f.verdict.as_str(),
                f.check,
                f.message
            ));
        }
        out.push_str(if self.refused() {
            "verdict: a restore would be refused\n"
        } else {
            "verdict: a restore would go ahead\n"
        });
        out
    }
}

/// The refusals among `findings` as one line, each with what forces it,
/// spelled by `name` (`Override::flag` or `Override::spec_field`); None
/// when nothing is refused.
pub fn refusal(
    key: &str,
    findings: &[Finding],
    name: impl Fn(Override) -> &'static str,
) -> Option<String> {
    let reasons: Vec<String> = findings
        .iter()
        .filter(|f| f.verdict == Verdict::Refuse)
        .map(|f| match f.override_ {
            Some(o) => format!("{}; give {} if that is meant", f.message, name(o)),
            None => f.message.clone(),
        })
        .collect();
    (!reasons.is_empty()).then(|| format!("refusing to restore {key}: {}", reasons.join("; ")))
}
