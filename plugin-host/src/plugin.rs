//! The WebAssembly plugin host. Plugins are components speaking the WIT
//! package `openbao-backup:plugin` (guest-sdk/wit/plugin.wit). They run
//! sandboxed: the linker offers nothing (no WASI: no files, network, clock
//! or environment), each job gets a fresh Store with a memory limit (all its
//! linear memories together) and bounded counts of instances, memories and
//! tables, every
//! call has a deadline (epoch interruption) and a bound on its output. A
//! plugin that misbehaves fails its job with a typed reason; the process
//! carries on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};

mod bindings {
    pub mod retention {
        wasmtime::component::bindgen!({ world: "retention-plugin", path: "../guest-sdk/wit" });
    }
    pub mod transform {
        wasmtime::component::bindgen!({ world: "transform-plugin", path: "../guest-sdk/wit" });
    }
}
use bindings::retention::exports::openbao_backup::plugin::retention as wit_retention;
use bindings::transform::exports::openbao_backup::plugin::transform as wit_transform;

/// The WIT package version this host speaks.
pub const ABI_VERSION: &str = "0.1.0";
const PACKAGE: &str = "openbao-backup:plugin";
/// How often the epoch ticks: the granularity of call deadlines.
const TICK: Duration = Duration::from_millis(10);
/// What one Store (one plugin job) may create. A component instantiates
/// several core modules, each of which may define memories and tables; the
/// plugins built with guest-sdk need one or two of each.
const MAX_INSTANCES: usize = 32;
const MAX_MEMORIES: usize = 4;
const MAX_TABLES: usize = 16;
const MAX_TABLE_ELEMENTS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory a plugin instance may grow to, all its memories
    /// together.
    pub memory_bytes: usize,
    /// Wall time of one call into the plugin.
    pub call_timeout: Duration,
    /// Bytes one call may return.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 * 1024 * 1024,
            call_timeout: Duration::from_secs(10),
            max_output_bytes: 64 * 1024 * 1024,
        }
    }
}

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

/// Why a plugin could not be used or failed its job.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin digest mismatch: expected sha256 {expected}, the bytes have {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("not a WebAssembly component: {0}")]
    Compile(String),
    #[error(
        "the plugin imports {0:?}; plugins get nothing from the host (no WASI, no host functions)"
    )]
    Imports(Vec<String>),
    #[error("the plugin speaks ABI {found}; this host speaks {PACKAGE}@{ABI_VERSION} (0.1.x)")]
    Abi { found: String },
    #[error(
        "not an openbao-backup plugin: it exports {0:?}, not {PACKAGE}/transform or /retention"
    )]
    NotAPlugin(Vec<String>),
    #[error("a {found} plugin cannot be used as a {expected} plugin")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    #[error("the plugin ran longer than its {0:?} limit")]
    Timeout(Duration),
    #[error("the plugin needed more than its {0} bytes of memory")]
    OutOfMemory(usize),
    #[error(
        "the plugin needs more than the sandbox allows ({0}): at most {MAX_INSTANCES} module instances, {MAX_MEMORIES} memories and {MAX_TABLES} tables"
    )]
    TooLarge(String),
    #[error("the plugin panicked")]
    Panicked,
    #[error("the plugin trapped: {0}")]
    Trapped(String),
    #[error("the plugin returned {size} bytes in one call, more than its {limit} bytes limit")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("plugin configuration: {0}")]
    Config(String),
    #[error("the plugin cannot read its input: {0}")]
    InvalidInput(String),
    #[error("the plugin failed: {0}")]
    Failed(String),
}

impl PluginError {
    /// A short machine name, for results and metrics.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::DigestMismatch { .. } => "digest-mismatch",
            Self::Compile(_) | Self::NotAPlugin(_) | Self::WrongKind { .. } => "not-a-plugin",
            Self::Imports(_) => "imports",
            Self::Abi { .. } => "abi",
            Self::Timeout(_) => "timeout",
            Self::OutOfMemory(_) => "out-of-memory",
            Self::TooLarge(_) => "too-large",
            Self::Panicked => "panic",
            Self::Trapped(_) => "trap",
            Self::OutputTooLarge { .. } => "output-too-large",
            Self::Config(_) => "config",
            Self::InvalidInput(_) => "invalid-input",
            Self::Failed(_) => "failed",
        }
    }
}

/// One per process: the engine, the compiled components (by content
/// hash), the epoch ticker and the limits.
#[derive(Clone)]
pub struct PluginHost {
    engine: Engine,
    compiled: Arc<Mutex<HashMap<String, Component>>>,
    ticker: Arc<Once>,
    limits: Limits,
}

