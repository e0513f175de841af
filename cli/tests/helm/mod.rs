//! The chart rendered by a real Helm (v4, the Go library PyPI's
//! helm-python-sdk bundles) through scripts/render-chart, as the tests see
//! it: the manifests as JSON, NOTES.txt, and `helm lint --strict`'s report.

#![allow(dead_code)]

use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

pub const CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/helm/openbao-backup-operator"
);
const RENDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/render-chart");

pub struct Rendered {
    pub objects: Vec<Value>,
    pub notes: String,
    pub lint: Value,
}

impl Rendered {
    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    pub fn one(&self, kind: &str) -> &Value {
        let all = self.all(kind);
        assert_eq!(all.len(), 1, "one {kind}: {all:?}");
        all[0]
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        kinds
    }
}

/// The chart rendered for `release` in `namespace` with `values`; Err is
/// Helm's message (a value the schema refuses, a failing template).
pub fn render(release: &str, namespace: &str, values: Value) -> Result<Rendered, String> {
    let output = Command::new("python3")
        .args([RENDER, CHART, release, namespace, &values.to_string()])
        .output()
        .expect("python3 runs");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut objects = Vec::new();
    let mut notes = String::new();
    for (path, text) in out["templates"].as_object().unwrap() {
        let text = text.as_str().unwrap();
        if path.ends_with("NOTES.txt") {
            notes = text.to_string();
            continue;
        }
        for document in serde_yaml::Deserializer::from_str(text) {
            let value: Value =
                Value::deserialize(document).unwrap_or_else(|e| panic!("{path}: {e}"));
            if !value.is_null() {
                objects.push(value);
            }
        }
    }
    Ok(Rendered {
        objects,
        notes,
        lint: out["lint"].clone(),
    })
}
