//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated as an API
//! server with CEL evaluates them: the rules are read from the generated CRD
//! (what ships), run on what users write, and must reach the verdict the
//! controller's own checks (`operator::validate`, for API servers without
//! CEL) reach on the same objects.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{
    COPY_SETTINGS_MESSAGE, HARDENED_WEBHOOK_MESSAGE, OpenBaoCluster, PLUGIN_SOURCE_MESSAGE,
    WORKLOAD_FIELDS, crd_yaml, documented_examples,
};
use crate::{names, validate};

/// One rule of a CRD, where it sits: the schema's properties from the root
/// down to it.
#[derive(Debug)]
struct Rule {
    kind: String,
    path: Vec<String>,
    /// Its place in the list of rules at `path`.
    index: usize,
    rule: String,
    message: String,
    program: cel::Program,
    /// It reads `oldSelf`: Kubernetes runs it on updates only.
    transition: bool,
}

impl Rule {
    fn id(&self) -> String {
        format!("{}.{}[{}]", self.kind, self.path.join("."), self.index)
    }

    /// The rule's value on `object` (`old`: the object before an update),
    /// or None where Kubernetes does not run it: `self` absent, or a
    /// transition rule without an old value.
    fn evaluate(&self, object: &Value, old: Option<&Value>) -> Option<bool> {
        // Every value at the path: `*` stands for each item of a list.
        let at = |object: &Value| {
            self.path.iter().fold(vec![object.clone()], |values, name| {
                values
                    .into_iter()
                    .flat_map(|value| match (name.as_str(), value) {
                        ("*", Value::Array(items)) => items,
                        (_, value) => value.get(name).cloned().into_iter().collect(),
                    })
                    .collect()
            })
        };
        let values = at(object);
        if values.is_empty() {
            return None;
        }
        let mut valid = true;
        for value in values {
            let mut context = cel::Context::default();
            context.add_variable("self", value).unwrap();
            if self.transition {
                assert!(!self.path.contains(&"*".to_string()), "{}", self.id());
                context
                    .add_variable("oldSelf", at(old?).into_iter().next()?)
                    .unwrap();
            }
            match self.program.execute(&context) {
                Ok(cel::Value::Bool(ok)) => valid &= ok,
                other => panic!("{}: `{}` gave {other:?}", self.id(), self.rule),
            }
        }
        Some(valid)
    }
}

/// Every rule of the CRDs `openbao-backup crd` prints.
fn shipped_rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&crd_yaml()) {
        let crd = serde_json::to_value(serde_yaml::Value::deserialize(document).unwrap()).unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let schema = &version["schema"]["openAPIV3Schema"];
            collect(kind, schema, &mut Vec::new(), &mut rules);
        }
    }
    rules
}

fn collect(kind: &str, schema: &Value, path: &mut Vec<String>, rules: &mut Vec<Rule>) {
    let listed = schema["x-kubernetes-validations"].as_array();
    for (index, rule) in listed.into_iter().flatten().enumerate() {
        let text = rule["rule"].as_str().unwrap();
        let program = cel::Program::compile(text).unwrap_or_else(|e| panic!("`{text}`: {e}"));
        rules.push(Rule {
            kind: kind.into(),
            path: path.clone(),
            index,
            rule: text.into(),
            message: rule["message"].as_str().unwrap().into(),
            transition: program.references().has_variable("oldSelf"),
            program,
        });
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        path.push(name.clone());
        collect(kind, property, path, rules);
        path.pop();
    }
    // A list's rules hold for each item (`*` in the path).
    if schema["items"].is_object() {
        path.push("*".into());
        collect(kind, &schema["items"], path, rules);
        path.pop();
    }
}