impl PluginHost {
    /// Cheap: the epoch ticker starts with the first plugin loaded.
    pub fn new(limits: Limits) -> Self {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        Self {
            engine: Engine::new(&config).expect("the engine configuration is valid"),
            compiled: Arc::default(),
            ticker: Arc::new(Once::new()),
            limits,
        }
    }

    fn start_ticker(&self) {
        let ticker = self.engine.weak();
        self.ticker.call_once(|| {
            std::thread::Builder::new()
                .name("plugin-epoch".into())
                .spawn(move || {
                    while let Some(engine) = ticker.upgrade() {
                        engine.increment_epoch();
                        drop(engine);
                        std::thread::sleep(TICK);
                    }
                })
                .expect("the epoch thread starts");
        });
    }

    /// Checks the pinned digest, compiles (once per content), checks what
    /// the component imports and exports, and asks it to describe itself.
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
        let mut plugin = Plugin {
            host: self.clone(),
            component,
            kind,
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

    fn compile(&self, bytes: &[u8], digest: &str) -> Result<Component, PluginError> {
        if let Some(component) = self.compiled.lock().expect("lock").get(digest) {
            return Ok(component.clone());
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| PluginError::Compile(format!("{e:#}")))?;
        self.compiled
            .lock()
            .expect("lock")
            .insert(digest.into(), component.clone());
        Ok(component)
    }

    fn store(&self) -> Store<Sandbox> {
        let mut store = Store::new(
            &self.engine,
            Sandbox {
                memory_limit: self.limits.memory_bytes,
                memory_used: 0,
                memory_last_growth: 0,
                memory_refused: false,
            },
        );
        store.limiter(|sandbox| sandbox);
        store.epoch_deadline_trap();
        // Instantiation runs plugin code too.
        store.set_epoch_deadline(deadline_ticks(self.limits));
        store
    }
}

/// Store data: the memory limit, what all the plugin's memories hold
/// together, and whether the limit was hit (to tell an out-of-memory abort
/// from a panic).
struct Sandbox {
    memory_limit: usize,
    memory_used: usize,
    /// The growth last allowed, taken back if it then failed.
    memory_last_growth: usize,
    memory_refused: bool,
}

impl ResourceLimiter for Sandbox {
    /// Called for every memory, when it is created too: the limit holds for
    /// their sum, so several memories cannot each take the whole limit.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let allowed = self.memory_used.saturating_add(growth) <= self.memory_limit;
        if allowed {
            self.memory_used += growth;
            self.memory_last_growth = growth;
        }
        self.memory_refused |= !allowed;
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_used -= std::mem::take(&mut self.memory_last_growth);
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// A loaded, checked plugin; cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    host: PluginHost,
    component: Component,
    kind: Kind,
    pub info: PluginInfo,
}

impl Plugin {
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn describe(&self) -> Result<(String, String, String), PluginError> {
        let mut store = self.host.store();
        let limits = self.host.limits;
        match self.kind {
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

    fn expect_kind(&self, expected: Kind) -> Result<(), PluginError> {
        if self.kind == expected {
            Ok(())
        } else {
            Err(PluginError::WrongKind {
                expected: expected.as_str(),
                found: self.kind.as_str(),
            })
        }
    }

    fn retention_instance(
        &self,
        store: &mut Store<Sandbox>,
    ) -> Result<wit_retention::Guest, PluginError> {
        let linker = Linker::new(&self.host.engine);
        let plugin = bindings::retention::RetentionPlugin::instantiate(
            &mut *store,
            &self.component,
            &linker,
        )
        .map_err(|e| classify(e, store.data(), self.host.limits))?;
        Ok(plugin.openbao_backup_plugin_retention().clone())
    }

    fn transform_instance(
        &self,
        store: &mut Store<Sandbox>,
    ) -> Result<wit_transform::Guest, PluginError> {
        let linker = Linker::new(&self.host.engine);
        let plugin = bindings::transform::TransformPlugin::instantiate(
            &mut *store,
            &self.component,
            &linker,
        )
        .map_err(|e| classify(e, store.data(), self.host.limits))?;
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
        self.expect_kind(Kind::Retention)?;
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
        })?
        .map_err(|e| match e {
            wit_retention::PluginError::Config(m) => PluginError::Config(m),
            wit_retention::PluginError::InvalidInput(m) => PluginError::InvalidInput(m),
            wit_retention::PluginError::Failed(m) => PluginError::Failed(m),
        })?;
        Ok(decided.into_iter().map(|d| (d.key, d.reason)).collect())
    }

