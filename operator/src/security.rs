//! The security profiles (`spec.profile`, docs/security.md): what the
//! `Hardened` profile refuses, each refusal naming its field and the fix,
//! and how the profile folds into the checked spec: under `Hardened` the
//! refusals are problems of the workload or of the backup; under
//! `Development` they are only listed, in the `SecurityRisk` condition.
//! Pure. (The NetworkPolicies `Hardened` renders are built in
//! `desired::network`.)

use crate::api::{BackupTarget, OpenBaoClusterSpec, OpenBaoRestoreSpec, Profile};
use crate::status::{Cond, SECURITY_RISK};
use crate::validate::{self, ValidBackup};
use contract::network::{Cidr, forbidden, url_ip};

/// What `Hardened` refuses of a spec: the workload's part (TLS, seal) and
/// the backup's (auth, plugins, storage endpoint).
#[derive(Debug, Default, PartialEq)]
pub struct Refusals {
    pub workload: Vec<String>,
    pub backup: Vec<String>,
}

impl Refusals {
    fn all(&self) -> impl Iterator<Item = &String> {
        self.workload.iter().chain(&self.backup)
    }
}

/// Everything `Hardened` would refuse of `spec`, whatever its profile.
pub fn refusals(spec: &OpenBaoClusterSpec, service_cidrs: &[Cidr]) -> Refusals {
    let mut workload = Vec::new();
    tls(spec, &mut workload);
    seal(spec, &mut workload);
    let mut backup = Vec::new();
    if let Some(spec) = &spec.backup {
        if spec.token_secret_ref.is_some() {
            backup.push(static_token("spec.backup."));
        }
        backup.extend(validate::unpinned_plugins(spec).map(|(field, _)| unpinned(&field)));
        endpoint(
            &spec.target,
            "spec.backup.target",
            service_cidrs,
            &mut backup,
        );
        for (i, copy) in spec.copies.iter().enumerate() {
            endpoint(
                copy,
                &format!("spec.backup.copies[{i}]"),
                service_cidrs,
                &mut backup,
            );
        }
    }
    Refusals { workload, backup }
}

/// What a restore into a `Hardened` cluster may not do (nothing, for a
/// `Development` one): log in with a static token, run unpinned ConfigMap
/// plugins, or read from a storage endpoint `Hardened` refuses. A host
/// name is checked by the restore Job, which gets the profile.
pub fn restore_refusals(
    restore: &OpenBaoRestoreSpec,
    cluster: &OpenBaoClusterSpec,
    service_cidrs: &[Cidr],
) -> Vec<String> {
    let mut refusals = Vec::new();
    if cluster.profile != Some(Profile::Hardened) {
        return refusals;
    }
    if restore.token_secret_ref.is_some() {
        refusals.push(static_token("spec."));
    }
    for (i, plugin) in restore.plugins.iter().flatten().enumerate() {
        if validate::needs_pin(plugin) {
            refusals.push(unpinned(&format!("spec.plugins[{i}]")));
        }
    }
    if let Some(source) = &restore.source {
        endpoint(source, "spec.source", service_cidrs, &mut refusals);
    }
    refusals
}

/// A static token, at `{at}tokenSecretRef` beside `{at}jwtAuthRole`.
fn static_token(at: &str) -> String {
    format!(
        "{at}tokenSecretRef: the Hardened profile takes no static token (it does not expire and leaks with its Secret); log in with {at}jwtAuthRole"
    )
}

/// A ConfigMap plugin at `field` without a `sha256` pin.
fn unpinned(field: &str) -> String {
    format!(
        "{field}.sha256 is not set: the Hardened profile runs only pinned plugins; set it to the plugin's sha256sum"
    )
}

