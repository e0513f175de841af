//! Embeds the built-in plugins (contract's table) from the components
//! `scripts/build-plugins` writes: `$PLUGINS_DIR/NAME.wasm`, else
//! `$CARGO_TARGET_DIR/plugins`, else the workspace's `target/plugins`. A
//! component that is absent is left out, so `cargo build` works without a
//! wasm toolchain; `builtin:NAME` then says how to get it.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=PLUGINS_DIR");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dir = std::env::var_os("PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| manifest_dir.join("../target"))
                .join("plugins")
        });
    // Relative paths are taken from the workspace, where scripts run.
    let dir = manifest_dir.join("..").join(dir);
    // Cargo scans a directory for changes, and reruns while it is missing
    // (so a later scripts/build-plugins is picked up).
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut table = String::from("&[\n");
    for builtin in contract::plugin_spec::BUILTINS {
        let path = dir.join(format!("{}.wasm", builtin.name));
        if let Ok(path) = path.canonicalize()
            && path.is_file()
        {
            let path = path.to_str().expect("a UTF-8 path");
            table += &format!("    ({:?}, include_bytes!({path:?})),\n", builtin.name);
        }
    }
    table += "]\n";
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("builtins.rs"), table).expect("OUT_DIR is writable");
}
