//! `openbao-backup plugin list|inspect|run`: the built-ins, and what plugin
//! authors use to try a plugin with the same host, sandbox and limits as
//! backups.

use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cli::{PluginCommand, PluginLoadArgs};
use contract::plugin_spec::PluginSpec;
use plugin_host::{Direction, Kind, Limits, Plugin, PluginHost, RetentionBackup};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListedBackup {
    key: String,
    time: DateTime<Utc>,
    #[serde(default)]
    size: u64,
    #[serde(default = "scheduled")]
    kind: String,
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
}

fn scheduled() -> String {
    "scheduled".into()
}

#[derive(Serialize)]
struct Decision {
    key: String,
    reason: String,
}

pub fn run(command: PluginCommand) -> Result<(), String> {
    match command {
        PluginCommand::List => {
            println!(
                "{}",
                serde_json::to_string_pretty(&plugin_host::builtin::list()).expect("serializes")
            );
            Ok(())
        }
        PluginCommand::Precompile { dir } => {
            let host = plugin_host::PluginHost::new(plugin_host::Limits::default());
            for path in host.precompile_builtins(&dir)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        PluginCommand::Inspect { file, load } => {
            let plugin = load_plugin(&file, &load)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&plugin.info).expect("serializes")
            );
            Ok(())
        }
        PluginCommand::Run {
            file,
            load,
            config,
            decode,
            chunk_size,
            now,
        } => {
            let plugin = load_plugin(&file, &load)?;
            match plugin.kind() {
                Kind::Retention => decide(&plugin, &config, now.unwrap_or_else(Utc::now)),
                Kind::Transform => transform(&plugin, &config, decode, chunk_size as usize),
            }
        }
        PluginCommand::New {
            name,
            kind,
            dir,
            sdk_path,
        } => new(&name, &kind, dir, sdk_path),
        PluginCommand::Build {
            path,
            out_dir,
            cargo_args,
        } => {
            let built = plugin_dev::build(&path, out_dir.as_deref(), &cargo_args)?;
            for file in built {
                let plugin = load_with(&file, None, Limits::default())?;
                let mut info = serde_json::to_value(&plugin.info).expect("serializes");
                info["file"] = file.display().to_string().into();
                println!("{info}");
            }
            Ok(())
        }
    }
}

fn new(
    name: &str,
    kind: &str,
    dir: Option<std::path::PathBuf>,
    sdk_path: Option<std::path::PathBuf>,
) -> Result<(), String> {
    let kind = match kind {
        "retention" => plugin_dev::Kind::Retention,
        _ => plugin_dev::Kind::Transform,
    };
    let sdk = match sdk_path {
        Some(path) => plugin_dev::Sdk::Path(
            std::path::absolute(&path)
                .map_err(|e| format!("--sdk-path {}: {e}", path.display()))?,
        ),
        None => plugin_dev::Sdk::Version(env!("CARGO_PKG_VERSION").into()),
    };
    let files = plugin_dev::scaffold(name, kind, &sdk)?;
    let dir = dir.unwrap_or_else(|| name.into());
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(format!(
            "{} exists and is not empty: give another --dir",
            dir.display()
        ));
    }
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the crate"))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    eprintln!(
        "plugin: wrote {}; next: cd {0} && cargo test && openbao-backup plugin build",
        dir.display()
    );
    Ok(())
}

/// A plugin file or `builtin:NAME`, loaded as backups load it.
fn load_plugin(file: &std::path::Path, load: &PluginLoadArgs) -> Result<Plugin, String> {
    load_with(file, load.sha256.as_deref(), load.limits.limits())
}

fn load_with(
    file: &std::path::Path,
    sha256: Option<&str>,
    limits: Limits,
) -> Result<Plugin, String> {
    let bytes = plugin_host::spec::component_bytes(&PluginSpec::named(file))?;
    PluginHost::new(limits)
        .load(&bytes, sha256)
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn decide(plugin: &Plugin, config: &str, now: DateTime<Utc>) -> Result<(), String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    let listed: Vec<ListedBackup> = serde_json::from_str(&input)
        .map_err(|e| format!("stdin: {e}: expected [{{\"key\": ..., \"time\": \"2026-11-24T03:00:00Z\", \"size\": ..., \"kind\": \"scheduled\"}}]"))?;
    let mut backups: Vec<RetentionBackup> = listed
        .into_iter()
        .map(|b| RetentionBackup {
            key: b.key,
            time: b.time.timestamp(),
            size: b.size,
            kind: b.kind,
            metadata: b.metadata.into_iter().collect(),
        })
        .collect();
    backups.sort_by_key(|b| std::cmp::Reverse(b.time));
    let decided = plugin
        .decide(&backups, now.timestamp(), config)
        .map_err(|e| e.to_string())?;
    let decided: Vec<Decision> = decided
        .into_iter()
        .map(|(key, reason)| Decision { key, reason })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&decided).expect("serializes")
    );
    Ok(())
}

fn transform(plugin: &Plugin, config: &str, decode: bool, chunk_size: usize) -> Result<(), String> {
    let direction = if decode {
        Direction::Decode
    } else {
        Direction::Encode
    };
    let mut transformer = plugin
        .transformer(config, direction, &plugin_host::chain::fresh_entropy())
        .map_err(|e| e.to_string())?;
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut chunk = vec![0u8; chunk_size.max(1)];
    loop {
        let n = read_full(&mut stdin, &mut chunk).map_err(|e| format!("cannot read stdin: {e}"))?;
        if n == 0 {
            break;
        }
        let out = transformer.push(&chunk[..n]).map_err(|e| e.to_string())?;
        stdout
            .write_all(&out)
            .map_err(|e| format!("cannot write stdout: {e}"))?;
    }
    let out = transformer.finish().map_err(|e| e.to_string())?;
    stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write stdout: {e}"))
}

/// Fills `buf` unless the input ends first; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
