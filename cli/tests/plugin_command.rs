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
