//! What backup and restore pods are given for each storage target: a
//! bucket's variables, a PersistentVolumeClaim mounted where
//! `BACKUP_DIRECTORY` points, an Azure container's variables.

use super::backup::endpoint_port;
use super::tests::{self, backup_to, env, pods};
use crate::api::{
    AzureTarget, BackupSpec, BackupTarget, ClaimRef, LocalRef, OpenBaoCluster, VolumeTarget,
};
use contract::executor::paths::BACKUP_VOLUME_DIR;

fn cluster(target: BackupTarget) -> (OpenBaoCluster, BackupSpec) {
    let backup = backup_to(target);
    (tests::cluster(backup.clone()), backup)
}

#[test]
fn a_volume_is_mounted_where_the_executor_writes_backups() {
    let (cluster, backup) = cluster(BackupTarget {
        volume: Some(VolumeTarget {
            persistent_volume_claim: ClaimRef {
                claim_name: "backups".into(),
            },
            sub_path: Some("bao".into()),
        }),
        ..Default::default()
    });
    for (pod, writable) in pods(&cluster, &backup).iter().zip([true, false]) {
        let env = env(pod);
        assert_eq!(env["BACKUP_DIRECTORY"], BACKUP_VOLUME_DIR);
        assert!(!env.contains_key("S3_BUCKET"), "one storage only: {env:?}");
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "backups")
            .expect("the claim's volume");
        assert_eq!(
            volume.persistent_volume_claim.as_ref().unwrap().claim_name,
            "backups"
        );
        let mount = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "backups")
            .expect("mounted");
        assert_eq!(mount.mount_path, BACKUP_VOLUME_DIR);
        assert_eq!(mount.sub_path.as_deref(), Some("bao"));
        assert_eq!(mount.read_only, Some(!writable), "restores only read");
        let security = pod.security_context.as_ref().unwrap();
        assert_eq!(
            security.fs_group,
            Some(65532),
            "the volume is the executor's"
        );
    }
}

#[test]
fn azure_gets_its_account_container_and_key() {
    let (cluster, backup) = cluster(BackupTarget {
        azure: Some(AzureTarget {
            account: "acct".into(),
            container: "backups".into(),
            endpoint: Some("https://acct.blob.core.usgovcloudapi.net".into()),
        }),
        credentials_secret_ref: Some(LocalRef {
            name: "azure-key".into(),
        }),
        ..Default::default()
    });
    for pod in pods(&cluster, &backup) {
        let env = env(&pod);
        assert_eq!(env["AZURE_STORAGE_ACCOUNT"], "acct");
        assert_eq!(env["AZURE_CONTAINER"], "backups");
        assert_eq!(
            env["AZURE_ENDPOINT"],
            "https://acct.blob.core.usgovcloudapi.net"
        );
        assert!(env.contains_key("S3_CREDENTIALS_DIR"), "the key's Secret");
        assert!(!env.contains_key("S3_BUCKET") && !env.contains_key("BACKUP_DIRECTORY"));
        assert_eq!(pod.security_context.as_ref().unwrap().fs_group, None);
    }
    // The NetworkPolicy lets the pods reach Azure's endpoint's port.
    let mut emulated = backup.clone();
    emulated.target.azure.as_mut().unwrap().endpoint =
        Some("http://azurite.test:10000/acct".into());
    assert_eq!(endpoint_port(&emulated), 10000);
}

#[test]
fn a_bucket_is_as_before() {
    let (cluster, backup) = cluster(BackupTarget {
        bucket: "openbao-backups".into(),
        ..Default::default()
    });
    for pod in pods(&cluster, &backup) {
        let env = env(&pod);
        assert_eq!(env["S3_BUCKET"], "openbao-backups");
        assert!(!env.contains_key("BACKUP_DIRECTORY") && !env.contains_key("AZURE_CONTAINER"));
        assert!(pod.volumes.iter().flatten().all(|v| v.name != "backups"));
    }
}
