//! The runtime: one wasmtime engine per process with its compiled
//! components and the epoch ticker that enforces call deadlines, and the
//! sandbox each plugin job runs in (a fresh Store whose limiter holds all
//! its memories together to the limit). The linker offers nothing: no WASI,
//! no files, network, clock or environment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};

use wasmtime::component::Component;
use wasmtime::{Config, Engine, ResourceLimiter, Store};

use crate::errors::{PluginError, classify};
use crate::limits::{Limits, MAX_INSTANCES, MAX_MEMORIES, MAX_TABLE_ELEMENTS, MAX_TABLES, TICK};

/// One per process: the engine, the compiled components (by content
/// hash), the epoch ticker and the limits.
#[derive(Clone)]
pub struct PluginHost {
    pub(crate) engine: Engine,
    compiled: Arc<Mutex<HashMap<String, Component>>>,
    ticker: Arc<Once>,
    pub(crate) limits: Limits,
}

impl PluginHost {
    /// Cheap: the epoch ticker starts with the first plugin loaded.
    pub fn new(limits: Limits) -> Self {
        let mut config = Config::new();
        // Compiling uses every core (wasmtime's parallel-compilation).
        config.wasm_component_model(true).epoch_interruption(true);
        Self {
            engine: Engine::new(&config).expect("the engine configuration is valid"),
            compiled: Arc::default(),
            ticker: Arc::new(Once::new()),
            limits,
        }
    }

    pub(crate) fn start_ticker(&self) {
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

    /// Compiles every built-in embedded in this binary for this engine and
    /// writes its code into `dir` (`plugin precompile`, run when the image
    /// is built); returns the files written.
    pub fn precompile_builtins(
        &self,
        dir: &std::path::Path,
    ) -> Result<Vec<std::path::PathBuf>, String> {
        crate::builtin::precompile(&self.engine, dir)
    }

    /// Compiles a component, once per content (by its SHA-256). A
    /// built-in's precompiled code (`precompile_builtins`) is loaded
    /// instead when it is there and this engine accepts it.
    pub(crate) fn compile(&self, bytes: &[u8], digest: &str) -> Result<Component, PluginError> {
        if let Some(component) = self.compiled.lock().expect("lock").get(digest) {
            return Ok(component.clone());
        }
        let component = match crate::builtin::precompiled(&self.engine, digest) {
            Some(component) => component,
            None => Component::new(&self.engine, bytes)
                .map_err(|e| PluginError::Compile(format!("{e:#}")))?,
        };
        self.compiled
            .lock()
            .expect("lock")
            .insert(digest.into(), component.clone());
        Ok(component)
    }

    /// A fresh Store for one plugin job, under the limits.
    pub(crate) fn store(&self) -> Store<Sandbox> {
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
pub(crate) struct Sandbox {
    memory_limit: usize,
    memory_used: usize,
    /// The growth last allowed, taken back if it then failed.
    memory_last_growth: usize,
    pub(crate) memory_refused: bool,
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

/// Runs one call into the plugin under the deadline, turning traps into
/// typed errors.
pub(crate) fn call<T>(
    store: &mut Store<Sandbox>,
    limits: Limits,
    f: impl FnOnce(&mut Store<Sandbox>) -> wasmtime::Result<T>,
) -> Result<T, PluginError> {
    store.set_epoch_deadline(deadline_ticks(limits));
    f(store).map_err(|e| classify(e, store.data().memory_refused, limits))
}

fn deadline_ticks(limits: Limits) -> u64 {
    (limits.call_timeout.as_millis() / TICK.as_millis()).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::Linker;

    /// A component from WebAssembly text.
    fn component(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).expect("valid WebAssembly text")
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
            .map_err(|e| classify(e, store.data().memory_refused, limits))
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
