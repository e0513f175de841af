//! How a command names a plugin: a `.wasm` file or a built-in
//! (`builtin:NAME`), or a JSON object with either as `file`, its pinned
//! digest, its configuration and settings read from files (mounted
//! Secrets). The operator writes the JSON form into backup Jobs
//! (`to_string`). The table of built-ins (name and kind) is here, where
//! operator and executor both read it; the plugin host embeds their bytes.
//!
//! ```text
//! --transform plugins/zstd.wasm
//! --transform builtin:zstd
//! --transform '{"file": "builtin:age", "config": {"recipients": ["age1…"]}}'
//! --transform '{"file": "age.wasm", "sha256": "…", "config": {"recipients": ["age1…"]}}'
//! --transform '{"file": "age.wasm", "secretFiles": {"identities": "/secrets/key.txt"}}'
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a plugin does: which interface it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Transform,
    Retention,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transform => "transform",
            Self::Retention => "retention",
        }
    }
}

/// A plugin that ships inside the binary, named `builtin:NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    pub name: &'static str,
    pub kind: Kind,
}

/// The built-in plugins: the components `scripts/build-plugins` builds from
/// `plugins/NAME`, embedded by the plugin host's build script.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "zstd",
        kind: Kind::Transform,
    },
    Builtin {
        name: "age",
        kind: Kind::Transform,
    },
    Builtin {
        name: "keep-last",
        kind: Kind::Retention,
    },
    Builtin {
        name: "gfs",
        kind: Kind::Retention,
    },
];

/// How a `file` names a built-in: `builtin:zstd`.
pub const BUILTIN_PREFIX: &str = "builtin:";

/// The built-in of that name.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The built-ins' names, for error messages: `zstd, age, keep-last, gfs`.
pub fn builtin_names() -> String {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSpec {
    /// The component: a `.wasm` file, or `builtin:NAME` for a built-in.
    pub file: PathBuf,
    /// Refuse the plugin unless its bytes have this SHA-256 (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The plugin's configuration; recorded in manifests, so nothing secret.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    /// Configuration settings read from files, each the whole (trimmed)
    /// text of its file; given to the plugin, never recorded or logged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_files: BTreeMap<String, PathBuf>,
}

impl PluginSpec {
    /// A plugin named by its file (or `builtin:NAME`) alone: no pin, no
    /// configuration.
    pub fn named(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            sha256: None,
            config: Map::new(),
            secret_files: BTreeMap::new(),
        }
    }

    /// A built-in (`builtin:NAME`) with no configuration.
    pub fn builtin(name: &str) -> Self {
        Self::named(format!("{BUILTIN_PREFIX}{name}"))
    }

    /// The built-in's name when `file` is `builtin:NAME` (a file of that
    /// name is given as `./builtin:NAME`).
    pub fn builtin_name(&self) -> Option<&str> {
        self.file.to_str()?.strip_prefix(BUILTIN_PREFIX)
    }
}

impl std::fmt::Display for PluginSpec {
    /// The JSON form, which `from_str` reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).expect("a spec serializes"))
    }
}

impl FromStr for PluginSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('{') {
            serde_json::from_str(text).map_err(|e| {
                format!(
                    "{e}: expected a .wasm file, builtin:NAME or {{\"file\": \"plugin.wasm\", \"sha256\": \"…\", \"config\": {{…}}, \"secretFiles\": {{\"setting\": \"/path\"}}}}"
                )
            })
        } else if text.is_empty() {
            Err("empty: expected a .wasm file, builtin:NAME or a JSON object".into())
        } else {
            Ok(Self::named(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_or_a_json_object() {
        let plain: PluginSpec = "plugins/zstd.wasm".parse().unwrap();
        assert_eq!(plain.file, PathBuf::from("plugins/zstd.wasm"));
        assert!(plain.config.is_empty() && plain.sha256.is_none());

        let full: PluginSpec =
            r#"{"file": "age.wasm", "sha256": "ab", "config": {"recipients": ["age1x"]},
                                   "secretFiles": {"identities": "/s/key"}}"#
                .parse()
                .unwrap();
        assert_eq!(full.file, PathBuf::from("age.wasm"));
        assert_eq!(full.sha256.as_deref(), Some("ab"));
        assert_eq!(full.config["recipients"][0], "age1x");
        assert_eq!(full.secret_files["identities"], PathBuf::from("/s/key"));
        assert_eq!(full.to_string().parse::<PluginSpec>().unwrap(), full);
        assert_eq!(plain.to_string(), r#"{"file":"plugins/zstd.wasm"}"#);
    }

    #[test]
    fn builtins_are_named_with_a_prefix() {
        let zstd: PluginSpec = "builtin:zstd".parse().unwrap();
        assert_eq!(zstd.builtin_name(), Some("zstd"));
        assert_eq!(zstd, PluginSpec::builtin("zstd"));
        let age: PluginSpec = r#"{"file": "builtin:age", "config": {"recipients": ["age1x"]}}"#
            .parse()
            .unwrap();
        assert_eq!(age.builtin_name(), Some("age"));
        assert_eq!(age.to_string().parse::<PluginSpec>().unwrap(), age);
        assert_eq!(
            "./builtin:age"
                .parse::<PluginSpec>()
                .unwrap()
                .builtin_name(),
            None
        );
        assert_eq!(builtin("keep-last").unwrap().kind, Kind::Retention);
        assert_eq!(builtin_names(), "zstd, age, keep-last, gfs");
    }

    #[test]
    fn mistakes_are_named() {
        let err = r#"{"file": "a.wasm", "confg": {}}"#.parse::<PluginSpec>().unwrap_err();
        assert!(err.contains("unknown field `confg`"), "{err}");
        assert!(
            err.contains("expected a .wasm file, builtin:NAME or"),
            "{err}"
        );
        assert!(" ".parse::<PluginSpec>().unwrap_err().contains("empty"));
        let err = r#"{"sha256": "ab"}"#.parse::<PluginSpec>().unwrap_err();
        assert!(err.contains("missing field `file`"), "{err}");
    }
}
