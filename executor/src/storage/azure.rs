//! Azure Blob Storage as the storage target, over its REST API with shared
//! key authorization (HMAC-SHA256 with the account key). A backup is a
//! block blob: each part is staged with Put Block, and Put Block List
//! commits them in order, which is when the blob appears. Staged blocks
//! that are never committed (a killed run) are not listed as blobs and
//! Azure discards them after a week: there is nothing to sweep. An aborted
//! upload deletes the blob if a commit got through, so no committed blob
//! is left.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use sha2::Sha256;

use super::target::{AzureTarget, TargetConfig};
use super::{Entry, ObjectStream};
use crate::error::{Error, error_chain};
use crate::s3::ObjectHead;
use contract::secret::Secret;

/// The REST API version requests are made with.
const VERSION: &str = "2021-12-02";

fn failed(message: String) -> Error {
    Error::StorageAt("Azure Blob", message)
}

/// A container, its account and key.
#[derive(Clone)]
pub struct Container {
    http: reqwest::Client,
    account: String,
    key: std::sync::Arc<Secret>,
    /// `https://ACCOUNT.blob.core.windows.net` or the emulator's URL.
    endpoint: String,
    container: String,
    max_attempts: u32,
}

impl Container {
    pub async fn open(azure: &AzureTarget, target: &TargetConfig) -> Result<Self, Error> {
        if azure.account.trim().is_empty() || azure.container.trim().is_empty() {
            return Err(Error::Config(
                "--azure-account and --azure-container are both required for Azure Blob Storage"
                    .into(),
            ));
        }
        let endpoint = match &azure.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
            None => format!("https://{}.blob.core.windows.net", azure.account),
        };
        if let Some(cidrs) = &target.hardened {
            crate::s3::check_host(&endpoint, cidrs, "--azure-endpoint (AZURE_ENDPOINT)").await?;
        }
        let dir = target.credentials_dir.as_deref().ok_or_else(|| {
            Error::Config(
                "Azure Blob Storage needs --credentials-dir (S3_CREDENTIALS_DIR) holding `accountKey`, the storage account's key".into(),
            )
        })?;
        let key = Secret::from_file(&dir.join("accountKey"), "Azure account key")
            .map_err(Error::Config)?;
        if STANDARD.decode(key.expose().trim()).is_err() {
            return Err(Error::Config(format!(
                "{}: the Azure account key is not base64: copy the storage account's access key as shown by Azure",
                dir.join("accountKey").display()
            )));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120));
        if let Some(ca) = target.ca_bundle.as_deref().map(read_ca).transpose()? {
            for cert in ca {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(Self {
            http: http
                .build()
                .map_err(|e| Error::Config(format!("Azure HTTP client: {e}")))?,
            account: azure.account.clone(),
            key: std::sync::Arc::new(key),
            endpoint,
            container: azure.container.clone(),
            max_attempts: target.max_attempts.max(1),
        })
    }

    pub fn name(&self) -> &str {
        &self.container
    }

    pub fn url(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.endpoint, self.container)
    }

    fn blob_url(&self, key: &str) -> String {
        format!(
            "{}/{}/{}",
            self.endpoint,
            self.container,
            key.split('/').map(encode).collect::<Vec<_>>().join("/")
        )
    }

    /// Sends a signed request, retrying server errors and broken
    /// connections with backoff (the body is cheap to clone).
    async fn send(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        body: Bytes,
        operation: &str,
    ) -> Result<reqwest::Response, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self.signed(method.clone(), url, query, headers, body.clone())?;
            let outcome = self.http.execute(request).await;
            let retry = match &outcome {
                Ok(response) => {
                    response.status().is_server_error()
                        || response.status() == StatusCode::TOO_MANY_REQUESTS
                }
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
            };
            if !retry || attempt >= self.max_attempts {
                return match outcome {
                    Ok(response) => Ok(response),
                    Err(e) => Err(failed(format!("{operation}: {}", error_chain(&e)))),
                };
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(6))).await;
        }
    }

    fn signed(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<reqwest::Request, Error> {
        let mut url = reqwest::Url::parse(url)
            .map_err(|e| Error::Config(format!("Azure URL `{url}`: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect();
        all.push(("x-ms-date".into(), date));
        all.push(("x-ms-version".into(), VERSION.into()));
        // Since version 2015-02-21 a zero length is signed as empty.
        let length = if body.is_empty() {
            String::new()
        } else {
            body.len().to_string()
        };
        let to_sign = string_to_sign(
            method.as_str(),
            &length,
            &all,
            &self.account,
            url.path(),
            query,
        );
        let signature = sign(self.key.expose().trim(), &to_sign)?;
        let mut request = self.http.request(method, url);
        for (name, value) in &all {
            request = request.header(name, value);
        }
        request
            .header(
                "authorization",
                format!("SharedKey {}:{signature}", self.account),
            )
            .header("content-length", body.len())
            .body(body)
            .build()
            .map_err(|e| failed(format!("building a request: {e}")))
    }

    /// Create Container (for setting up, e.g. in tests); one that exists
    /// already is fine.
    pub async fn create_container(&self) -> Result<(), Error> {
        let url = format!("{}/{}", self.endpoint, self.container);
        let response = self
            .send(
                Method::PUT,
                &url,
                &[("restype", "container")],
                &[],
                Bytes::new(),
                "Create Container",
            )
            .await?;
        if response.status() == StatusCode::CONFLICT {
            return Ok(());
        }
        expect(response, "Create Container", "").await.map(drop)
    }

    /// Begins a block blob upload to `key`; nothing is stored yet.
    pub fn begin(&self, key: &str, metadata: HashMap<String, String>) -> Upload {
        Upload {
            container: self.clone(),
            key: key.to_string(),
            metadata,
        }
    }

    /// Put Blob: a small object whole.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), Error> {
        let response = self
            .send(
                Method::PUT,
                &self.blob_url(key),
                &[],
                &[
                    ("x-ms-blob-type", "BlockBlob".into()),
                    ("content-type", content_type.into()),
                ],
                Bytes::from(body),
                "Put Blob",
            )
            .await?;
        expect(response, "Put Blob", key).await.map(drop)
    }

    /// Get Blob Properties.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, Error> {
        let Some(response) = self.blob(Method::HEAD, key, "Get Blob Properties").await? else {
            return Ok(None);
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Some(ObjectHead {
            size: header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            modified: header("last-modified").as_deref().and_then(http_date),
        }))
    }

    /// Get Blob, as a stream.
    pub async fn stream(&self, key: &str) -> Result<Option<ObjectStream>, Error> {
        let Some(response) = self.blob(Method::GET, key, "Get Blob").await? else {
            return Ok(None);
        };
        let key = key.to_string();
        let mut received = 0u64;
        Ok(Some(
            response
                .bytes_stream()
                .map(move |chunk| match chunk {
                    Ok(chunk) => {
                        received += chunk.len() as u64;
                        Ok(chunk)
                    }
                    Err(e) => Err(failed(format!(
                        "Get Blob {key}: the download broke after {received} bytes: {}",
                        error_chain(&e)
                    ))),
                })
                .boxed(),
        ))
    }

    /// List Blobs under `prefix`: (key, size, last modified).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64, DateTime<Utc>)>, Error> {
        let url = format!("{}/{}", self.endpoint, self.container);
        let mut blobs = Vec::new();
        let mut marker = String::new();
        loop {
            let mut query = vec![("restype", "container"), ("comp", "list")];
            if !prefix.is_empty() {
                query.push(("prefix", prefix));
            }
            if !marker.is_empty() {
                query.push(("marker", &marker));
            }
            let response = self
                .send(Method::GET, &url, &query, &[], Bytes::new(), "List Blobs")
                .await?;
            let body = expect(response, "List Blobs", prefix)
                .await?
                .text()
                .await
                .map_err(|e| failed(format!("List Blobs: {}", error_chain(&e))))?;
            let (page, next) = parse_list(&body);
            blobs.extend(page);
            match next {
                Some(next) => marker = next,
                None => return Ok(blobs),
            }
        }
    }

    /// Delete Blob; a blob that is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        self.blob(Method::DELETE, key, "Delete Blob")
            .await
            .map(drop)
    }

    /// A request about one blob, with no body: `None` when the blob is
    /// not there, an error naming `operation` when refused.
    async fn blob(
        &self,
        method: Method,
        key: &str,
        operation: &str,
    ) -> Result<Option<reqwest::Response>, Error> {
        let response = self
            .send(
                method,
                &self.blob_url(key),
                &[],
                &[],
                Bytes::new(),
                operation,
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        expect(response, operation, key).await.map(Some)
    }
}

