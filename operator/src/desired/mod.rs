//! The objects the operator wants, one module per what it builds: the
//! OpenBao StatefulSet and its companions, the backup objects (CronJob,
//! ServiceAccounts, NetworkPolicy, pre-upgrade Job), the `Hardened`
//! profile's NetworkPolicy of the OpenBao pods, the restore Job, and
//! the executor pod the Jobs share. Pure functions of the resource and the
//! operator's settings, applied with server-side apply.

pub mod backup;
pub mod companions;
pub mod copies;
pub mod drill;
mod executor_pod;
pub mod network;
pub mod restore_job;
pub mod statefulset;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::api::OpenBaoCluster;
use crate::names::openbao_labels;
use crate::objects::owned_meta;

/// Metadata of one of the OpenBao workload's objects.
fn openbao_meta(cluster: &OpenBaoCluster, name: String) -> ObjectMeta {
    owned_meta(cluster, name, openbao_labels(&cluster.name_any()))
}

#[cfg(test)]
mod external_tests;
#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod workload_tests;
