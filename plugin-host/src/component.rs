//! A plugin: a component checked and linked once at load (its kind, ABI,
//! imports and digest), then instantiated in a fresh sandbox for each job.
//! Retention plugins `decide`; transform plugins give a `Transformer` per
//! stream.

use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceAny};

use crate::bindings::retention::RetentionPluginPre;
use crate::bindings::transform::TransformPluginPre;
use crate::bindings::{ABI_VERSION, PACKAGE, wit_retention, wit_transform};
use crate::errors::{PluginError, classify};
use crate::limits::Limits;
use crate::runtime::{PluginHost, Sandbox, call};

/// The kinds are the contract's: the table of built-ins names them too.
pub use contract::plugin_spec::Kind;

/// What a plugin says about itself, with what the host found out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kind: &'static str,
    pub abi: String,
    pub description: String,
    /// SHA-256 of the component's bytes.
    pub sha256: String,
    pub size: usize,
}

/// Loading lives beside the plugin it builds: the runtime knows nothing
/// of plugins.
impl PluginHost {
    /// Checks the pinned digest, compiles (once per content), checks what
    /// the component imports and exports, links it, and asks it to
    /// describe itself.
    pub fn load(&self, bytes: &[u8], sha256: Option<&str>) -> Result<Plugin, PluginError> {
        let digest = hex::encode(Sha256::digest(bytes));
        if let Some(expected) = sha256
            && !expected.eq_ignore_ascii_case(&digest)
        {
            return Err(PluginError::DigestMismatch {
                expected: expected.into(),
                actual: digest,
            });
        }
        let component = self.compile(bytes, &digest)?;
        self.start_ticker();
        let (kind, abi) = self.check_world(&component)?;
        let pre = self.link(&component, kind)?;
        let mut plugin = Plugin {
            host: self.clone(),
            pre,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                kind: kind.as_str(),
                abi,
                description: String::new(),
                sha256: digest,
                size: bytes.len(),
            },
        };
        let (name, version, description) = plugin.describe()?;
        plugin.info.name = name;
        plugin.info.version = version;
        plugin.info.description = description;
        Ok(plugin)
    }

    /// The plugin's kind and ABI, from what the component imports (nothing
    /// is allowed) and exports (one of our interfaces, in an ABI we speak).
    fn check_world(&self, component: &Component) -> Result<(Kind, String), PluginError> {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        if !imports.is_empty() {
            return Err(PluginError::Imports(imports));
        }
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let (kind, abi) = exports
            .iter()
            .find_map(|name| {
                let (interface, version) = name.strip_prefix(PACKAGE)?.split_once('@')?;
                let kind = match interface {
                    "/transform" => Kind::Transform,
                    "/retention" => Kind::Retention,
                    _ => return None,
                };
                Some((kind, version.to_string()))
            })
            .ok_or_else(|| PluginError::NotAPlugin(exports.clone()))?;
        if abi.split('.').take(2).ne(ABI_VERSION.split('.').take(2)) {
            return Err(PluginError::Abi {
                found: format!("{PACKAGE}@{abi}"),
            });
        }
        Ok((kind, abi))
    }

    /// Links the component against an empty linker and type-checks its
    /// exports against the kind's world, once.
    fn link(&self, component: &Component, kind: Kind) -> Result<Pre, PluginError> {
        let linked = Linker::new(&self.engine)
            .instantiate_pre(component)
            .map_err(|e| PluginError::Compile(format!("{e:#}")))?;
        match kind {
            Kind::Retention => RetentionPluginPre::new(linked).map(Pre::Retention),
            Kind::Transform => TransformPluginPre::new(linked).map(Pre::Transform),
        }
        .map_err(|e| PluginError::Compile(format!("{e:#}")))
    }
}

/// A loaded, checked plugin; cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    host: PluginHost,
    pre: Pre,
    pub info: PluginInfo,
}

/// The component, linked and type-checked against its world once, at
/// load: each job then only instantiates it in a fresh Store.
#[derive(Clone)]
enum Pre {
    Retention(RetentionPluginPre<Sandbox>),
    Transform(TransformPluginPre<Sandbox>),
}

impl Plugin {
    pub fn kind(&self) -> Kind {
        match self.pre {
            Pre::Retention(_) => Kind::Retention,
            Pre::Transform(_) => Kind::Transform,
        }
    }

