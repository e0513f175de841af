//! `spec.backup.copies` in backup pods: each copy as the executor's
//! [`CopyTarget`] in `BACKUP_COPIES`, its credentials Secret mounted at
//! its own directory, its volume at its own mount, and the egress its
//! endpoint needs. Pure.

use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, PodSpec, Volume};
use k8s_openapi::api::networking::v1::NetworkPolicyEgressRule;

use super::executor_pod::RUN_AS;
use super::network::{ip_peer, tcp, url_port};
use crate::api::{BackupSpec, BackupTarget};
use crate::objects::{env_var, mount, secret_volume};
use contract::executor::copies::CopyTarget;
use contract::executor::env;
use contract::executor::paths::{COPY_CREDENTIALS_DIR, COPY_VOLUME_DIR};
use contract::network::url_ip;

/// Copy `i` as the executor takes it: where it goes, and where its
/// credentials and volume are mounted.
pub fn copy_target(i: usize, copy: &BackupTarget) -> CopyTarget {
    let mut target = CopyTarget {
        name: copy.volume.is_some().then(|| location(i, copy)),
        endpoint: copy.endpoint.clone(),
        region: copy.region.clone(),
        credentials_dir: copy
            .credentials_secret_ref
            .as_ref()
            .map(|_| format!("{COPY_CREDENTIALS_DIR}/{i}")),
        ..Default::default()
    };
    match (&copy.volume, &copy.azure) {
        (Some(_), _) => target.directory = Some(format!("{COPY_VOLUME_DIR}/{i}")),
        (None, Some(azure)) => {
            target.azure_account = Some(azure.account.clone());
            target.azure_container = Some(azure.container.clone());
            target.azure_endpoint = azure.endpoint.clone();
        }
        (None, None) => target.bucket = Some(copy.bucket.clone()),
    }
    target
}

/// Where a copy goes, as results, status and metrics name it:
/// `s3://BUCKET`, `azure://ACCOUNT/CONTAINER`, or `pvc://CLAIM[/SUBPATH]`
/// for a volume (which the executor sees as a mount path).
pub fn location(i: usize, copy: &BackupTarget) -> String {
    match &copy.volume {
        Some(volume) => match &volume.sub_path {
            Some(sub) => format!("pvc://{}/{sub}", volume.persistent_volume_claim.claim_name),
            None => format!("pvc://{}", volume.persistent_volume_claim.claim_name),
        },
        None => copy_target(i, copy).location(),
    }
}

/// Adds the copies to a backup pod: `BACKUP_COPIES`, and each copy's
/// credentials (read-only) and volume (writable).
pub(super) fn add_to_pod(backup: &BackupSpec, pod: &mut PodSpec) {
    if backup.copies.is_empty() {
        return;
    }
    let targets: Vec<CopyTarget> = backup
        .copies
        .iter()
        .enumerate()
        .map(|(i, copy)| copy_target(i, copy))
        .collect();
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    for (i, copy) in backup.copies.iter().enumerate() {
        if let Some(secret) = &copy.credentials_secret_ref {
            let name = format!("copy-{i}-credentials");
            volumes.push(secret_volume(&name, &secret.name));
            mounts.push(mount(&name, &format!("{COPY_CREDENTIALS_DIR}/{i}")));
        }
        if let Some(volume) = &copy.volume {
            let name = format!("copy-{i}");
            let mut writable = mount(&name, &format!("{COPY_VOLUME_DIR}/{i}"));
            writable.read_only = Some(false);
            writable.sub_path = volume.sub_path.clone();
            volumes.push(Volume {
                name,
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: volume.persistent_volume_claim.claim_name.clone(),
                    read_only: None,
                }),
                ..Default::default()
            });
            mounts.push(writable);
            // A volume that supports ownership becomes writable by the executor.
            if let Some(security) = pod.security_context.as_mut() {
                security.fs_group = Some(RUN_AS);
            }
        }
    }
    pod.volumes.get_or_insert_with(Vec::new).extend(volumes);
    let container = &mut pod.containers[0];
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .extend(mounts);
    container.env.get_or_insert_with(Vec::new).push(env_var(
        env::BACKUP_COPIES,
        serde_json::to_string(&targets).expect("copies serialize"),
    ));
}

