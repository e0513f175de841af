//! A core wasm module built with guest-sdk into a WebAssembly component.

/// The component for `module`, a core module whose `component-type`
/// custom section (written by wit-bindgen, through guest-sdk's export
/// macros) describes what it exports.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, String> {
    let not_a_plugin = |e: &dyn std::fmt::Display| format!("not a guest-sdk plugin module: {e:#}");
    let (_, bindgen) = wit_component::metadata::decode(module).map_err(|e| not_a_plugin(&e))?;
    if bindgen.resolve.worlds[bindgen.world].exports.is_empty() {
        return Err(not_a_plugin(
            &"it exports nothing: call guest_sdk::export_retention! or export_transform! in the crate",
        ));
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)
        .and_then(|encoder| encoder.encode())
        .map_err(|e| not_a_plugin(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_without_bindings_is_refused_with_a_reason() {
        // The smallest valid module: the magic number and version 1.
        let error = componentize(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(error.contains("exports nothing"), "{error}");
        let error = componentize(b"not wasm").unwrap_err();
        assert!(
            error.starts_with("not a guest-sdk plugin module"),
            "{error}"
        );
    }
}
