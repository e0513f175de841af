//! Leftovers of backups killed before they could clean up (SIGKILL, an OOM
//! kill): an open multipart upload, whose parts are billed but invisible
//! (or a directory's temporary file),
//! and an object without a manifest, from a kill between completing the
//! upload and writing the manifest or between retention's two deletes.
//! Each backup sweeps its own cluster's prefix of both once they are older
//! than `--sweep-after`, which is longer than any backup runs, so a backup
//! still running is never touched.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::storage::{OpenUpload, Store};
use contract::layout::{MANIFEST_SUFFIX, parse_key};
use contract::result::SweepReport;

/// What to remove under a cluster's prefix.
#[derive(Debug, Default, PartialEq)]
pub struct Leftovers {
    pub uploads: Vec<OpenUpload>,
    pub objects: Vec<String>,
}

/// The leftovers among the listed objects (key, size, last modified) and
/// open uploads: only keys this tool writes, directly under `prefix`, older
/// than `after`.
pub fn leftovers(
    prefix: &str,
    objects: &[(String, u64, DateTime<Utc>)],
    uploads: &[OpenUpload],
    now: DateTime<Utc>,
    after: Duration,
) -> Leftovers {
    let old = |time: DateTime<Utc>| (now - time).to_std().is_ok_and(|age| age >= after);
    let ours = |key: &str| parse_key(prefix, key).is_some();
    let manifests: HashSet<&str> = objects
        .iter()
        .filter_map(|(key, _, _)| key.strip_suffix(MANIFEST_SUFFIX))
        .collect();
    Leftovers {
        uploads: uploads
            .iter()
            .filter(|u| ours(&u.key) && old(u.initiated))
            .cloned()
            .collect(),
        objects: objects
            .iter()
            .filter(|(key, _, modified)| {
                ours(key) && !manifests.contains(key.as_str()) && old(*modified)
            })
            .map(|(key, _, _)| key.clone())
            .collect(),
    }
}

/// Removes the leftovers under `prefix`. A failure is reported, not
/// returned: the backup does not depend on it.
pub async fn sweep(store: &Store, prefix: &str, after: Duration) -> SweepReport {
    let mut report = SweepReport::default();
    if let Err(error) = remove(store, prefix, after, &mut report).await {
        tracing::warn!(%error, "could not sweep the leftovers of earlier backups");
        report.error = Some(error.to_string());
    }
    report
}

async fn remove(
    store: &Store,
    prefix: &str,
    after: Duration,
    report: &mut SweepReport,
) -> Result<(), Error> {
    let uploads = store.open_uploads(prefix).await?;
    let objects = store.list(prefix).await?;
    let found = leftovers(prefix, &objects, &uploads, Utc::now(), after);
    for upload in found.uploads {
        store.abort_open(&upload).await?;
        tracing::info!(key = %upload.key, initiated = %upload.initiated, "aborted the upload of an interrupted backup");
        report.aborted_uploads.push(upload.key);
    }
    for key in found.objects {
        store.delete(&key).await?;
        tracing::info!(%key, "deleted an object without a manifest (an interrupted backup)");
        report.deleted_objects.push(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const PREFIX: &str = "c/ns/bao/";
    const HOUR: Duration = Duration::from_secs(3600);

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, hour, 0, 0).unwrap()
    }

    fn key(name: &str) -> String {
        format!("{PREFIX}20261124T0{name}0000.000Z-scheduled-aaaaaa.snap")
    }

    #[test]
    fn old_uploads_and_old_objects_without_manifest_go() {
        let objects = vec![
            // Complete: object and manifest.
            (key("1"), 9, at(1)),
            (format!("{}{MANIFEST_SUFFIX}", key("1")), 1, at(1)),
            // Killed before its manifest, long ago.
            (key("2"), 9, at(2)),
            // Killed before its manifest, or still writing it: too recent.
            (key("8"), 9, at(8)),
            // Not ours: never touched.
            (format!("{PREFIX}notes.txt"), 1, at(0)),
            (
                format!("{PREFIX}sub/{}", &key("3")[PREFIX.len()..]),
                1,
                at(0),
            ),
        ];
        let upload = |name: &str, hour| OpenUpload {
            key: key(name),
            upload_id: format!("id-{name}"),
            initiated: at(hour),
        };
        let foreign = OpenUpload {
            key: format!("{PREFIX}notes.txt"),
            ..upload("x", 0)
        };
        let uploads = vec![upload("3", 3), upload("7", 7), foreign];
        let found = leftovers(PREFIX, &objects, &uploads, at(9), 3 * HOUR);
        assert_eq!(
            found,
            Leftovers {
                uploads: vec![upload("3", 3)],
                objects: vec![key("2")],
            }
        );
        // At exactly the limit it goes; a clock behind the store keeps all.
        let found = leftovers(PREFIX, &objects, &uploads, at(9), HOUR);
        assert_eq!(found.objects, vec![key("2"), key("8")]);
        assert_eq!(
            leftovers(PREFIX, &objects, &uploads, at(0), Duration::ZERO),
            Leftovers {
                uploads: vec![],
                objects: vec![]
            }
        );
    }
}
