//! The chart's monitoring: its alerts pass `promtool check rules` and the
//! cases of `promtool test rules` (Debian's `prometheus` package, installed
//! by scripts/setup), and the chart renders the metrics Service, and the
//! ServiceMonitor, PrometheusRule and dashboard ConfigMap only when asked,
//! from the same files promtool and Grafana read. That the series and
//! queries name what a real operator serves is checked against its
//! `/metrics` in operator.rs.

mod helm;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
const RULES: &str = "helm/openbao-backup-operator/files/monitoring/rules.yaml";
const DASHBOARD: &str = "helm/openbao-backup-operator/files/monitoring/dashboard.json";

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(DEPLOY)
        .output()
        .unwrap_or_else(|e| panic!("promtool: {e} (scripts/setup installs Debian's prometheus)"));
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alerts_pass_promtool() {
    let checked = promtool(&["check", "rules", RULES]);
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "monitoring/rules-test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_dashboard_panel_queries_something() {
    let text = std::fs::read_to_string(Path::new(DEPLOY).join(DASHBOARD)).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    for panel in panels {
        let targets = panel["targets"].as_array().unwrap();
        assert!(
            !targets.is_empty()
                && targets.iter().all(|t| t["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("openbao_backup_"))),
            "{panel}"
        );
    }
}

/// The chart's manifests, rendered by Helm for release `obo`.
fn render(values: Value) -> Vec<Value> {
    helm::render("obo", "openbao-backup", values)
        .unwrap_or_else(|e| panic!("helm render: {e}"))
        .objects
}

fn kinds(docs: &[Value]) -> Vec<&str> {
    docs.iter().map(|d| d["kind"].as_str().unwrap()).collect()
}

#[test]
fn the_chart_ships_monitoring_when_asked() {
    let defaults = render(json!({}));
    let service = defaults
        .iter()
        .find(|d| d["metadata"]["name"] == "obo-metrics")
        .expect("a metrics Service by default");
    assert_eq!(service["kind"], "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        assert!(
            !kinds(&defaults).contains(&kind),
            "{kind} only when enabled"
        );
    }
    assert!(
        !defaults
            .iter()
            .any(|d| d["metadata"]["name"] == "obo-dashboard"),
        "the dashboard only when enabled"
    );

    let docs = render(json!({"metrics": {
        "serviceMonitor": {"enabled": true, "labels": {"release": "kps"}},
        "prometheusRule": {"enabled": true},
        "dashboard": {"enabled": true, "label": "grafana_dashboard", "labelValue": "yes", "namespace": "grafana"},
    }}));
    let find = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap();
    let monitor = find("ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "kps");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        service["metadata"]["labels"]["app.kubernetes.io/component"]
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["relabelings"][0]["replacement"], "openbao-backup-operator",
        "the job OpenBaoBackupOperatorDown looks for"
    );
    // The rules promtool tested, as they are.
    let rules = find("PrometheusRule");
    let parsed: Value =
        serde_yaml::from_str(&std::fs::read_to_string(Path::new(DEPLOY).join(RULES)).unwrap())
            .unwrap();
    assert_eq!(rules["spec"], parsed);
    let dashboard = docs
        .iter()
        .find(|d| d["metadata"]["name"] == "obo-dashboard")
        .unwrap();
    assert_eq!(dashboard["metadata"]["namespace"], "grafana");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "yes");
    let shipped: Value =
        serde_json::from_str(dashboard["data"]["openbao-backup.json"].as_str().unwrap()).unwrap();
    let file = std::fs::read_to_string(Path::new(DEPLOY).join(DASHBOARD)).unwrap();
    assert_eq!(shipped, serde_json::from_str::<Value>(&file).unwrap());
}