/// What the controller decides about what `rule` checks: whether `object`
/// passes. None for the transition rule: the controller has no old object
/// to compare with.
fn controller_accepts(rule: &Rule, object: &Value) -> Option<bool> {
    let any_image = crate::settings::OperatorSettings {
        executor_images: vec!["*".into()],
        ..Default::default()
    };
    let spec = object["spec"].clone();
    let (problems, problem) = match (
        rule.kind.as_str(),
        rule.path.join(".").as_str(),
        rule.transition,
    ) {
        // Notifications: the controller skips a plain-HTTP webhook of a
        // Hardened cluster, and says so naming it.
        ("OpenBaoCluster", "spec", false) if rule.message == HARDENED_WEBHOOK_MESSAGE => {
            let problems = crate::notify::problems(&serde_json::from_value(spec).unwrap(), &[]);
            return Some(!problems.iter().any(|p| {
                p.starts_with("spec.notifications[")
                    && p.ends_with(
                        HARDENED_WEBHOOK_MESSAGE.trim_start_matches("spec.notifications: "),
                    )
            }));
        }
        ("OpenBaoCluster", "spec", false) => (
            validate::workload("bao", &serde_json::from_value(spec).unwrap()),
            // The first rule asks for a release; the others refuse the
            // workload's fields with spec.external, in the same words.
            if rule.index == 0 {
                "spec.version:"
            } else {
                rule.message.as_str()
            },
        ),
        ("OpenBaoCluster", "spec.external", false) => (
            validate::workload("bao", &serde_json::from_value(spec).unwrap()),
            "spec.external: set exactly one of addresses",
        ),
        // A copy that sets what it keeps from the target: the controller
        // names the copy.
        ("OpenBaoCluster", "spec.backup", false) if rule.message == COPY_SETTINGS_MESSAGE => {
            let problems = validate::validate(&serde_json::from_value(spec).unwrap(), &any_image)
                .err()
                .unwrap_or_default();
            let fix = COPY_SETTINGS_MESSAGE.trim_start_matches("spec.backup.copies: ");
            return Some(
                !problems
                    .iter()
                    .any(|p| p.starts_with("spec.backup.copies[") && p.ends_with(fix)),
            );
        }
        ("OpenBaoCluster", "spec.backup.copies.*", false) => {
            let problems = validate::validate(&serde_json::from_value(spec).unwrap(), &any_image)
                .err()
                .unwrap_or_default();
            return Some(!problems.iter().any(|p| {
                p.starts_with("spec.backup.copies[")
                    && p.contains(&format!("]: {}", validate::TARGET_MESSAGE))
            }));
        }
        ("OpenBaoCluster", "spec.backup", false) => (
            validate::validate(&serde_json::from_value(spec).unwrap(), &any_image)
                .err()
                .unwrap_or_default(),
            "spec.backup: set exactly one of jwtAuthRole",
        ),
        ("OpenBaoRestore", "spec", false) => {
            let cluster: OpenBaoCluster =
                serde_json::from_value(example("OpenBaoCluster", "backup-cluster")).unwrap();
            let restore = serde_json::from_value(spec).unwrap();
            (
                validate::restore(&restore, &cluster, &any_image)
                    .err()
                    .unwrap_or_default(),
                "spec: set exactly one of jwtAuthRole",
            )
        }
        ("OpenBaoCluster", "spec.backup.restoreTest", false) => (
            validate::restore_test(&serde_json::from_value(spec).unwrap())
                .and_then(Result::err)
                .unwrap_or_default(),
            "spec.backup.restoreTest: set exactly one of schedule",
        ),
        ("OpenBaoCluster", "spec.backup.restoreTest.canary", false) => (
            validate::restore_test(&serde_json::from_value(spec).unwrap())
                .and_then(Result::err)
                .unwrap_or_default(),
            "spec.backup.restoreTest.canary: set exactly one of jwtAuthRole",
        ),
        ("OpenBaoRestore", "spec", true) => return None,
        // A storage target: the controller names the field first.
        (
            kind @ ("OpenBaoCluster" | "OpenBaoRestore"),
            path @ ("spec.backup.target" | "spec.source"),
            false,
        ) => {
            let problems = if kind == "OpenBaoCluster" {
                validate::validate(&serde_json::from_value(spec).unwrap(), &any_image)
                    .err()
                    .unwrap_or_default()
            } else {
                let cluster: OpenBaoCluster =
                    serde_json::from_value(example("OpenBaoCluster", "backup-cluster")).unwrap();
                validate::restore(&serde_json::from_value(spec).unwrap(), &cluster, &any_image)
                    .err()
                    .unwrap_or_default()
            };
            let expected = format!("{path}: {}", validate::TARGET_MESSAGE);
            return Some(!problems.iter().any(|p| p.starts_with(&expected)));
        }
        // A plugin's source, wherever a plugin is named: the controller
        // says so with the field in front (`spec.backup.transforms[1]: …`).
        (
            "OpenBaoCluster",
            path @ ("spec.backup.transforms.*" | "spec.backup.retentionPlugin"),
            false,
        ) => {
            let problems = validate::validate(&serde_json::from_value(spec).unwrap(), &any_image)
                .err()
                .unwrap_or_default();
            let field = path.trim_end_matches(".*");
            return Some(!problems.iter().any(|p| {
                p.starts_with(field) && p.ends_with(&format!("]: {PLUGIN_SOURCE_MESSAGE}"))
                    || *p == format!("{field}: {PLUGIN_SOURCE_MESSAGE}")
            }));
        }
        ("OpenBaoRestore", "spec.plugins.*", false) => {
            let cluster: OpenBaoCluster =
                serde_json::from_value(example("OpenBaoCluster", "backup-cluster")).unwrap();
            let restore = serde_json::from_value(spec).unwrap();
            let problems = validate::restore(&restore, &cluster, &any_image)
                .err()
                .unwrap_or_default();
            return Some(!problems.iter().any(|p| {
                p.starts_with("spec.plugins[")
                    && p.ends_with(&format!("]: {PLUGIN_SOURCE_MESSAGE}"))
            }));
        }
        _ => panic!(
            "{} `{}`: name the controller's check for it here",
            rule.id(),
            rule.rule
        ),
    };
    Some(!problems.iter().any(|p| p.starts_with(problem)))
}

