//! The plugin build the repository's own scripts use (`scripts/build-plugins`),
//! without building the whole `openbao-backup` binary first:
//! `openbao-backup-plugin-dev build PATH OUT_DIR [CARGO_ARGS...]`, the same
//! function as `openbao-backup plugin build PATH --out-dir OUT_DIR -- CARGO_ARGS`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, path, out_dir, cargo_args @ ..] = &args[..] else {
        eprintln!("usage: openbao-backup-plugin-dev build PATH OUT_DIR [CARGO_ARGS...]");
        std::process::exit(2);
    };
    if command != "build" {
        eprintln!("unknown command `{command}`: the only one is build");
        std::process::exit(2);
    }
    match plugin_dev::build(path.as_ref(), Some(out_dir.as_ref()), cargo_args) {
        Ok(written) => {
            for path in written {
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                println!("{} ({size} bytes)", path.display());
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