/// A block blob being staged.
#[derive(Clone)]
pub struct Upload {
    container: Container,
    key: String,
    metadata: HashMap<String, String>,
}

impl Upload {
    /// Put Block: stages part `number`.
    pub async fn put_block(&self, number: u32, body: Bytes) -> Result<(), Error> {
        let id = block_id(number);
        let response = self
            .container
            .send(
                Method::PUT,
                &self.container.blob_url(&self.key),
                &[("comp", "block"), ("blockid", &id)],
                &[],
                body,
                "Put Block",
            )
            .await?;
        expect(response, &format!("Put Block {number}"), &self.key)
            .await
            .map(drop)
    }

    /// Put Block List: commits the staged blocks in order. As with S3, an
    /// error answer does not prove failure: a blob of `size` bytes is the
    /// committed upload; any other is deleted.
    pub async fn commit(&self, numbers: &[u32], size: u64) -> Result<(), Error> {
        let mut headers = vec![(
            "x-ms-blob-content-type",
            "application/octet-stream".to_string(),
        )];
        let names: Vec<(String, String)> = self
            .metadata
            .iter()
            .map(|(k, v)| (format!("x-ms-meta-{}", k.replace('-', "_")), v.clone()))
            .collect();
        headers.extend(names.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let response = self
            .container
            .send(
                Method::PUT,
                &self.container.blob_url(&self.key),
                &[("comp", "blocklist")],
                &headers,
                Bytes::from(block_list(numbers)),
                "Put Block List",
            )
            .await;
        let error = match response {
            Ok(response) => match expect(response, "Put Block List", &self.key).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            },
            Err(e) => e,
        };
        match self.container.head(&self.key).await {
            Ok(Some(head)) if head.size == size => {
                tracing::warn!(%error, key = %self.key, "Put Block List answered with an error, but the blob is complete");
                Ok(())
            }
            Ok(None) => Err(error),
            _ => {
                if let Err(delete) = self.container.delete(&self.key).await {
                    tracing::error!(error = %delete, key = %self.key, "could not delete the blob");
                }
                Err(error)
            }
        }
    }

