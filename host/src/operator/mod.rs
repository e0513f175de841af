//! The operator: turns `OpenBaoCluster.spec.backup` into CronJobs and Jobs
//! running the `backup` command, and their results into `status.backup`.
//! Pure parts (validation, schedules) are separate from the reconcile loop.

pub mod desired;
pub mod schedule;
pub mod status;
pub mod validate;
