//! `openbao-backup plugin`: what plugin authors run, end to end through
//! the binary.

use std::process::{Command, Stdio};

use testkit::plugins::{plugin_path, run_with_stdin};

#[test]
fn the_plugin_command_runs_retention_and_transforms() {
    let binary = env!("CARGO_BIN_EXE_openbao-backup");
    let inspect = Command::new(binary)
        .args(["plugin", "inspect"])
        .arg(plugin_path("gfs"))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        (info["name"].as_str(), info["kind"].as_str()),
        (Some("gfs"), Some("retention"))
    );

    let list = r#"[
        {"key": "b/1", "time": "2026-11-22T03:00:00Z", "size": 10},
        {"key": "b/3", "time": "2026-11-24T03:00:00Z", "size": 10},
        {"key": "b/2", "time": "2026-11-23T03:00:00Z", "size": 10, "kind": "manual"}
    ]"#;
    let output = run_with_stdin(
        Command::new(binary)
            .args(["plugin", "run"])
            .arg(plugin_path("keep-last"))
            .args([
                "--config",
                r#"{"maxCount": 1}"#,
                "--now",
                "2026-11-24T04:00:00Z",
            ]),
        list.as_bytes().to_vec(),
    );
    let decided: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(decided[0]["key"], "b/2");
    assert_eq!(decided[1]["key"], "b/1");
    assert_eq!(decided[1]["reason"], "beyond the newest 1 (maxCount)");

    let input: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let output = run_with_stdin(
        Command::new(binary)
            .args(["plugin", "run"])
            .arg(plugin_path("misbehave"))
            .args(["--config", r#"{"do": "echo"}"#, "--chunk-size", "4KiB"]),
        input.clone(),
    );
    assert_eq!(output, input);

    let failed = Command::new(binary)
        .args(["plugin", "run"])
        .arg(plugin_path("misbehave"))
        .args([
            "--config",
            r#"{"do": "loop"}"#,
            "--plugin-call-timeout",
            "200ms",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // No input, no push: finish alone runs fine.
    assert!(failed.status.success());
}

/// The built-ins are the components scripts/build-plugins wrote (the same
/// digests), listed and loaded like files.
#[test]
fn the_builtins_are_listed_with_their_digests_and_load_like_files() {
    use sha2::Digest;
    let binary = env!("CARGO_BIN_EXE_openbao-backup");
    let list = Command::new(binary)
        .args(["plugin", "list"])
        .output()
        .unwrap();
    assert!(list.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zstd", "age", "keep-last", "gfs"]);
    for builtin in listed.as_array().unwrap() {
        let name = builtin["name"].as_str().unwrap();
        let file = std::fs::read(plugin_path(name)).unwrap();
        assert_eq!(
            builtin["sha256"],
            hex::encode(sha2::Sha256::digest(&file)),
            "{name}: the embedded component is the built one"
        );
        assert_eq!(builtin["size"], file.len());
        let inspect = Command::new(binary)
            .args(["plugin", "inspect", &format!("builtin:{name}")])
            .output()
            .unwrap();
        assert!(inspect.status.success(), "{name}");
        let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(info["name"], name);
        assert_eq!(info["kind"], builtin["kind"], "{name}: the table's kind");
        assert_eq!(info["sha256"], builtin["sha256"]);
    }
    let unknown = Command::new(binary)
        .args(["plugin", "inspect", "builtin:gzip"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains(
            "builtin:gzip: no such built-in plugin; the built-ins are zstd, age, keep-last, gfs"
        ),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// `plugin precompile` writes each built-in's code, and a binary pointed
/// at it runs the built-ins from it (a broken file would not run: see
/// plugin-host's tests/precompiled.rs).
#[test]
fn precompiled_builtins_are_written_and_run() {
    let binary = env!("CARGO_BIN_EXE_openbao-backup");
    let dir =
        std::env::temp_dir().join(format!("openbao-backup-precompile-{}", std::process::id()));
    let out = Command::new(binary)
        .args(["plugin", "precompile"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    assert_eq!(written.len(), 4, "{written:?}");
    for (file, name) in written.iter().zip(["age-", "gfs-", "keep-last-", "zstd-"]) {
        assert!(
            file.starts_with(name) && file.ends_with(".cwasm"),
            "{written:?}"
        );
    }
    let run = |decode: bool, input: Vec<u8>| {
        let mut args = vec![
            "plugin",
            "run",
            "builtin:zstd",
            "--config",
            r#"{"level": 3}"#,
        ];
        if decode {
            args.push("--decode");
        }
        run_with_stdin(
            Command::new(binary)
                .args(args)
                .env("OPENBAO_BACKUP_PRECOMPILED_DIR", &dir),
            input,
        )
    };
    let input = b"precompiled ".repeat(10_000);
    let packed = run(false, input.clone());
    assert!(packed.len() < input.len() / 10);
    assert_eq!(run(true, packed), input);
    std::fs::remove_dir_all(&dir).unwrap();
}
