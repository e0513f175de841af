//! The built-in plugins: contract's table (name, kind) with the bytes this
//! binary embeds (`build.rs`). They load through the same host, sandbox,
//! limits and digest checks as plugin files.
//!
//! Compiling zstd's component takes most of a second; `precompile` writes
//! each built-in's machine code (`NAME-DIGEST.cwasm`) into a directory (the
//! image does this at build time, into [`PRECOMPILED_DIR`]), and loading a
//! built-in then maps that code instead of compiling.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wasmtime::Engine;
use wasmtime::component::Component;

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

/// Where the image keeps the built-ins' precompiled code, beside the
/// plugin files; `OPENBAO_BACKUP_PRECOMPILED_DIR` names another.
pub const PRECOMPILED_DIR: &str = "/usr/share/openbao-backup/plugins";

fn precompiled_dir() -> PathBuf {
    std::env::var_os("OPENBAO_BACKUP_PRECOMPILED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PRECOMPILED_DIR.into())
}

/// The file of a built-in's precompiled code: named after its component's
/// digest, so code for other bytes (another version) is never picked up.
fn precompiled_file(dir: &Path, name: &str, digest: &str) -> PathBuf {
    dir.join(format!("{name}-{}.cwasm", &digest[..16]))
}

/// Compiles every embedded built-in for `engine` and writes its code into
/// `dir`; returns the files written. (`PluginHost::precompile_builtins`.)
pub(crate) fn precompile(engine: &Engine, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for ((name, bytes), (_, digest)) in EMBEDDED.iter().zip(digests()) {
        let code = engine
            .precompile_component(bytes)
            .map_err(|e| format!("builtin:{name}: {e:#}"))?;
        let path = precompiled_file(dir, name, digest);
        std::fs::write(&path, code).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The precompiled code of the built-in with this digest, when its file
/// exists and this engine accepts it (same wasmtime, settings and a CPU
/// with the features it was compiled for); None means compile.
pub(crate) fn precompiled(engine: &Engine, digest: &str) -> Option<Component> {
    let (name, _) = digests().iter().find(|(_, d)| d == digest)?;
    let path = precompiled_file(&precompiled_dir(), name, digest);
    if !path.is_file() {
        return None;
    }
    // SAFETY: wasmtime runs deserialized code as it is, so it must come
    // from `Engine::precompile_component`, never from a user. Only the
    // embedded built-ins (matched by the digest of bytes inside this
    // binary) look here, in a directory of the image, written when the
    // image was built (`plugin precompile`): code that is part of our
    // build, as trusted as the binary. A ConfigMap plugin with other bytes
    // never does; one with a built-in's very bytes is that built-in.
    // wasmtime checks its version, settings and the CPU's features, and
    // refuses the file otherwise: we then compile.
    unsafe { Component::deserialize_file(engine, &path) }.ok()
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
