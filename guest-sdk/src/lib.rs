//! Write openbao-backup plugins in Rust: implement [`Retention`] or
//! [`Transform`], export it with [`export_retention!`] or
//! [`export_transform!`], and build it into a WebAssembly component with
//! `openbao-backup plugin build` (`openbao-backup plugin new` writes a
//! crate that does all of this).
//!
//! ```
//! use guest_sdk::{Backup, Deletion, Error, Info, Retention};
//! use serde::Deserialize;
//!
//! struct KeepNewest;
//!
//! #[derive(Deserialize)]
//! #[serde(rename_all = "camelCase", deny_unknown_fields)]
//! struct Config {
//!     #[serde(default = "three")]
//!     keep: usize,
//! }
//!
//! fn three() -> usize { 3 }
//!
//! impl Retention for KeepNewest {
//!     const INFO: Info = Info::new("keep-newest", env!("CARGO_PKG_VERSION"), "keeps the newest `keep`");
//!     const CONFIG_EXAMPLE: &'static str = r#"{"keep": 3}"#;
//!     type Config = Config;
//!
//!     fn decide(backups: &[Backup], _now: i64, config: &Config) -> Result<Vec<Deletion>, Error> {
//!         Ok(backups.iter().skip(config.keep).map(|b| Deletion::new(&b.key, "beyond the newest")).collect())
//!     }
//! }
//!
//! guest_sdk::export_retention!(KeepNewest);
//! ```
//!
//! The configuration arrives as a typed value: the SDK reads the JSON the
//! user gave (none at all reads as `{}`) with serde, and a mistake becomes a
//! configuration error that names the field, with [`Retention::CONFIG_EXAMPLE`].
//! The traits are plain Rust, so plugins are unit-tested natively with
//! `cargo test`: [`run_retention`] and [`run_transform`] drive a plugin as the
//! host does, from the configuration's JSON. The WIT contract is
//! `wit/plugin.wit`, inside this crate; its package version is the ABI
//! version ([`ABI_VERSION`]).

use std::cell::RefCell;

use serde::de::DeserializeOwned;

/// The version of the WIT package these bindings implement.
pub const ABI_VERSION: &str = "0.1.0";

/// Generated bindings, used by the export macros.
#[doc(hidden)]
pub mod bindings {
    pub mod transform {
        wit_bindgen::generate!({
            world: "transform-plugin",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_transform_world",
            default_bindings_module: "guest_sdk::bindings::transform",
        });
    }
    pub mod retention {
        wit_bindgen::generate!({
            world: "retention-plugin",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_retention_world",
            default_bindings_module: "guest_sdk::bindings::retention",
        });
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
}

impl Info {
    pub const fn new(name: &'static str, version: &'static str, description: &'static str) -> Self {
        Self {
            name,
            version,
            description,
        }
    }
}

/// A failure the plugin reports to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The configuration is wrong: name the field and the fix.
    Config(String),
    /// The input is not readable by this plugin (wrong key, corrupt data).
    InvalidInput(String),
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(m) => write!(f, "configuration: {m}"),
            Self::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Self::Failed(m) => f.write_str(m),
        }
    }
}

/// One existing backup of a cluster, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub key: String,
    /// Unix seconds, UTC.
    pub time: i64,
    pub size: u64,
    /// "scheduled", "manual" or "pre-upgrade".
    pub kind: String,
    pub metadata: Vec<(String, String)>,
}

/// A backup to delete, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub key: String,
    pub reason: String,
}

impl Deletion {
    pub fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Reads a plugin's JSON configuration into its type; no configuration
/// (an empty string) reads as `{}`. A mistake is an [`Error::Config`] that
/// names the field, followed by `example` (when not empty).
pub fn parse_config<C: DeserializeOwned>(json: &str, example: &str) -> Result<C, Error> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json).map_err(|e| {
        Error::Config(if example.is_empty() {
            e.to_string()
        } else {
            format!("{e}: expected {example}")
        })
    })
}

/// A retention policy: which backups of one cluster to delete.
pub trait Retention {
    const INFO: Info;
    /// A valid configuration, shown when the given one does not parse.
    const CONFIG_EXAMPLE: &'static str = "";
    /// The configuration, read from the user's JSON with serde.
    type Config: DeserializeOwned;

    /// `backups` is newest first; `now` is Unix seconds. The host never
    /// deletes the backup just taken and always keeps at least one,
    /// whatever this returns.
    fn decide(backups: &[Backup], now: i64, config: &Self::Config) -> Result<Vec<Deletion>, Error>;
}

/// Runs a retention policy with a JSON configuration, as the host does:
/// for native tests of plugins.
pub fn run_retention<P: Retention>(
    backups: &[Backup],
    now: i64,
    config: &str,
) -> Result<Vec<Deletion>, Error> {
    P::decide(backups, now, &parse_config(config, P::CONFIG_EXAMPLE)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Backup: towards storage.
    Encode,
    /// Restore: undoes encode.
    Decode,
}

/// A streaming transform (compression, encryption). The host creates one
/// per stream, pushes bounded chunks, then calls `finish` once.
pub trait Transform: Sized + 'static {
    const INFO: Info;
    /// A valid configuration, shown when the given one does not parse.
    const CONFIG_EXAMPLE: &'static str = "";
    /// The configuration, read from the user's JSON with serde.
    type Config: DeserializeOwned;

    /// `entropy` is fresh random bytes from the host, for this stream only.
    fn new(config: Self::Config, direction: Direction, entropy: Vec<u8>) -> Result<Self, Error>;

    /// Consumes `chunk`, appending whatever output is ready to `out`.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Error>;

    /// The input ended: append the rest of the output.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Error>;
}

