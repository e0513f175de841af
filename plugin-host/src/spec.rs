//! A plugin named by a [`PluginSpec`], loaded and checked, with the
//! configuration it runs with.

use std::borrow::Cow;

use contract::manifest::TransformRecord;
use contract::plugin_spec::PluginSpec;
use contract::secret::Secret;
use serde_json::{Map, Value};

use crate::builtin;
use crate::component::{Kind, Plugin};
use crate::runtime::PluginHost;

/// A loaded, checked plugin with the configuration it runs with.
#[derive(Clone)]
pub struct ConfiguredPlugin {
    pub plugin: Plugin,
    /// The configuration without the secret settings: what may be recorded.
    pub config: Map<String, Value>,
    /// What the plugin receives: the configuration and the secret settings.
    full_config: Secret,
}

impl ConfiguredPlugin {
    /// The JSON configuration handed to the plugin (secrets included).
    pub fn plugin_config(&self) -> &str {
        self.full_config.expose()
    }

    /// The plugin as a manifest records it.
    pub fn record(&self) -> TransformRecord {
        let info = &self.plugin.info;
        TransformRecord {
            name: info.name.clone(),
            version: info.version.clone(),
            sha256: info.sha256.clone(),
            config: self.config.clone(),
        }
    }
}

/// The component a spec names: a built-in's embedded bytes, or the file's.
/// Errors name the file or the built-in.
pub fn component_bytes(spec: &PluginSpec) -> Result<Cow<'static, [u8]>, String> {
    match spec.builtin_name() {
        Some(name) => builtin::bytes(name).map(Cow::Borrowed),
        None => std::fs::read(&spec.file)
            .map(Cow::Owned)
            .map_err(|e| format!("{}: {e}", spec.file.display())),
    }
}

impl ConfiguredPlugin {
    /// Reads the spec's component (file or built-in) and secret settings,
    /// checks the digest, and refuses a plugin of another kind. Errors name
    /// the file.
    pub fn load(spec: &PluginSpec, host: &PluginHost, kind: Kind) -> Result<Self, String> {
        let name = spec.file.display();
        let bytes = component_bytes(spec)?;
        let plugin = host
            .load(&bytes, spec.sha256.as_deref())
            .map_err(|e| format!("{name}: {e}"))?;
        if plugin.kind() != kind {
            return Err(format!(
                "{name}: `{}` is a {} plugin, not a {} plugin",
                plugin.info.name,
                plugin.info.kind,
                kind.as_str()
            ));
        }
        let mut full = spec.config.clone();
        for (setting, path) in &spec.secret_files {
            let value = Secret::from_file(path, &format!("secret setting `{setting}`"))
                .map_err(|e| format!("{name}: {e}"))?;
            if full
                .insert(setting.clone(), Value::String(value.expose().into()))
                .is_some()
            {
                return Err(format!(
                    "{name}: `{setting}` is set both in config and in secretFiles; keep one"
                ));
            }
        }
        Ok(ConfiguredPlugin {
            plugin,
            config: spec.config.clone(),
            full_config: Secret::new(Value::Object(full).to_string()),
        })
    }
}