fn example(kind: &str, name: &str) -> Value {
    documented_examples(kind)
        .into_iter()
        .find(|e| e["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("examples/ has no {kind} {name}"))
}

/// An object, created or updated (`old`), and the rules (by [`Rule::id`])
/// that reject it.
struct Case {
    what: String,
    object: Value,
    old: Option<Value>,
    rejected_by: Vec<&'static str>,
}

fn create(what: &str, object: Value, rejected_by: &[&'static str]) -> Case {
    Case {
        what: what.into(),
        object,
        old: None,
        rejected_by: rejected_by.to_vec(),
    }
}

/// `object` with `change` made to its spec.
fn edit(mut object: Value, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    change(object["spec"].as_object_mut().unwrap());
    object
}

const CLUSTER_RELEASE: &str = "OpenBaoCluster.spec[0]";
const CLUSTER_BACKUP_AUTH: &str = "OpenBaoCluster.spec.backup[0]";
const CLUSTER_EXTERNAL_TARGET: &str = "OpenBaoCluster.spec.external[0]";
const RESTORE_AUTH: &str = "OpenBaoRestore.spec[0]";
const RESTORE_TEST_WHEN: &str = "OpenBaoCluster.spec.backup.restoreTest[0]";
const CANARY_AUTH: &str = "OpenBaoCluster.spec.backup.restoreTest.canary[0]";
const RESTORE_UNCHANGED: &str = "OpenBaoRestore.spec[1]";
const TRANSFORM_SOURCE: &str = "OpenBaoCluster.spec.backup.transforms.*[0]";
const RETENTION_PLUGIN_SOURCE: &str = "OpenBaoCluster.spec.backup.retentionPlugin[0]";
const RESTORE_PLUGIN_SOURCE: &str = "OpenBaoRestore.spec.plugins.*[0]";
/// The last rule of the cluster's spec (after the release and one per
/// workload field).
const HARDENED_WEBHOOKS: &str = "OpenBaoCluster.spec[11]";
const CLUSTER_STORAGE: &str = "OpenBaoCluster.spec.backup.target[0]";
const COPY_SETTINGS: &str = "OpenBaoCluster.spec.backup[1]";
const COPY_STORAGE: &str = "OpenBaoCluster.spec.backup.copies.*[0]";
const RESTORE_STORAGE: &str = "OpenBaoRestore.spec.source[0]";

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for kind in ["OpenBaoCluster", "OpenBaoRestore"] {
        for object in documented_examples(kind) {
            let what = format!("examples' {kind} {}", object["metadata"]["name"]);
            cases.push(Case {
                what: format!("{what}, applied again unchanged"),
                old: Some(object.clone()),
                ..create(&what, object.clone(), &[])
            });
            cases.push(create(&what, object, &[]));
        }
    }

    let cluster = example("OpenBaoCluster", "backup-cluster");
    let image_only = edit(cluster.clone(), |spec| {
        spec.remove("version");
        spec.insert("image".into(), json!("mirror.example/openbao:2.4.4"));
    });
    cases.push(create("a cluster with an image", image_only.clone(), &[]));
    cases.push(create(
        "a cluster with a version and an image",
        edit(image_only.clone(), |spec| {
            spec.insert("version".into(), json!("2.4.4"));
        }),
        &[],
    ));
    cases.push(create(
        "a cluster with neither version nor image",
        edit(image_only, |spec| {
            spec.remove("image");
        }),
        &[CLUSTER_RELEASE],
    ));
    // Webhooks: plain HTTP only under the Development profile.
    let webhooks = |profile: &str, url: &str| {
        edit(cluster.clone(), |spec| {
            spec.insert("profile".into(), json!(profile));
            spec.insert(
                "notifications".into(),
                json!([{"url": "https://hooks.example.com/a"}, {"url": url}]),
            );
        })
    };
    cases.push(create(
        "a Development cluster with a plain HTTP webhook",
        webhooks("Development", "http://receiver.monitoring:8080/hook"),
        &[],
    ));
    cases.push(create(
        "a Hardened cluster with HTTPS webhooks",
        webhooks("Hardened", "https://receiver.monitoring/hook"),
        &[],
    ));
    cases.push(create(
        "a Hardened cluster with a plain HTTP webhook",
        webhooks("Hardened", "http://receiver.monitoring:8080/hook"),
        &[HARDENED_WEBHOOKS],
    ));
    cases.push(create(
        "a cluster without backups",
        edit(cluster.clone(), |spec| {
            spec.remove("backup");
        }),
        &[],
    ));
    // An external OpenBao: by addresses or a Service, and none of the
    // workload's fields.
    let external = example("OpenBaoCluster", "external-cluster");
    cases.push(create(
        "an external cluster by a Service",
        edit(external.clone(), |spec| {
            spec["external"]
                .as_object_mut()
                .unwrap()
                .remove("addresses");
            spec["external"]["service"] = json!({"name": "bao-active", "port": 8200});
        }),
        &[],
    ));
    cases.push(create(
        "an external cluster with addresses and a Service",
        edit(external.clone(), |spec| {
            spec["external"]["service"] = json!({"name": "bao-active"});
        }),
        &[CLUSTER_EXTERNAL_TARGET],
    ));
    cases.push(create(
        "an external cluster with neither addresses nor a Service",
        edit(external.clone(), |spec| {
            spec["external"]
                .as_object_mut()
                .unwrap()
                .remove("addresses");
        }),
        &[CLUSTER_EXTERNAL_TARGET],
    ));
    let workload_values = [
        json!(3),
        json!("2.4.1"),
        json!("openbao/openbao:2.4.1"),
        json!({"size": "1Gi"}),
        json!({"secretName": "bao-tls"}),
        json!({"static": {"secretKeyRef": {"name": "seal", "key": "key"}}}),
        json!({"log_level": "debug"}),
        json!({"preUpgradeSnapshot": false}),
        json!({"enabled": true}),
        json!({"apiClients": [{"podSelector": {}}]}),
    ];
    for (i, (field, value)) in WORKLOAD_FIELDS.iter().zip(workload_values).enumerate() {
        let rule: &'static str = format!("OpenBaoCluster.spec[{}]", i + 1).leak();
        cases.push(create(
            &format!("an external cluster with spec.{field}"),
            edit(external.clone(), |spec| {
                spec.insert(field.to_string(), value);
            }),
            &[rule],
        ));
    }
    let backup_auth = |role: bool, token: bool| {
        edit(cluster.clone(), |spec| {
            let backup = spec["backup"].as_object_mut().unwrap();
            backup.remove("jwtAuthRole");
            if role {
                backup.insert("jwtAuthRole".into(), json!("backup"));
            }
            if token {
                backup.insert("tokenSecretRef".into(), json!({"name": "backup-token"}));
            }
        })
    };
    cases.push(create(
        "backups with a JWT role and a token",
        backup_auth(true, true),
        &[CLUSTER_BACKUP_AUTH],
    ));
    cases.push(create(
        "backups with neither a JWT role nor a token",
        backup_auth(false, false),
        &[CLUSTER_BACKUP_AUTH],
    ));
    cases.push(create(
        "backups with a token",
        backup_auth(false, true),
        &[],
    ));
    // Restore drills: a schedule or a count, and one way to read the canary.
    let drilled = example("OpenBaoCluster", "drilled-cluster");
    let drill = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        edit(drilled.clone(), |spec| {
            change(spec["backup"]["restoreTest"].as_object_mut().unwrap())
        })
    };
    cases.push(create(
        "a drill after every 3 backups",
        drill(&|test| {
            test.remove("schedule");
            test.insert("everyBackups".into(), json!(3));
        }),
        &[],
    ));
    cases.push(create(
        "a drill with a schedule and a count",
        drill(&|test| {
            test.insert("everyBackups".into(), json!(3));
        }),
        &[RESTORE_TEST_WHEN],
    ));
    cases.push(create(
        "a drill with neither a schedule nor a count",
        drill(&|test| {
            test.remove("schedule");
        }),
        &[RESTORE_TEST_WHEN],
    ));
    cases.push(create(
        "a canary read with a JWT role",
        drill(&|test| {
            let canary = test["canary"].as_object_mut().unwrap();
            canary.remove("tokenSecretRef");
            canary.insert("jwtAuthRole".into(), json!("canary"));
        }),
        &[],
    ));
    cases.push(create(
        "a canary read with a JWT role and a token",
        drill(&|test| {
            test["canary"]["jwtAuthRole"] = json!("canary");
        }),
        &[CANARY_AUTH],
    ));
    cases.push(create(
        "a canary read with no credentials",
        drill(&|test| {
            test["canary"]
                .as_object_mut()
                .unwrap()
                .remove("tokenSecretRef");
        }),
        &[CANARY_AUTH],
    ));

    // The manifests tests/operator.rs has the API server refuse for their
    // schema; with no version they break a rule too. Left out: the one
    // without a bucket and the one with maxCount -1, which no controller
    // sees (they are no typed spec).
    for target in [
        "target: {bucket: openbao-backups, partSize: 1048576}",
        "target: {bucket: openbao-backups, concurrency: 0}",
        "target: {bucket: openbao-backups, concurrency: 65}",
        "target: {bucket: openbao-backups}\n    retention: {maxAge: 18446744073709551615s1s}",
        "target: {bucket: openbao-backups}\n    retention: {maxAge: 7d}",
    ] {
        let manifest = format!(
            "apiVersion: openbao.org/v1alpha1\nkind: OpenBaoCluster\nmetadata: {{name: bad, namespace: backups}}\nspec:\n  backup:\n    schedule: \"0 3 * * *\"\n    executorImage: openbao/backup-executor:v0.1.0\n    jwtAuthRole: backup\n    {target}\n"
        );
        let object = serde_yaml::from_str(&manifest).unwrap();
        cases.push(create(
            &format!("tests/operator.rs's bad manifest `{target}`"),
            object,
            &[CLUSTER_RELEASE],
        ));
    }

    // A plugin is a built-in or a ConfigMap's, not both, not neither.
    let config_map = json!({"name": "zstd-plugin", "key": "zstd.wasm"});
    let sources = [
        ("a built-in", json!({"builtin": "zstd"}), true),
        ("a ConfigMap's", json!({"configMapRef": config_map}), true),
        (
            "both a built-in and a ConfigMap's",
            json!({"builtin": "zstd", "configMapRef": config_map}),
            false,
        ),
        ("neither a built-in nor a ConfigMap's", json!({}), false),
    ];
    for (what, plugin, valid) in &sources {
        let retention = json!({"builtin": "keep-last"});
        cases.push(create(
            &format!("a transform that is {what} plugin"),
            edit(cluster.clone(), |spec| {
                spec["backup"]["transforms"] =
                    json!([{"builtin": "age", "config": {"recipients": ["age1x"]}}, plugin]);
                spec["backup"]["retentionPlugin"] = retention;
                spec["backup"].as_object_mut().unwrap().remove("retention");
            }),
            if *valid { &[] } else { &[TRANSFORM_SOURCE] },
        ));
        let mut retention = plugin.clone();
        if retention.get("builtin").is_some() {
            retention["builtin"] = json!("gfs");
        }
        cases.push(create(
            &format!("a retention plugin that is {what} plugin"),
            edit(cluster.clone(), |spec| {
                spec["backup"]["retentionPlugin"] = retention;
                spec["backup"].as_object_mut().unwrap().remove("retention");
            }),
            if *valid {
                &[]
            } else {
                &[RETENTION_PLUGIN_SOURCE]
            },
        ));
    }

    // Exactly one storage: a bucket, a PersistentVolumeClaim or Azure.
    let volume = json!({"persistentVolumeClaim": {"claimName": "backups"}, "subPath": "bao"});
    let azure = json!({"account": "acct", "container": "backups"});
    let target = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        edit(cluster.clone(), |spec| {
            change(spec["backup"]["target"].as_object_mut().unwrap())
        })
    };
    type Change<'a> = &'a dyn Fn(&mut serde_json::Map<String, Value>);
    let storages: [(&str, Change, bool); 5] = [
        (
            "a volume",
            &|t| {
                t.remove("bucket");
                t.insert("volume".into(), volume.clone());
            },
            true,
        ),
        (
            "Azure",
            &|t| {
                t.remove("bucket");
                t.insert("azure".into(), azure.clone());
            },
            true,
        ),
        (
            "a bucket and a volume",
            &|t| {
                t.insert("volume".into(), volume.clone());
            },
            false,
        ),
        (
            "a volume and Azure",
            &|t| {
                t.remove("bucket");
                t.insert("volume".into(), volume.clone());
                t.insert("azure".into(), azure.clone());
            },
            false,
        ),
        (
            "no storage",
            &|t| {
                t.remove("bucket");
            },
            false,
        ),
    ];
    for (what, change, valid) in &storages {
        cases.push(create(
            &format!("a cluster backing up to {what}"),
            target(change),
            if *valid { &[] } else { &[CLUSTER_STORAGE] },
        ));
    }

    // Copies: each exactly one storage, and none of the target's layout.
    for (what, change, valid) in &storages {
        let mut copy = target(change)["spec"]["backup"]["target"].clone();
        for kept in ["pathPrefix", "partSize", "concurrency"] {
            copy.as_object_mut().unwrap().remove(kept);
        }
        cases.push(create(
            &format!("a cluster copying to {what}"),
            edit(cluster.clone(), |spec| {
                spec["backup"]["copies"] = json!([{"bucket": "offsite"}, copy]);
            }),
            if *valid { &[] } else { &[COPY_STORAGE] },
        ));
    }
    for field in ["pathPrefix", "partSize", "concurrency"] {
        let value = if field == "pathPrefix" {
            json!("other")
        } else {
            json!(8)
        };
        cases.push(create(
            &format!("a copy setting its own {field}"),
            edit(cluster.clone(), |spec| {
                spec["backup"]["copies"] = json!([{"bucket": "offsite", field: value}]);
            }),
            &[COPY_SETTINGS],
        ));
    }

    let restore = example("OpenBaoRestore", "restore-latest");
    for (what, change, valid) in &storages {
        let source = target(change)["spec"]["backup"]["target"].clone();
        cases.push(create(
            &format!("a restore reading from {what}"),
            edit(restore.clone(), |spec| {
                spec.insert("source".into(), source);
            }),
            if *valid { &[] } else { &[RESTORE_STORAGE] },
        ));
    }
    for (what, plugin, valid) in &sources {
        cases.push(create(
            &format!("a restore given {what} plugin"),
            edit(restore.clone(), |spec| {
                spec.insert("plugins".into(), json!([plugin]));
            }),
            if *valid {
                &[]
            } else {
                &[RESTORE_PLUGIN_SOURCE]
            },
        ));
    }
    let restore_auth = |role: bool, token: bool| {
        edit(restore.clone(), |spec| {
            spec.remove("jwtAuthRole");
            if role {
                spec.insert("jwtAuthRole".into(), json!("restore"));
            }
            if token {
                spec.insert("tokenSecretRef".into(), json!({"name": "restore-token"}));
            }
        })
    };
    cases.push(create(
        "a restore with a JWT role and a token",
        restore_auth(true, true),
        &[RESTORE_AUTH],
    ));
    cases.push(create(
        "a restore with neither a JWT role nor a token",
        restore_auth(false, false),
        &[RESTORE_AUTH],
    ));
    cases.push(create(
        "a restore with a token",
        restore_auth(false, true),
        &[],
    ));
    for (what, changed) in [
        (
            "a restore given another key",
            edit(restore.clone(), |spec| {
                spec.insert("key".into(), json!("clusters/old.snap"));
            }),
        ),
        (
            "a restore made forced",
            edit(restore.clone(), |spec| {
                spec.insert("force".into(), json!(true));
            }),
        ),
    ] {
        cases.push(Case {
            old: Some(restore.clone()),
            ..create(what, changed, &[RESTORE_UNCHANGED])
        });
    }
    cases
}

