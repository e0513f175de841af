//! The files of a new plugin crate (pure: the caller writes them).

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Retention,
    Transform,
}

/// Where the new crate gets guest-sdk from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// The registry, at this version.
    Version(String),
    /// A checkout or unpacked copy of the crate.
    Path(PathBuf),
}

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const RETENTION: &str = include_str!("templates/retention.rs.tmpl");
const TRANSFORM: &str = include_str!("templates/transform.rs.tmpl");
const GITIGNORE: &str = "/target\n";

/// The files (relative paths and contents) of a plugin crate named `name`.
pub fn scaffold(name: &str, kind: Kind, sdk: &Sdk) -> Result<Vec<(PathBuf, String)>, String> {
    check_name(name)?;
    let sdk = match sdk {
        Sdk::Version(version) => format!("\"{version}\""),
        Sdk::Path(path) => format!(
            "{{ path = {} }}",
            serde_json::Value::from(path.to_string_lossy())
        ),
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{type}}", &type_name(name))
            .replace("{{sdk}}", &sdk)
    };
    let lib = match kind {
        Kind::Retention => RETENTION,
        Kind::Transform => TRANSFORM,
    };
    Ok(vec![
        ("Cargo.toml".into(), fill(CARGO_TOML)),
        ("src/lib.rs".into(), fill(lib)),
        (".gitignore".into(), GITIGNORE.into()),
    ])
}

/// A plugin's name is its crate's name and what `describe` reports.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "plugin name `{name}`: use lowercase letters, digits and `-`, starting with a letter (at most 64), e.g. keep-weekly"
        ))
    }
}

/// `keep-weekly` -> `KeepWeekly`.
fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect::<String>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_crates_and_types() {
        let files = scaffold(
            "keep-weekly",
            Kind::Retention,
            &Sdk::Version("0.1.0".into()),
        )
        .unwrap();
        let cargo = &files[0].1;
        assert!(
            cargo.contains("name = \"keep-weekly\"") && cargo.contains("guest-sdk = \"0.1.0\""),
            "{cargo}"
        );
        let lib = &files[1].1;
        assert!(
            lib.contains("pub struct KeepWeekly;") && lib.contains("export_retention!(KeepWeekly)"),
            "{lib}"
        );
        assert!(!lib.contains("{{") && !cargo.contains("{{"));

        let files = scaffold(
            "rot13",
            Kind::Transform,
            &Sdk::Path("/src/guest-sdk".into()),
        )
        .unwrap();
        assert!(
            files[0]
                .1
                .contains(r#"guest-sdk = { path = "/src/guest-sdk" }"#),
            "{}",
            files[0].1
        );
        assert!(files[1].1.contains("impl Transform for Rot13"));
    }

    #[test]
    fn a_bad_name_is_refused_naming_the_rule() {
        for name in ["", "Keep", "9lives", "keep_weekly", "keep-", "a b"] {
            let error = scaffold(name, Kind::Retention, &Sdk::Version("0.1.0".into())).unwrap_err();
            assert!(
                error.contains("lowercase letters, digits and `-`"),
                "{name}: {error}"
            );
        }
    }
}