/// OpenBao the operator runs always serves TLS; an external one is told
/// by its addresses' scheme.
fn tls(spec: &OpenBaoClusterSpec, refusals: &mut Vec<String>) {
    let Some(external) = &spec.external else {
        return;
    };
    for (i, address) in external.addresses.iter().enumerate() {
        if address.starts_with("http://") {
            refusals.push(format!(
                "spec.external.addresses[{i}] `{address}` is plain HTTP: the Hardened profile needs OpenBao with TLS; serve TLS and give its https:// URL"
            ));
        }
    }
    if let Some(service) = &external.service
        && service.scheme() == "http"
    {
        refusals.push(
            "spec.external.service.scheme is http: the Hardened profile needs OpenBao with TLS; serve TLS and set scheme to https (or remove it)"
                .into(),
        );
    }
}

/// A static seal keeps the key that unseals everything (every backup too)
/// in a Secret of the cluster.
fn seal(spec: &OpenBaoClusterSpec, refusals: &mut Vec<String>) {
    if let Some(seal) = &spec.seal
        && !seal.static_key.allow_in_cluster_key
    {
        refusals.push(
            "spec.seal.static keeps OpenBao's unseal key in a Secret of this cluster: under the Hardened profile unseal with a KMS or transit seal in spec.config.seal, or set spec.seal.static.allowInClusterKey to true to accept the risk"
                .into(),
        );
    }
    if config_seals(spec).any(|(kind, _)| kind == "static") {
        refusals.push(
            "spec.config.seal.static keeps OpenBao's unseal key in the cluster: under the Hardened profile use a KMS or transit seal, or spec.seal.static with allowInClusterKey: true to accept the risk"
                .into(),
        );
    }
}

