//! Built-ins load from their precompiled code when it is there (alone in
//! this test binary: it sets the process's environment).

use contract::plugin_spec::PluginSpec;
use plugin_host::spec::ConfiguredPlugin;
use plugin_host::{Kind, Limits, PluginHost, builtin};

fn load(name: &str) -> String {
    let host = PluginHost::new(Limits::default());
    let spec: PluginSpec = format!("builtin:{name}").parse().unwrap();
    let plugin = ConfiguredPlugin::load(&spec, &host, Kind::Transform).unwrap();
    plugin.plugin.info.name.clone()
}

#[test]
fn builtins_load_their_precompiled_code_and_compile_without_it() {
    if builtin::list().iter().any(|b| b.sha256.is_none()) {
        panic!("this test needs the built-ins: run scripts/build-plugins before building");
    }
    let dir = std::env::temp_dir().join(format!("openbao-backup-cwasm-{}", std::process::id()));
    let written = PluginHost::new(Limits::default())
        .precompile_builtins(&dir)
        .unwrap();
    assert_eq!(written.len(), builtin::list().len(), "{written:?}");
    let file = |name: &str| {
        written
            .iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&format!("{name}-"))
            })
            .unwrap()
            .clone()
    };
    // SAFETY (edition 2024): the only test in this binary sets it.
    unsafe { std::env::set_var("OPENBAO_BACKUP_PRECOMPILED_DIR", &dir) };
    assert_eq!(load("zstd"), "zstd");
    // The code in the file is what runs: age's code under zstd's name
    // describes itself as age. (Which is why only our own build's files,
    // in the image, are ever read.)
    std::fs::copy(file("age"), file("zstd")).unwrap();
    assert_eq!(load("zstd"), "age");
    // A file the engine refuses is ignored: the component is compiled.
    std::fs::write(file("zstd"), b"not code").unwrap();
    assert_eq!(load("zstd"), "zstd");
    std::fs::remove_dir_all(&dir).unwrap();
}
