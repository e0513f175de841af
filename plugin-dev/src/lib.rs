//! Plugin authoring, so that writing a plugin needs only cargo and this
//! project: `scaffold` writes a new plugin crate from a template (pure),
//! `component` turns a built wasm module into a component (the
//! `wit-component` crate, no `wasm-tools` install), and `build` runs
//! cargo for `wasm32-unknown-unknown` and does both.

mod build;
mod component;
mod scaffold;

pub use build::build;
pub use component::componentize;
pub use scaffold::{Kind, Sdk, scaffold};
