//! The built-in plugins: contract's table (name, kind) with the bytes this
//! binary embeds (`build.rs`). They load through the same host, sandbox,
//! limits and digest checks as plugin files. (A precompiled component per
//! built-in can later sit beside its bytes in the embedded table.)

use std::sync::OnceLock;

use contract::plugin_spec::{BUILTINS, Builtin, builtin, builtin_names};
use sha2::{Digest, Sha256};

/// (name, component bytes) of each built-in embedded in this binary.
static EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

const BUILT_WITHOUT: &str = "this binary was built without built-in plugins: build them with scripts/build-plugins, or use a plugin file";

/// A built-in as `plugin list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    pub name: &'static str,
    pub kind: &'static str,
    /// SHA-256 of the component's bytes; none when this binary lacks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
}

/// The bytes of built-in `name`, or why there are none.
pub fn bytes(name: &str) -> Result<&'static [u8], String> {
    lookup(EMBEDDED, name)
}

fn lookup(embedded: &[(&str, &'static [u8])], name: &str) -> Result<&'static [u8], String> {
    let Some(builtin) = builtin(name) else {
        return Err(format!(
            "builtin:{name}: no such built-in plugin; the built-ins are {}",
            builtin_names()
        ));
    };
    if embedded.is_empty() {
        return Err(format!("builtin:{name}: {BUILT_WITHOUT}"));
    }
    embedded
        .iter()
        .find(|(n, _)| *n == builtin.name)
        .map(|(_, bytes)| *bytes)
        .ok_or_else(|| {
            format!(
                "builtin:{name}: this binary was built without it: build it with scripts/build-plugins, or use a plugin file"
            )
        })
}

/// The digests of the embedded built-ins, computed once.
fn digests() -> &'static [(&'static str, String)] {
    static DIGESTS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    DIGESTS.get_or_init(|| {
        EMBEDDED
            .iter()
            .map(|(name, bytes)| (*name, hex::encode(Sha256::digest(bytes))))
            .collect()
    })
}

/// The built-in whose component has this SHA-256 (hex), if any.
pub fn by_digest(sha256: &str) -> Option<&'static Builtin> {
    digests()
        .iter()
        .find(|(_, digest)| digest.eq_ignore_ascii_case(sha256))
        .and_then(|(name, _)| builtin(name))
}

/// Every built-in of the table, with its digest and size when embedded.
pub fn list() -> Vec<Listed> {
    BUILTINS
        .iter()
        .map(|b| {
            let embedded = EMBEDDED.iter().find(|(n, _)| *n == b.name);
            Listed {
                name: b.name,
                kind: b.kind.as_str(),
                sha256: digests()
                    .iter()
                    .find(|(n, _)| *n == b.name)
                    .map(|(_, d)| d.clone()),
                size: embedded.map(|(_, bytes)| bytes.len()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_without_builtins_says_how_to_get_them() {
        let err = lookup(&[], "zstd").unwrap_err();
        assert_eq!(
            err,
            "builtin:zstd: this binary was built without built-in plugins: build them with scripts/build-plugins, or use a plugin file"
        );
        let err = lookup(&[("age", b"x")], "zstd").unwrap_err();
        assert!(err.contains("built without it"), "{err}");
        assert_eq!(lookup(&[("zstd", b"z")], "zstd").unwrap(), b"z");
    }

    #[test]
    fn unknown_names_list_the_builtins() {
        let err = lookup(&[("zstd", b"z")], "gzip").unwrap_err();
        assert_eq!(
            err,
            "builtin:gzip: no such built-in plugin; the built-ins are zstd, age, keep-last, gfs"
        );
    }
}
