//! What every reconcile gets (the client, the settings, the event
//! recorder, the metrics) and how one fails: an error that names the step
//! that failed, whose step labels the failure metric, and a wrapper that
//! turns a panic into an error of its reconcile alone.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use kube::Client;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;

use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::settings::OperatorSettings;

pub struct Context {
    pub client: Client,
    pub settings: OperatorSettings,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Sends results to `spec.notifications`' webhooks, in the background.
    pub notifier: Notifier,
}

/// What a reconcile was doing when the API server failed it: `what` (a
/// verb and a kind, few enough to label a metric) to `object`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub what: String,
    pub object: String,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.what, self.object)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{step}: Kubernetes API: {source}")]
    Kube { step: Step, source: kube::Error },
    #[error("{0} has no namespace")]
    NoNamespace(String),
    #[error("the reconcile panicked: {0}")]
    Panicked(String),
    /// An object with a name the cluster's objects take exists and the
    /// cluster does not own it: it is left alone.
    #[error("{0}")]
    NotOwned(String),
}

impl Error {
    /// The step that failed, as the failure metric's label.
    pub fn step(&self) -> &str {
        match self {
            Error::Kube { step, .. } => &step.what,
            Error::NoNamespace(_) => "read namespace",
            Error::Panicked(_) => "panic",
            Error::NotOwned(_) => "check owner",
        }
    }

    /// The HTTP status of an API server's refusal.
    pub fn api_code(&self) -> Option<u16> {
        match self {
            Error::Kube {
                source: kube::Error::Api(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }
}

/// Names the step of a Kubernetes API call's failure.
pub trait At<T> {
    fn at(self, what: impl Into<String>, object: impl Into<String>) -> Result<T, Error>;
}

impl<T> At<T> for kube::Result<T> {
    fn at(self, what: impl Into<String>, object: impl Into<String>) -> Result<T, Error> {
        self.map_err(|source| Error::Kube {
            step: Step {
                what: what.into(),
                object: object.into(),
            },
            source,
        })
    }
}

/// Runs one reconcile so that a panic in it (a bug, or input nobody
/// foresaw) fails that reconcile alone: the controller, and every other
/// cluster with it, goes on, and the error policy retries later.
pub async fn contained(
    reconcile: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    AssertUnwindSafe(reconcile)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::Panicked(message))
        })
}
