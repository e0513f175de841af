//! A scripted API server (tower-test) for reconcile tests: every request
//! a reconciler makes is expected in order, checked, and answered; any
//! request beyond the script fails the test. The cluster and the restore
//! reconcilers' tests share it.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Recorder;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::context::Context;
use crate::metrics::Metrics;
use crate::names::MANAGER;
use crate::settings::{
    DEFAULT_EXECUTOR_IMAGE, DEFAULT_EXECUTOR_IMAGES, OperatorSettings, executor_images,
};

pub type Respond = Box<dyn FnOnce(Value) -> (u16, Value) + Send>;

pub struct Step {
    pub method: &'static str,
    pub path: String,
    pub respond: Respond,
}

pub fn step(
    method: &'static str,
    path: &str,
    respond: impl FnOnce(Value) -> (u16, Value) + Send + 'static,
) -> Step {
    Step {
        method,
        path: path.into(),
        respond: Box::new(respond),
    }
}

/// A write the API server accepts as sent.
pub fn accept(method: &'static str, path: &str) -> Step {
    step(method, path, |body| (200, body))
}

pub fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "message": "not found", "code": 404}),
    )
}

pub fn list(items: Vec<Value>) -> (u16, Value) {
    (
        200,
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "7"}, "items": items}),
    )
}

pub const JOBS: &str = "/apis/batch/v1/namespaces/prod/jobs";
pub const PODS: &str = "/api/v1/namespaces/prod/pods";
pub const CRONJOB: &str = "/apis/batch/v1/namespaces/prod/cronjobs/bao-backup";
pub const RESTORES: &str = "/apis/openbao.org/v1alpha1/namespaces/prod/openbaorestores";
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/prod/events";

/// An event the recorder sends, with its reason.
pub fn event(reason: &'static str) -> Step {
    step("POST", EVENTS, move |body| {
        assert_eq!(body["reason"], reason, "{body}");
        (201, body)
    })
}

/// A Context whose client talks to the script, and the script's server:
/// `finish` it after the reconcile.
pub fn serve(steps: Vec<Step>) -> (Arc<Context>, JoinHandle<()>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        for expected in steps {
            let (mut request, mut reply) = handle.next_request().await.unwrap_or_else(|| {
                panic!(
                    "expected {} {}, the reconcile ended",
                    expected.method, expected.path
                )
            });
            // Before each apply the operator reads the object to check it
            // owns it; unless scripted, the read finds nothing.
            while expected.method == "PATCH"
                && request.method() == "GET"
                && request.uri().path() == expected.path
            {
                reply.send_response(
                    Response::builder()
                        .status(404)
                        .body(Body::from(serde_json::to_vec(&not_found().1).unwrap()))
                        .unwrap(),
                );
                (request, reply) = handle.next_request().await.expect("the apply follows");
            }
            let (method, uri) = (request.method().to_string(), request.uri().clone());
            assert_eq!(
                (method.as_str(), uri.path()),
                (expected.method, expected.path.as_str()),
                "request {uri}"
            );
            if expected.path == JOBS && expected.method == "GET" {
                let query = uri.query().unwrap_or_default();
                assert!(
                    query.contains("labelSelector=app.kubernetes.io%2Fcomponent%3Dbackup"),
                    "{query}"
                );
                assert!(
                    query.contains("app.kubernetes.io%2Finstance%3Dbao"),
                    "{query}"
                );
            }
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (status, answer) = (expected.respond)(body);
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            reply.send_response(response);
        }
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    });
    let client = Client::new(service, "default");
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: OperatorSettings {
            executor_images: executor_images(DEFAULT_EXECUTOR_IMAGES),
            default_executor_image: DEFAULT_EXECUTOR_IMAGE.into(),
            jwt_audience: "openbao-internal".into(),
            ..Default::default()
        },
        recorder: Recorder::new(client, MANAGER.into()),
        metrics: Arc::new(Metrics::default()),
        // Scripts name no webhook: the notifier gets a client of its own
        // (to a server that answers nothing), so the script's can end.
        notifier: crate::notify::Notifier::start(
            Client::new(
                tower_test::mock::pair::<Request<Body>, Response<Body>>().0,
                "default",
            ),
            Arc::new(Metrics::default()),
            Vec::new(),
        ),
    });
    (ctx, server)
}

/// Waits for the script to end: every step taken, no other request.
pub async fn finish(server: JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the script ends")
        .expect("every request was as expected");
}