#[test]
fn shipped_rules_decide_what_the_controller_decides() {
    let rules = shipped_rules();
    let places: BTreeSet<_> = rules.iter().map(|r| (&r.kind, &r.path)).collect();
    assert_eq!(
        places.len(),
        crd_yaml().matches("x-kubernetes-validations").count(),
        "a rule sits where this test does not look (under items or additionalProperties)"
    );
    // Per rule: whether some case passed it, and some case broke it.
    let mut seen: BTreeMap<String, (bool, bool)> =
        rules.iter().map(|r| (r.id(), (false, false))).collect();
    for case in cases() {
        let mut rejected_by = Vec::new();
        for rule in rules
            .iter()
            .filter(|r| case.object["kind"] == r.kind.as_str())
        {
            let valid = rule.evaluate(&case.object, case.old.as_ref());
            match valid {
                Some(true) => seen.get_mut(&rule.id()).unwrap().0 = true,
                Some(false) => {
                    seen.get_mut(&rule.id()).unwrap().1 = true;
                    rejected_by.push(rule.id());
                }
                None => {}
            }
            if let Some(accepted) = controller_accepts(rule, &case.object) {
                assert_eq!(
                    accepted,
                    valid != Some(false),
                    "{}: `{}` and the controller disagree",
                    case.what,
                    rule.rule
                );
            }
        }
        assert_eq!(rejected_by, case.rejected_by, "{}", case.what);
    }
    for (rule, (passed, broken)) in seen {
        assert!(passed && broken, "{rule}: no case passes and breaks it");
    }
}

#[test]
fn the_restore_rule_names_the_service_account_restores_log_in_as() {
    let rules = shipped_rules();
    let rule = rules.iter().find(|r| r.id() == RESTORE_AUTH).unwrap();
    let account = names::restore_service_account_name("<cluster>");
    assert!(rule.message.contains(&account), "{}", rule.message);
}
