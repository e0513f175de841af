//! The plugin components scripts/build-plugins builds, and the reference
//! CLIs the plugin tests compare with.

use std::path::PathBuf;

/// A plugin component built by scripts/build-plugins: in $PLUGINS_DIR, else
/// in the target directory's `plugins/`.
pub fn plugin_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into())
                .join("plugins")
        });
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{}: build the plugins first (scripts/build-plugins; scripts/test does)",
        path.display()
    );
    path
}

/// Runs `command` with `input` on stdin (fed from a thread, so a full
/// stdout pipe cannot deadlock); returns stdout, asserting success.
pub fn run_with_stdin(command: &mut std::process::Command, input: Vec<u8>) -> Vec<u8> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A fresh age key pair from the reference CLI: (recipient, identity file).
pub fn age_keypair(dir: &std::path::Path) -> (String, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("key.txt");
    let _ = std::fs::remove_file(&key);
    let keygen = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age-keygen (scripts/setup installs age)");
    assert!(keygen.status.success());
    let text = std::fs::read_to_string(&key).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    (recipient, key)
}