    /// Leaves no committed blob; the staged blocks expire on their own.
    pub async fn abort(&self) -> Result<(), Error> {
        self.container.delete(&self.key).await
    }
}

/// Block ids of one blob must all have the same length.
fn block_id(number: u32) -> String {
    STANDARD.encode(format!("block-{number:08}"))
}

fn block_list(numbers: &[u32]) -> String {
    let mut xml = String::from(r#"<?xml version="1.0" encoding="utf-8"?><BlockList>"#);
    for number in numbers {
        xml.push_str(&format!("<Latest>{}</Latest>", block_id(*number)));
    }
    xml.push_str("</BlockList>");
    xml
}

/// The string shared key authorization signs (Blob service, version
/// 2009-09-19 and later): the standard headers, the `x-ms-` headers sorted,
/// and the resource with its query parameters sorted.
pub fn string_to_sign(
    method: &str,
    content_length: &str,
    headers: &[(String, String)],
    account: &str,
    path: &str,
    query: &[(&str, &str)],
) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut text = format!(
        "{method}\n{}\n{}\n{content_length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        header("content-encoding"),
        header("content-language"),
        header("content-md5"),
        header("content-type"),
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    );
    let mut ms: Vec<&(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-ms-"))
        .collect();
    ms.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in ms {
        text.push_str(&format!("{name}:{}\n", value.trim()));
    }
    text.push_str(&format!("/{account}{path}"));
    let mut params: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    params.sort();
    for (name, value) in params {
        text.push_str(&format!("\n{name}:{value}"));
    }
    text
}

/// Base64 of HMAC-SHA256 over `text` with the (base64) account key.
pub fn sign(key: &str, text: &str) -> Result<String, Error> {
    let key = STANDARD
        .decode(key)
        .map_err(|_| Error::Config("the Azure account key is not base64".into()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Percent-encodes a path segment (unreserved characters stay).
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn http_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The response if it succeeded; else one line with Azure's error code and
/// a hint for the usual causes.
async fn expect(
    response: reqwest::Response,
    operation: &str,
    key: &str,
) -> Result<reqwest::Response, Error> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let code = response
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.text().await.unwrap_or_default();
    let message = element(&body, "Message")
        .map(|m| m.lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let hint = match code.as_str() {
        "ContainerNotFound" => " (create the container or fix --azure-container)",
        "AuthenticationFailed" | "AuthorizationFailure" | "AuthorizationPermissionMismatch" => {
            " (check --azure-account and the accountKey in --credentials-dir)"
        }
        _ => "",
    };
    Err(failed(format!(
        "{operation} {key} failed: {status} {code} {message}{hint}"
    )))
}

/// The text of the first `<name>` element.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The blobs of a List Blobs page, and the marker of the next page.
fn parse_list(xml: &str) -> (Vec<Entry>, Option<String>) {
    let mut blobs = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Blob>") {
        let end = rest[start..]
            .find("</Blob>")
            .map_or(rest.len(), |e| e + start);
        let blob = &rest[start..end];
        if let Some(name) = element(blob, "Name") {
            blobs.push((
                unescape(name),
                element(blob, "Content-Length")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                element(blob, "Last-Modified")
                    .and_then(http_date)
                    .unwrap_or_else(Utc::now),
            ));
        }
        rest = &rest[end..];
    }
    let next = element(xml, "NextMarker")
        .filter(|m| !m.is_empty())
        .map(unescape);
    (blobs, next)
}

fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let pem = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the CA bundle {} (--ca-bundle): {e}",
            path.display()
        ))
    })?;
    reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::Config(format!("invalid CA bundle {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_follows_the_documented_layout() {
        // The shape of Microsoft's documented example (Authorize with
        // Shared Key: Blob service, version 2009-09-19 and later).
        let headers = vec![
            ("x-ms-version".to_string(), "2015-02-21".to_string()),
            (
                "x-ms-date".to_string(),
                "Fri, 26 Jun 2015 23:39:12 GMT".to_string(),
            ),
            ("content-type".to_string(), "application/xml".to_string()),
        ];
        let text = string_to_sign(
            "GET",
            "",
            &headers,
            "myaccount",
            "/mycontainer",
            &[("restype", "container"), ("comp", "metadata")],
        );
        assert_eq!(
            text,
            "GET\n\n\n\n\napplication/xml\n\n\n\n\n\n\nx-ms-date:Fri, 26 Jun 2015 23:39:12 GMT\nx-ms-version:2015-02-21\n/myaccount/mycontainer\ncomp:metadata\nrestype:container"
        );
    }

    #[test]
    fn signatures_are_hmac_sha256_with_the_decoded_key() {
        // RFC 4231 test case 2: key "Jefe", "what do ya want for nothing?".
        let key = STANDARD.encode("Jefe");
        let expected =
            hex::decode("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
                .unwrap();
        assert_eq!(
            sign(&key, "what do ya want for nothing?").unwrap(),
            STANDARD.encode(expected)
        );
        assert!(sign("not base64!", "x").is_err());
    }

    #[test]
    fn block_ids_have_one_length_and_lists_keep_order() {
        assert_eq!(block_id(1).len(), block_id(10_000).len());
        let list = block_list(&[1, 2]);
        assert!(list.find(&block_id(1)) < list.find(&block_id(2)));
    }

    #[test]
    fn list_pages_are_parsed() {
        let xml = r#"<?xml version="1.0"?><EnumerationResults><Blobs><Blob><Name>a/x&amp;y.snap</Name><Properties><Last-Modified>Tue, 24 Nov 2026 03:00:00 GMT</Last-Modified><Content-Length>42</Content-Length></Properties></Blob><Blob><Name>b</Name><Properties><Content-Length>1</Content-Length></Properties></Blob></Blobs><NextMarker>m2</NextMarker></EnumerationResults>"#;
        let (blobs, next) = parse_list(xml);
        assert_eq!(blobs.len(), 2);
        assert_eq!((blobs[0].0.as_str(), blobs[0].1), ("a/x&y.snap", 42));
        assert_eq!(blobs[0].2.to_rfc3339(), "2026-11-24T03:00:00+00:00");
        assert_eq!(next.as_deref(), Some("m2"));
        let (_, next) = parse_list("<EnumerationResults><NextMarker /></EnumerationResults>");
        assert_eq!(next, None);
    }

    #[test]
    fn keys_are_encoded_per_segment() {
        assert_eq!(encode("a b+c"), "a%20b%2Bc");
        assert_eq!(
            encode("20261124T030000.000Z-manual-aaaaaa.snap"),
            "20261124T030000.000Z-manual-aaaaaa.snap"
        );
    }
}
