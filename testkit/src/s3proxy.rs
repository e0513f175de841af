//! A reverse proxy in front of a real S3 server that injects failures, so
//! tests can make part uploads fail the way a flaky network or an
//! overloaded server does. Requests pass through untouched (the Host header
//! included, so SigV4 signatures still verify upstream).

use std::sync::{Arc, Mutex};

use axum::Router;

use crate::tls::{Relay, TestCa};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// S3 operation of a request, from its method and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    PutObject,
    GetObject,
    Other,
}

fn operation(method: &str, query: &str) -> Operation {
    let has = |k: &str| {
        query
            .split('&')
            .any(|p| p == k || p.starts_with(&format!("{k}=")))
    };
    match method {
        "POST" if has("uploads") => Operation::CreateMultipartUpload,
        "POST" if has("uploadId") => Operation::CompleteMultipartUpload,
        "PUT" if has("partNumber") => Operation::UploadPart,
        "PUT" => Operation::PutObject,
        "DELETE" if has("uploadId") => Operation::AbortMultipartUpload,
        "GET" if !has("list-type") && !has("uploads") && !has("uploadId") && !has("location") => {
            Operation::GetObject
        }
        _ => Operation::Other,
    }
}

/// Answer the next `times` requests of `operation` with `status` (see
/// `injected_error`) instead of forwarding them (`S3Proxy::inject`), or
/// after forwarding them (`S3Proxy::lose_answers`).
#[derive(Debug, Clone, Copy)]
pub struct Injection {
    pub operation: Operation,
    pub status: u16,
    pub times: usize,
}

#[derive(Default)]
struct Inner {
    injections: Vec<Injection>,
    /// Forwarded, then answered with an error: the answer is lost.
    lost_answers: Vec<Injection>,
    /// Break the body of every GetObject response after this many bytes.
    cut_downloads: Option<u64>,
    seen: Vec<(Operation, bool)>,
    /// The checksum headers of each request (`x-amz-checksum-*`,
    /// `x-amz-sdk-checksum-algorithm`, and a trailer that announces one).
    checksums: Vec<(Operation, Vec<String>)>,
}