    fn describe(&self) -> Result<(String, String, String), PluginError> {
        let mut store = self.host.store();
        let limits = self.host.limits;
        match self.kind() {
            Kind::Retention => {
                let instance = self.retention_instance(&mut store)?;
                let info = call(&mut store, limits, |s| instance.call_describe(s))?;
                Ok((info.name, info.version, info.description))
            }
            Kind::Transform => {
                let instance = self.transform_instance(&mut store)?;
                let info = call(&mut store, limits, |s| instance.call_describe(s))?;
                Ok((info.name, info.version, info.description))
            }
        }
    }

    fn wrong_kind(&self, expected: Kind) -> PluginError {
        PluginError::WrongKind {
            expected: expected.as_str(),
            found: self.kind().as_str(),
        }
    }

    fn retention_instance(
        &self,
        store: &mut Store<Sandbox>,
    ) -> Result<wit_retention::Guest, PluginError> {
        let Pre::Retention(pre) = &self.pre else {
            return Err(self.wrong_kind(Kind::Retention));
        };
        let plugin = pre
            .instantiate(&mut *store)
            .map_err(|e| classify(e, store.data().memory_refused, self.host.limits))?;
        Ok(plugin.openbao_backup_plugin_retention().clone())
    }

    fn transform_instance(
        &self,
        store: &mut Store<Sandbox>,
    ) -> Result<wit_transform::Guest, PluginError> {
        let Pre::Transform(pre) = &self.pre else {
            return Err(self.wrong_kind(Kind::Transform));
        };
        let plugin = pre
            .instantiate(&mut *store)
            .map_err(|e| classify(e, store.data().memory_refused, self.host.limits))?;
        Ok(plugin.openbao_backup_plugin_transform().clone())
    }

    /// Asks a retention plugin which backups to delete (newest first in,
    /// keys out, each with a reason). A fresh instance per call.
    pub fn decide(
        &self,
        backups: &[RetentionBackup],
        now: i64,
        config: &str,
    ) -> Result<Vec<(String, String)>, PluginError> {
        let mut store = self.host.store();
        let limits = self.host.limits;
        let instance = self.retention_instance(&mut store)?;
        let backups: Vec<wit_retention::Backup> = backups
            .iter()
            .map(|b| wit_retention::Backup {
                key: b.key.clone(),
                time: b.time,
                size: b.size,
                kind: b.kind.clone(),
                metadata: b.metadata.clone(),
            })
            .collect();
        let decided = call(&mut store, limits, |s| {
            instance.call_decide(s, &backups, now, config)
        })??;
        Ok(decided.into_iter().map(|d| (d.key, d.reason)).collect())
    }

    /// A transformer for one stream, with its own instance and Store.
    pub fn transformer(
        &self,
        config: &str,
        direction: Direction,
        entropy: &[u8],
    ) -> Result<Transformer, PluginError> {
        let mut store = self.host.store();
        let limits = self.host.limits;
        let instance = self.transform_instance(&mut store)?;
        let direction = match direction {
            Direction::Encode => wit_transform::Direction::Encode,
            Direction::Decode => wit_transform::Direction::Decode,
        };
        let resource = call(&mut store, limits, |s| {
            instance
                .transformer()
                .call_constructor(s, config, direction, entropy)
        })?;
        Ok(Transformer {
            store,
            instance,
            resource,
            limits,
        })
    }
}

/// One backup, as a retention plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionBackup {
    pub key: String,
    pub time: i64,
    pub size: u64,
    pub kind: String,
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Encode,
    Decode,
}

/// One stream through a transform plugin. After any error, drop it: the
/// Store and everything the plugin held go with it.
pub struct Transformer {
    store: Store<Sandbox>,
    instance: wit_transform::Guest,
    resource: ResourceAny,
    limits: Limits,
}

impl Transformer {
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, PluginError> {
        let (instance, resource) = (&self.instance, self.resource);
        let out = call(&mut self.store, self.limits, |s| {
            instance.transformer().call_push(s, resource, chunk)
        })?;
        self.output(out)
    }

    pub fn finish(mut self) -> Result<Vec<u8>, PluginError> {
        let (instance, resource) = (&self.instance, self.resource);
        let out = call(&mut self.store, self.limits, |s| {
            instance.transformer().call_finish(s, resource)
        })?;
        self.output(out)
    }

    fn output(
        &self,
        out: Result<Vec<u8>, wit_transform::PluginError>,
    ) -> Result<Vec<u8>, PluginError> {
        let out = out?;
        if out.len() > self.limits.max_output_bytes {
            return Err(PluginError::OutputTooLarge {
                size: out.len(),
                limit: self.limits.max_output_bytes,
            });
        }
        Ok(out)
    }
}