/// Egress to each copy's endpoint port (a volume needs none); under
/// `Hardened` an endpoint given as an address is reached at that address
/// only, as the target's.
pub(super) fn egress(backup: &BackupSpec, hardened: bool) -> Vec<NetworkPolicyEgressRule> {
    backup
        .copies
        .iter()
        .filter(|copy| copy.volume.is_none())
        .map(|copy| NetworkPolicyEgressRule {
            to: copy
                .storage_endpoint()
                .filter(|_| hardened)
                .and_then(url_ip)
                .map(|ip| vec![ip_peer(ip)]),
            ports: Some(vec![tcp(copy.storage_endpoint().map_or(443, url_port))]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::{BackupTarget, ClaimRef, LocalRef, OpenBaoCluster, Profile, VolumeTarget};
    use crate::desired::backup::{cronjob, network_policy};
    use crate::desired::tests::{self, backup_to, cluster};
    use crate::settings::OperatorSettings;

    fn with_copies(
        copies: Vec<BackupTarget>,
        profile: Option<Profile>,
    ) -> (OpenBaoCluster, BackupSpec) {
        let backup = BackupSpec {
            copies,
            ..backup_to(BackupTarget {
                bucket: "primary".into(),
                endpoint: Some("https://s3.example.com".into()),
                credentials_secret_ref: Some(LocalRef { name: "s3".into() }),
                ..Default::default()
            })
        };
        let mut cluster = cluster(backup.clone());
        cluster.spec.profile = profile;
        (cluster, backup)
    }

    fn offsite() -> BackupTarget {
        BackupTarget {
            bucket: "offsite".into(),
            endpoint: Some("http://10.1.2.3:3900".into()),
            region: Some("eu".into()),
            credentials_secret_ref: Some(LocalRef {
                name: "offsite-keys".into(),
            }),
            ..Default::default()
        }
    }

    fn volume() -> BackupTarget {
        BackupTarget {
            volume: Some(VolumeTarget {
                persistent_volume_claim: ClaimRef {
                    claim_name: "nfs".into(),
                },
                sub_path: Some("bao".into()),
            }),
            ..Default::default()
        }
    }

    fn backup_pod(cluster: &OpenBaoCluster, backup: &BackupSpec) -> PodSpec {
        tests::pod(&cronjob(cluster, backup, &OperatorSettings::default()))
    }

    #[test]
    fn copies_reach_the_backup_pod_with_their_own_credentials_and_volumes() {
        let (cluster, backup) = with_copies(vec![offsite(), volume()], None);
        let pod = backup_pod(&cluster, &backup);
        let env: BTreeMap<String, String> = pod.containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        let copies: Vec<CopyTarget> = serde_json::from_str(&env["BACKUP_COPIES"]).unwrap();
        assert_eq!(
            copies,
            [
                CopyTarget {
                    bucket: Some("offsite".into()),
                    endpoint: Some("http://10.1.2.3:3900".into()),
                    region: Some("eu".into()),
                    credentials_dir: Some(format!("{COPY_CREDENTIALS_DIR}/0")),
                    ..Default::default()
                },
                CopyTarget {
                    name: Some("pvc://nfs/bao".into()),
                    directory: Some(format!("{COPY_VOLUME_DIR}/1")),
                    ..Default::default()
                },
            ]
        );
        assert_eq!(copies[0].location(), "s3://offsite");
        // The primary's credentials stay where they were.
        assert_eq!(env["S3_BUCKET"], "primary");
        let mounts = pod.containers[0].volume_mounts.as_ref().unwrap();
        let credentials = mounts
            .iter()
            .find(|m| m.name == "copy-0-credentials")
            .unwrap();
        assert_eq!(credentials.mount_path, format!("{COPY_CREDENTIALS_DIR}/0"));
        assert_eq!(credentials.read_only, Some(true));
        let claim = mounts.iter().find(|m| m.name == "copy-1").unwrap();
        assert_eq!(
            claim.read_only,
            Some(false),
            "backups write to the copy's volume"
        );
        assert_eq!(claim.sub_path.as_deref(), Some("bao"));
        let volumes = pod.volumes.as_ref().unwrap();
        let secret = volumes
            .iter()
            .find(|v| v.name == "copy-0-credentials")
            .unwrap();
        assert_eq!(
            secret.secret.as_ref().unwrap().secret_name.as_deref(),
            Some("offsite-keys")
        );
        let pvc = volumes.iter().find(|v| v.name == "copy-1").unwrap();
        assert_eq!(
            pvc.persistent_volume_claim.as_ref().unwrap().claim_name,
            "nfs"
        );
        assert_eq!(
            pod.security_context.as_ref().unwrap().fs_group,
            Some(RUN_AS)
        );

        // Without copies: no variable, nothing mounted.
        let (cluster, backup) = with_copies(Vec::new(), None);
        let pod = backup_pod(&cluster, &backup);
        assert!(
            !pod.containers[0]
                .env
                .iter()
                .flatten()
                .any(|e| e.name == "BACKUP_COPIES")
        );
        assert!(
            !pod.volumes
                .iter()
                .flatten()
                .any(|v| v.name.starts_with("copy-"))
        );
    }

    #[test]
    fn backup_pods_may_reach_each_copys_endpoint() {
        let ports = |policy: &k8s_openapi::api::networking::v1::NetworkPolicy| {
            policy
                .spec
                .as_ref()
                .unwrap()
                .egress
                .as_ref()
                .unwrap()
                .clone()
        };
        let (cluster, backup) = with_copies(vec![offsite(), volume()], None);
        let egress = ports(&network_policy(&cluster, &backup));
        // DNS, OpenBao, the target, and the bucket copy (a volume needs none).
        assert_eq!(egress.len(), 4, "{egress:#?}");
        let copy = &egress[3];
        assert_eq!(
            copy.ports.as_ref().unwrap()[0].port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(3900))
        );
        assert_eq!(copy.to, None, "Development: any destination on the port");
        let (cluster, backup) = with_copies(vec![offsite()], Some(Profile::Hardened));
        let egress = ports(&network_policy(&cluster, &backup));
        let to = egress[3].to.as_ref().expect("Hardened: the address only");
        assert_eq!(to[0].ip_block.as_ref().unwrap().cidr, "10.1.2.3/32");
    }
}