pub struct S3Proxy {
    url: String,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Upstream {
    relay: Relay,
    inner: Arc<Mutex<Inner>>,
}

impl S3Proxy {
    /// Proxies to `upstream` (host:port of a plain-HTTP S3 server), serving
    /// HTTPS when `tls` is given.
    pub async fn start(upstream: &str, tls: Option<TestCa>) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = Upstream {
            relay: Relay::new(upstream),
            inner: inner.clone(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let addr = "127.0.0.1:0".parse().expect("address");
        let (url, server) = crate::tls::spawn_server(addr, app, tls).await;
        Self { url, inner, server }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn inject(&self, injection: Injection) {
        self.inner.lock().expect("lock").injections.push(injection);
    }

    /// Forward the next `times` requests of `operation`, then answer them
    /// with `status` instead of the server's answer: the request took
    /// effect, but the client believes it failed.
    pub fn lose_answers(&self, injection: Injection) {
        self.inner
            .lock()
            .expect("lock")
            .lost_answers
            .push(injection);
    }

    /// Breaks the connection of every object download after `bytes` of
    /// its body, as a network failure mid-stream does (smaller objects pass).
    pub fn cut_downloads_after(&self, bytes: u64) {
        self.inner.lock().expect("lock").cut_downloads = Some(bytes);
    }

    /// How many requests of `operation` arrived, and how many were failed.
    pub fn count(&self, operation: Operation) -> (usize, usize) {
        let inner = self.inner.lock().expect("lock");
        let all = inner.seen.iter().filter(|(op, _)| *op == operation);
        let total = all.clone().count();
        (total, all.filter(|(_, failed)| *failed).count())
    }
}

impl S3Proxy {
    /// The checksum headers requests of `operation` carried, each once.
    pub fn checksum_headers(&self, operation: Operation) -> Vec<String> {
        let inner = self.inner.lock().expect("lock");
        let mut names: Vec<String> = inner
            .checksums
            .iter()
            .filter(|(op, _)| *op == operation)
            .flat_map(|(_, names)| names.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward(State(upstream): State<Upstream>, mut request: Request) -> Response {
    let op = operation(
        request.method().as_str(),
        request.uri().query().unwrap_or_default(),
    );
    let (injected, lost) = {
        let mut inner = upstream.inner.lock().expect("lock");
        let hit = |injections: &mut Vec<Injection>| {
            injections
                .iter_mut()
                .find(|i| i.operation == op && i.times > 0)
                .map(|i| {
                    i.times -= 1;
                    i.status
                })
        };
        let checksums = request
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str();
                let value = value.to_str().unwrap_or_default();
                if name.starts_with("x-amz-checksum") || name == "x-amz-sdk-checksum-algorithm" {
                    Some(name.to_string())
                } else if name == "x-amz-trailer" && value.contains("checksum") {
                    Some(format!("{name}: {value}"))
                } else {
                    None
                }
            })
            .collect();
        inner.checksums.push((op, checksums));
        let injected = hit(&mut inner.injections);
        let lost = injected
            .is_none()
            .then(|| hit(&mut inner.lost_answers))
            .flatten();
        inner.seen.push((op, injected.is_some() || lost.is_some()));
        (injected, lost)
    };
    if let Some(status) = injected {
        // Drain the request body first, as a real server would.
        let _ = axum::body::to_bytes(std::mem::take(request.body_mut()), usize::MAX).await;
        return injected_error(status);
    }
    let cut = match op {
        Operation::GetObject => upstream.inner.lock().expect("lock").cut_downloads,
        _ => None,
    };
    let response = match upstream.relay.send(request).await {
        Ok(response) => response,
        Err(failed) => return failed,
    };
    if let Some(status) = lost {
        // The server finished the request; its answer is lost.
        let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
        return injected_error(status);
    }
    match cut {
        None => response,
        Some(after) => response.map(|body| cut_after(body, after)),
    }
}

/// An S3 error answer (500 is an InternalError, 503 SlowDown, 403
/// AccessDenied).
fn injected_error(status: u16) -> Response {
    let code = match status {
        503 => "SlowDown",
        403 => "AccessDenied",
        _ => "InternalError",
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
    );
    (
        StatusCode::from_u16(status).expect("status"),
        [("content-type", "application/xml")],
        body,
    )
        .into_response()
}

/// The body's first `after` bytes, then a broken connection.
fn cut_after(body: Body, after: u64) -> Body {
    use futures_util::StreamExt;
    let stream = futures_util::stream::unfold(
        Some((body.into_data_stream(), 0u64)),
        move |state| async move {
            let (mut data, sent) = state?;
            if sent >= after {
                let broken = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "cut by the test proxy",
                );
                return Some((Err(broken), None));
            }
            match data.next().await? {
                Ok(mut chunk) => {
                    chunk.truncate(((after - sent) as usize).min(chunk.len()));
                    let sent = sent + chunk.len() as u64;
                    Some((Ok(chunk), Some((data, sent))))
                }
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        },
    );
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations() {
        assert_eq!(
            operation("POST", "uploads"),
            Operation::CreateMultipartUpload
        );
        assert_eq!(
            operation("PUT", "partNumber=3&uploadId=x"),
            Operation::UploadPart
        );
        assert_eq!(
            operation("POST", "uploadId=x"),
            Operation::CompleteMultipartUpload
        );
        assert_eq!(
            operation("DELETE", "uploadId=x"),
            Operation::AbortMultipartUpload
        );
        assert_eq!(operation("PUT", ""), Operation::PutObject);
        assert_eq!(operation("GET", "list-type=2"), Operation::Other);
        assert_eq!(operation("GET", ""), Operation::GetObject);
    }
}