/// Runs a transform with a JSON configuration over `input` in chunks of
/// `chunk_size`, as the host does: for native tests of plugins.
pub fn run_transform<T: Transform>(
    config: &str,
    direction: Direction,
    entropy: Vec<u8>,
    input: &[u8],
    chunk_size: usize,
) -> Result<Vec<u8>, Error> {
    let mut transform = new_transform::<T>(config, direction, entropy)?;
    let mut out = Vec::new();
    for chunk in input.chunks(chunk_size.max(1)) {
        transform.push(chunk, &mut out)?;
    }
    transform.finish(&mut out)?;
    Ok(out)
}

fn new_transform<T: Transform>(
    config: &str,
    direction: Direction,
    entropy: Vec<u8>,
) -> Result<T, Error> {
    T::new(parse_config(config, T::CONFIG_EXAMPLE)?, direction, entropy)
}

/// Exports a [`Retention`] implementation as the plugin's entry points.
#[macro_export]
macro_rules! export_retention {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __GuestSdkExport = $crate::__private::RetentionExport<$plugin>;
            $crate::bindings::retention::__export_retention_world!(__GuestSdkExport with_types_in $crate::bindings::retention);
        };
    };
}

/// Exports a [`Transform`] implementation as the plugin's entry points.
#[macro_export]
macro_rules! export_transform {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __GuestSdkExport = $crate::__private::TransformExport<$plugin>;
            $crate::bindings::transform::__export_transform_world!(__GuestSdkExport with_types_in $crate::bindings::transform);
        };
    };
}

/// The glue between the traits and the generated bindings.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use crate::bindings::retention::exports::openbao_backup::plugin::retention as r;
    use crate::bindings::transform::exports::openbao_backup::plugin::transform as t;
    use std::marker::PhantomData;

    pub struct RetentionExport<P>(PhantomData<P>);
    pub struct TransformExport<P>(PhantomData<P>);

    macro_rules! convert_error {
        ($module:ident, $error:expr) => {
            match $error {
                Error::Config(m) => $module::PluginError::Config(m),
                Error::InvalidInput(m) => $module::PluginError::InvalidInput(m),
                Error::Failed(m) => $module::PluginError::Failed(m),
            }
        };
    }

    impl<P: Retention> r::Guest for RetentionExport<P> {
        fn describe() -> r::PluginInfo {
            r::PluginInfo {
                name: P::INFO.name.into(),
                version: P::INFO.version.into(),
                description: P::INFO.description.into(),
            }
        }

        fn decide(
            backups: Vec<r::Backup>,
            now: i64,
            config: String,
        ) -> Result<Vec<r::Deletion>, r::PluginError> {
            let backups: Vec<Backup> = backups
                .into_iter()
                .map(|b| Backup {
                    key: b.key,
                    time: b.time,
                    size: b.size,
                    kind: b.kind,
                    metadata: b.metadata,
                })
                .collect();
            match run_retention::<P>(&backups, now, &config) {
                Ok(list) => Ok(list
                    .into_iter()
                    .map(|d| r::Deletion {
                        key: d.key,
                        reason: d.reason,
                    })
                    .collect()),
                Err(e) => Err(convert_error!(r, e)),
            }
        }
    }

    impl<P: Transform> t::Guest for TransformExport<P> {
        type Transformer = Transformer<P>;

        fn describe() -> t::PluginInfo {
            t::PluginInfo {
                name: P::INFO.name.into(),
                version: P::INFO.version.into(),
                description: P::INFO.description.into(),
            }
        }
    }

    /// A WIT constructor cannot fail: a config error waits for the first
    /// call. After any error the transformer stays failed.
    pub struct Transformer<P>(RefCell<Result<P, Error>>);

    impl<P: Transform> Transformer<P> {
        fn with(
            &self,
            call: impl FnOnce(&mut P, &mut Vec<u8>) -> Result<(), Error>,
        ) -> Result<Vec<u8>, t::PluginError> {
            let mut state = self.0.borrow_mut();
            let plugin = match state.as_mut() {
                Ok(plugin) => plugin,
                Err(e) => return Err(convert_error!(t, e.clone())),
            };
            let mut out = Vec::new();
            match call(plugin, &mut out) {
                Ok(()) => Ok(out),
                Err(e) => {
                    *state = Err(e.clone());
                    Err(convert_error!(t, e))
                }
            }
        }
    }

    impl<P: Transform> t::GuestTransformer for Transformer<P> {
        fn new(config: String, direction: t::Direction, entropy: Vec<u8>) -> Self {
            let direction = match direction {
                t::Direction::Encode => Direction::Encode,
                t::Direction::Decode => Direction::Decode,
            };
            Self(RefCell::new(new_transform::<P>(
                &config, direction, entropy,
            )))
        }

        fn push(&self, chunk: Vec<u8>) -> Result<Vec<u8>, t::PluginError> {
            self.with(|plugin, out| plugin.push(&chunk, out))
        }

        fn finish(&self) -> Result<Vec<u8>, t::PluginError> {
            self.with(|plugin, out| plugin.finish(out))
        }
    }
}