/// The seals of `spec.config.seal` (OpenBao's JSON form: one object of
/// `{"<type>": {...}}`, or a list of them), as (type, settings).
pub fn config_seals(
    spec: &OpenBaoClusterSpec,
) -> impl Iterator<Item = (&str, &serde_json::Map<String, serde_json::Value>)> {
    let seal = spec.config.as_ref().and_then(|c| c.get("seal"));
    let blocks: Vec<&serde_json::Value> = match seal {
        Some(serde_json::Value::Array(list)) => list.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    blocks
        .into_iter()
        .filter_map(serde_json::Value::as_object)
        .flat_map(|block| block.iter())
        .filter_map(|(kind, settings)| Some((kind.as_str(), settings.as_object()?)))
}

/// A storage endpoint: TLS, and not an address of the node or the
/// cluster (loopback, link-local where cloud metadata answers, the
/// service network). A host name is checked where it is resolved: the
/// executor, before it connects.
fn endpoint(
    target: &BackupTarget,
    field: &str,
    service_cidrs: &[Cidr],
    refusals: &mut Vec<String>,
) {
    let endpoints = [
        (format!("{field}.endpoint"), &target.endpoint),
        (
            format!("{field}.azure.endpoint"),
            &target.azure.as_ref().and_then(|a| a.endpoint.clone()),
        ),
    ];
    for (field, endpoint) in endpoints {
        let Some(endpoint) = endpoint else {
            continue;
        };
        if endpoint.starts_with("http://") {
            refusals.push(format!(
                "{field} `{endpoint}` is plain HTTP: the Hardened profile sends backups over TLS only; give the storage's https:// URL"
            ));
        }
        if let Some(why) = url_ip(endpoint).and_then(|ip| forbidden(ip, service_cidrs)) {
            refusals.push(format!(
                "{field} `{endpoint}`: {why}, which the Hardened profile refuses as a storage endpoint; give the storage's own address"
            ));
        }
    }
}

/// Folds the profile into what validation found: under `Hardened` the
/// refusals join the workload's and the backup's problems; under
/// `Development` nothing is refused and the returned `SecurityRisk`
/// condition lists what `Hardened` would refuse.
pub fn apply(
    spec: &OpenBaoClusterSpec,
    service_cidrs: &[Cidr],
    workload_problems: &mut Vec<String>,
    backup: &mut Result<Option<ValidBackup>, Vec<String>>,
) -> Option<Cond> {
    let refusals = refusals(spec, service_cidrs);
    match spec.profile() {
        Profile::Hardened => {
            workload_problems.extend(refusals.workload);
            if !refusals.backup.is_empty() {
                match backup {
                    Err(problems) => problems.extend(refusals.backup),
                    Ok(_) => *backup = Err(refusals.backup),
                }
            }
            None
        }
        Profile::Development => Some(security_risk(&refusals)),
    }
}

/// `SecurityRisk` of a `Development` cluster: True, with what `Hardened`
/// would refuse (or none) and that its pods have no NetworkPolicy.
fn security_risk(refusals: &Refusals) -> Cond {
    let listed: Vec<&str> = refusals.all().map(String::as_str).collect();
    let refused = if listed.is_empty() {
        "none".to_string()
    } else {
        listed.join("; ")
    };
    Cond::new(
        SECURITY_RISK,
        "True",
        "DevelopmentProfile",
        format!(
            "spec.profile is Development (not for production: OpenBao's pods get no NetworkPolicy); set it to Hardened. Hardened would refuse: {refused}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OpenBaoClusterSpec;

    fn spec(json: serde_json::Value) -> OpenBaoClusterSpec {
        serde_json::from_value(json).unwrap()
    }

    fn backup(target: serde_json::Value, auth: serde_json::Value) -> serde_json::Value {
        let mut backup = serde_json::json!({
            "schedule": "@daily", "executorImage": "openbao/backup-executor:1",
            "target": target,
        });
        backup
            .as_object_mut()
            .unwrap()
            .extend(auth.as_object().unwrap().clone());
        backup
    }

    fn cidrs() -> Vec<Cidr> {
        contract::network::parse_cidrs("10.96.0.0/12").unwrap()
    }

    #[test]
    fn a_safe_spec_has_nothing_to_refuse() {
        let safe = spec(serde_json::json!({
            "version": "2.4.1",
            "config": {"seal": {"transit": {"address": "https://transit:8200"}}},
            "backup": backup(
                serde_json::json!({"endpoint": "https://s3.example.com", "bucket": "b"}),
                serde_json::json!({"jwtAuthRole": "backup",
                    "transforms": [{"configMapRef": {"name": "p", "key": "p.wasm"}, "sha256": "a".repeat(64)}]}),
            ),
        }));
        assert_eq!(refusals(&safe, &cidrs()), Refusals::default());
        let accepted = spec(serde_json::json!({
            "version": "2.4.1",
            "seal": {"static": {"secretKeyRef": {"name": "s", "key": "k"}, "allowInClusterKey": true}},
        }));
        assert_eq!(refusals(&accepted, &cidrs()), Refusals::default());
    }

    #[test]
    fn each_refusal_names_its_field_and_the_fix() {
        let risky = spec(serde_json::json!({
            "version": "2.4.1",
            "seal": {"static": {"secretKeyRef": {"name": "s", "key": "k"}}},
            "config": {"seal": [{"static": {"current_key": "file:///k"}}]},
            "backup": backup(
                serde_json::json!({"endpoint": "http://169.254.169.254/latest", "bucket": "b"}),
                serde_json::json!({"tokenSecretRef": {"name": "t"},
                    "transforms": [{"configMapRef": {"name": "p", "key": "p.wasm"}},
                                   {"builtin": "zstd"}],
                    "retentionPlugin": {"configMapRef": {"name": "r", "key": "r.wasm"}}}),
            ),
        }));
        let found = refusals(&risky, &cidrs());
        let expect = |list: &[String], fields: &[&str]| {
            assert_eq!(list.len(), fields.len(), "{list:#?}");
            for (refusal, field) in list.iter().zip(fields) {
                assert!(refusal.starts_with(field), "{refusal} should name {field}");
            }
        };
        expect(
            &found.workload,
            &["spec.seal.static keeps", "spec.config.seal.static keeps"],
        );
        assert!(found.workload[0].contains("set spec.seal.static.allowInClusterKey to true"));
        expect(
            &found.backup,
            &[
                "spec.backup.tokenSecretRef: the Hardened profile takes no static token",
                "spec.backup.transforms[0].sha256 is not set",
                "spec.backup.retentionPlugin.sha256 is not set",
                "spec.backup.target.endpoint `http://169.254.169.254/latest` is plain HTTP",
                "spec.backup.target.endpoint `http://169.254.169.254/latest`: 169.254.169.254 is link-local",
            ],
        );
        assert!(found.backup[0].contains("jwtAuthRole"));
        // A built-in (transforms[1]) is part of the binary: no pin needed.
        assert!(!found.backup.iter().any(|r| r.contains("transforms[1]")));
    }

    #[test]
    fn storage_on_loopback_or_the_service_network_is_refused() {
        for (endpoint, why) in [
            ("https://127.0.0.1:3900", "loopback"),
            ("https://[::1]:3900", "loopback"),
            ("https://[fd00:ec2::254]", "link-local"),
            ("https://10.100.3.4:9000", "service network 10.96.0.0/12"),
        ] {
            let s = spec(serde_json::json!({"external": {"service": {"name": "bao"}},
                "backup": backup(serde_json::json!({"endpoint": endpoint, "bucket": "b"}),
                                 serde_json::json!({"jwtAuthRole": "r"}))}));
            let found = refusals(&s, &cidrs()).backup;
            assert_eq!(found.len(), 1, "{endpoint}: {found:?}");
            assert!(found[0].contains(why), "{endpoint}: {found:?}");
        }
        // Azure's endpoint too.
        let s = spec(serde_json::json!({"external": {"service": {"name": "bao"}},
            "backup": backup(serde_json::json!({"azure": {"account": "acct", "container": "backups",
                                                          "endpoint": "http://127.0.0.1:10000/acct"}}),
                             serde_json::json!({"jwtAuthRole": "r"}))}));
        let found = refusals(&s, &cidrs()).backup;
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with(
                "spec.backup.target.azure.endpoint `http://127.0.0.1:10000/acct` is plain HTTP"
            ) && found[1].contains("loopback"),
            "{found:?}"
        );
        // A copy's endpoint is held to the same rules, named by its place.
        let mut with_copy = backup(
            serde_json::json!({"endpoint": "https://10.200.0.5", "bucket": "b"}),
            serde_json::json!({"jwtAuthRole": "r"}),
        );
        with_copy["copies"] = serde_json::json!([
            {"bucket": "fine", "endpoint": "https://10.200.0.6"},
            {"bucket": "c", "endpoint": "https://127.0.0.1:3900"},
        ]);
        let s = spec(
            serde_json::json!({"external": {"service": {"name": "bao"}}, "backup": with_copy}),
        );
        let found = refusals(&s, &cidrs()).backup;
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.backup.copies[1].endpoint `https://127.0.0.1:3900`")
                && found[0].contains("loopback"),
            "{found:?}"
        );
        // A name is the executor's to resolve; an address outside is fine.
        for endpoint in ["https://minio.storage.svc:9000", "https://10.200.0.5"] {
            let s = spec(serde_json::json!({"external": {"service": {"name": "bao"}},
                "backup": backup(serde_json::json!({"endpoint": endpoint, "bucket": "b"}),
                                 serde_json::json!({"jwtAuthRole": "r"}))}));
            assert_eq!(refusals(&s, &cidrs()), Refusals::default(), "{endpoint}");
        }
    }

    #[test]
    fn an_external_openbao_without_tls_is_refused() {
        let by_address = spec(serde_json::json!({"external": {
            "addresses": ["https://bao-0:8200", "http://bao-1:8200"]}}));
        assert_eq!(
            refusals(&by_address, &[]).workload,
            [
                "spec.external.addresses[1] `http://bao-1:8200` is plain HTTP: the Hardened profile needs OpenBao with TLS; serve TLS and give its https:// URL"
            ]
        );
        let by_service = spec(serde_json::json!({"external": {
            "service": {"name": "bao-active", "scheme": "http"}}}));
        let found = refusals(&by_service, &[]).workload;
        assert!(found[0].starts_with("spec.external.service.scheme is http"));
        let tls = spec(serde_json::json!({"external": {"service": {"name": "bao-active"}}}));
        assert!(refusals(&tls, &[]).workload.is_empty());
    }

    #[test]
    fn hardened_refuses_and_development_only_warns() {
        let json = serde_json::json!({"version": "2.4.1",
            "seal": {"static": {"secretKeyRef": {"name": "s", "key": "k"}}},
            "backup": backup(serde_json::json!({"endpoint": "http://s3.example.com", "bucket": "b"}),
                             serde_json::json!({"jwtAuthRole": "r"}))});
        let development = spec(json.clone());
        let (mut workload, mut backup) = (Vec::new(), Ok(None));
        let risk = apply(&development, &[], &mut workload, &mut backup).unwrap();
        assert!(workload.is_empty() && matches!(backup, Ok(None)));
        assert_eq!((risk.type_, risk.status), (SECURITY_RISK, "True"));
        assert!(
            risk.message.contains("spec.seal.static keeps"),
            "{}",
            risk.message
        );
        assert!(
            risk.message
                .contains("spec.backup.target.endpoint `http://s3.example.com` is plain HTTP")
        );

        let mut hardened = spec(json);
        hardened.profile = Some(Profile::Hardened);
        let (mut workload, mut backup) = (Vec::new(), Ok(None));
        assert_eq!(apply(&hardened, &[], &mut workload, &mut backup), None);
        assert!(workload[0].starts_with("spec.seal.static keeps"));
        assert!(backup.unwrap_err()[0].starts_with("spec.backup.target.endpoint"));
        let mut earlier = Err(vec!["spec.backup.schedule: bad".to_string()]);
        apply(&hardened, &[], &mut Vec::new(), &mut earlier);
        assert_eq!(earlier.unwrap_err().len(), 2);

        let clean = spec(serde_json::json!({"version": "2.4.1"}));
        let risk = apply(&clean, &[], &mut Vec::new(), &mut Ok(None)).unwrap();
        assert!(
            risk.message.ends_with("Hardened would refuse: none"),
            "{}",
            risk.message
        );
    }

    #[test]
    fn the_hardened_example_passes_its_profile() {
        let example = crate::api::documented_examples("OpenBaoCluster")
            .into_iter()
            .find(|e| e["metadata"]["name"] == "hardened-cluster")
            .expect("examples/openbaocluster-hardened.yaml");
        let spec = spec(example["spec"].clone());
        assert_eq!(spec.profile, Some(Profile::Hardened));
        let mut workload = validate::workload("hardened-cluster", &spec);
        let mut backup = validate::validate(&spec, &Default::default());
        assert_eq!(apply(&spec, &cidrs(), &mut workload, &mut backup), None);
        assert_eq!(workload, Vec::<String>::new());
        assert!(backup.is_ok(), "{backup:?}");
    }

    #[test]
    fn a_restore_into_a_hardened_cluster_is_held_to_the_profile() {
        let restore: OpenBaoRestoreSpec = serde_json::from_value(serde_json::json!({
            "cluster": "bao", "key": "latest", "tokenSecretRef": {"name": "t"},
            "source": {"endpoint": "http://127.0.0.1:9000", "bucket": "b"},
            "plugins": [{"configMapRef": {"name": "p", "key": "p.wasm"}}, {"builtin": "zstd"}]}))
        .unwrap();
        let mut cluster = spec(serde_json::json!({"version": "2.4.1"}));
        assert!(
            restore_refusals(&restore, &cluster, &[]).is_empty(),
            "Development"
        );
        cluster.profile = Some(Profile::Hardened);
        let found = restore_refusals(&restore, &cluster, &[]);
        let fields: Vec<&str> = found
            .iter()
            .map(|r| r.split([' ', ':']).next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.tokenSecretRef",
                "spec.plugins[0].sha256",
                "spec.source.endpoint",
                "spec.source.endpoint"
            ],
            "{found:#?}"
        );
        assert!(found[3].contains("127.0.0.1 is a loopback"), "{}", found[3]);
    }

    #[test]
    fn an_api_client_that_selects_nothing_is_refused() {
        let s = spec(serde_json::json!({"version": "2.4.1",
            "networkPolicy": {"apiClients": [{"podSelector": {}}, {}]}}));
        assert_eq!(
            validate::workload("bao", &s),
            [
                "spec.networkPolicy.apiClients[1] selects nothing: give a namespaceSelector, a podSelector or both"
            ]
        );
    }
}
