//! `cargo build` of plugin crates for wasm32-unknown-unknown, each module
//! then turned into a component.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const TARGET: &str = "wasm32-unknown-unknown";

/// Builds the plugin crate at `path` (a directory or its `Cargo.toml`; a
/// virtual workspace builds every member) in release mode for wasm and
/// writes each package's component as `<out_dir>/<directory>.wasm`, named
/// after the package's directory (default
/// `<target dir>/plugins`), returning their paths. `cargo_args` go to
/// `cargo build` (e.g. `--locked`, `-Zbuild-std=std,panic_abort`); the
/// cargo run is `$CARGO` when set. A component whose bytes did not change
/// is not rewritten.
pub fn build(
    path: &Path,
    out_dir: Option<&Path>,
    cargo_args: &[String],
) -> Result<Vec<PathBuf>, String> {
    let manifest = if path.is_dir() {
        path.join("Cargo.toml")
    } else {
        path.to_path_buf()
    };
    if !manifest.is_file() {
        return Err(format!(
            "{}: no Cargo.toml: give a plugin crate's directory",
            path.display()
        ));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let metadata = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .map_err(|e| format!("running cargo: {e}: install Rust (rustup) or set CARGO"))?;
    if !metadata.status.success() {
        return Err(format!(
            "cargo metadata: {}",
            String::from_utf8_lossy(&metadata.stderr).trim()
        ));
    }
    let metadata: Value =
        serde_json::from_slice(&metadata.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let plugins = plugins(&metadata, &manifest)?;

    let status = Command::new(&cargo)
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest)
        .args(cargo_args)
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build for {TARGET} failed (see above); without the wasm std, run `rustup target add {TARGET}`"
        ));
    }

    let target_dir = PathBuf::from(metadata["target_directory"].as_str().unwrap_or("target"));
    let out_dir = out_dir.map_or_else(|| target_dir.join("plugins"), Path::to_path_buf);
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let mut written = Vec::new();
    for (name, lib) in plugins {
        let module_path = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{lib}.wasm"));
        let module =
            std::fs::read(&module_path).map_err(|e| format!("{}: {e}", module_path.display()))?;
        let component = crate::componentize(&module).map_err(|e| format!("{name}: {e}"))?;
        let out = out_dir.join(format!("{name}.wasm"));
        if std::fs::read(&out).ok().as_deref() != Some(&component[..]) {
            std::fs::write(&out, &component).map_err(|e| format!("{}: {e}", out.display()))?;
        }
        written.push(out);
    }
    Ok(written)
}

/// The packages `manifest` builds that have a cdylib, as (directory name,
/// cdylib name): the package itself, or every member of a virtual
/// workspace.
fn plugins(metadata: &Value, manifest: &Path) -> Result<Vec<(String, String)>, String> {
    let manifest = manifest
        .canonicalize()
        .map_err(|e| format!("{}: {e}", manifest.display()))?;
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let own: Vec<&Value> = packages
        .iter()
        .filter(|p| {
            p["manifest_path"]
                .as_str()
                .is_some_and(|m| Path::new(m) == manifest)
        })
        .collect();
    let chosen = if own.is_empty() {
        packages.iter().collect()
    } else {
        own
    };
    let found: Vec<(String, String)> = chosen
        .into_iter()
        .filter_map(|p| {
            let lib = p["targets"].as_array()?.iter().find(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
            })?;
            let dir = Path::new(p["manifest_path"].as_str()?)
                .parent()?
                .file_name()?;
            Some((
                dir.to_string_lossy().into_owned(),
                lib["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    if found.is_empty() {
        return Err(format!(
            "{}: no package with crate-type \"cdylib\": add it under [lib] (`openbao-backup plugin new` does)",
            manifest.display()
        ));
    }
    Ok(found)
}
