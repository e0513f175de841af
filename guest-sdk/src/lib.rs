//! The plugin SDK. The WIT contract and the traits arrive with the plugin platform.