    /// A transformer for one stream, with its own instance and Store.
    pub fn transformer(
        &self,
        config: &str,
        direction: Direction,
        entropy: &[u8],
    ) -> Result<Transformer, PluginError> {
        self.expect_kind(Kind::Transform)?;
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
        let out = out.map_err(|e| match e {
            wit_transform::PluginError::Config(m) => PluginError::Config(m),
            wit_transform::PluginError::InvalidInput(m) => PluginError::InvalidInput(m),
            wit_transform::PluginError::Failed(m) => PluginError::Failed(m),
        })?;
        if out.len() > self.limits.max_output_bytes {
            return Err(PluginError::OutputTooLarge {
                size: out.len(),
                limit: self.limits.max_output_bytes,
            });
        }
        Ok(out)
    }
}

/// Runs one call into the plugin under the deadline, turning traps into
/// typed errors.
fn call<T>(
    store: &mut Store<Sandbox>,
    limits: Limits,
    f: impl FnOnce(&mut Store<Sandbox>) -> wasmtime::Result<T>,
) -> Result<T, PluginError> {
    store.set_epoch_deadline(deadline_ticks(limits));
    f(store).map_err(|e| classify(e, store.data(), limits))
}

fn deadline_ticks(limits: Limits) -> u64 {
    (limits.call_timeout.as_millis() / TICK.as_millis()).max(1) as u64
}

fn classify(error: wasmtime::Error, sandbox: &Sandbox, limits: Limits) -> PluginError {
    if sandbox.memory_refused {
        return PluginError::OutOfMemory(limits.memory_bytes);
    }
    let message = format!("{error:#}");
    // How wasmtime words a Store's count limits (instances, memories, tables).
    if message.contains("resource limit exceeded") {
        return PluginError::TooLarge(message);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout(limits.call_timeout),
        // Rust guests abort (panic = "abort") with `unreachable`.
        Some(Trap::UnreachableCodeReached) => PluginError::Panicked,
        Some(trap) => PluginError::Trapped(trap.to_string()),
        None => PluginError::Trapped(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// A component from WebAssembly text, built by wasm-tools (which the
    /// project already builds for the plugins; no `wat` crate needed).
    fn component(wat: &str) -> Vec<u8> {
        let tool = std::env::var("WASM_TOOLS").expect("WASM_TOOLS is set: source scripts/env.sh");
        let mut child = Command::new(&tool)
            .arg("parse")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(wat.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "wasm-tools parse failed");
        out.stdout
    }

    /// Instantiates a component in a plugin's sandbox.
    fn instantiate(memory_bytes: usize, wat: &str) -> Result<(), PluginError> {
        let limits = Limits {
            memory_bytes,
            ..Limits::default()
        };
        let host = PluginHost::new(limits);
        let component = Component::new(&host.engine, component(wat)).unwrap();
        let mut store = host.store();
        Linker::new(&host.engine)
            .instantiate(&mut store, &component)
            .map(drop)
            .map_err(|e| classify(e, store.data(), limits))
    }

    /// `n` core modules, each with its own memory of `pages` (64 KiB each).
    fn memories(n: usize, pages: u32) -> String {
        let mut wat = String::from("(component\n");
        for i in 0..n {
            wat += &format!(
                "(core module $m{i} (memory {pages}))\n(core instance (instantiate $m{i}))\n"
            );
        }
        wat + ")"
    }

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_memory_limit_holds_for_all_memories_together() {
        // 2 x 2.5 MiB: each fits a 4 MiB limit, together they do not.
        assert!(instantiate(4 * MIB, &memories(1, 40)).is_ok());
        let err = instantiate(4 * MIB, &memories(2, 40)).unwrap_err();
        assert!(matches!(err, PluginError::OutOfMemory(_)), "{err}");
        assert!(instantiate(5 * MIB, &memories(2, 40)).is_ok());
    }

    #[test]
    fn instances_memories_and_tables_are_counted() {
        let err = instantiate(64 * MIB, &memories(MAX_MEMORIES + 1, 1)).unwrap_err();
        assert!(
            matches!(&err, PluginError::TooLarge(m) if m.contains("memory count")),
            "{err}"
        );
        assert_eq!(err.cause(), "too-large");

        let mut tables = String::from("(component\n(core module $t (table 1 funcref))\n");
        tables += &"(core instance (instantiate $t))\n".repeat(MAX_TABLES + 1);
        let err = instantiate(64 * MIB, &(tables + ")")).unwrap_err();
        assert!(
            matches!(&err, PluginError::TooLarge(m) if m.contains("table count")),
            "{err}"
        );

        let mut instances = String::from("(component\n(core module $e)\n");
        instances += &"(core instance (instantiate $e))\n".repeat(MAX_INSTANCES + 1);
        let err = instantiate(64 * MIB, &(instances + ")")).unwrap_err();
        assert!(
            matches!(&err, PluginError::TooLarge(m) if m.contains("instance count")),
            "{err}"
        );
    }
}
