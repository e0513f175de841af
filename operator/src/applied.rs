//! Whether a server-side apply would change anything, so that the operator
//! writes only what differs. Each apply body carries, in the annotation
//! `openbao.org/applied-hash`, a hash of itself; the live object already
//! holds what would be applied when it has every field the body sets, with
//! the same value, that annotation included. So:
//! - a new spec (or a new operator that builds other objects, a field
//!   dropped included) changes the hash: applied;
//! - a field someone else changed or removed fails the comparison: applied,
//!   which repairs it;
//! - fields others added (defaults, another manager's) are theirs, as
//!   server-side apply leaves them too: no apply.
//!
//! Why a hash and not our managedFields entry: managedFields tell which
//! fields the manager owns, not their values, and naming the fields a body
//! sets as the API server does needs each list's merge keys from the
//! schema (`k:{"name":"openbao"}`); a removed field, the one thing the
//! value comparison cannot see, is in the hash. Pure: no I/O.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::names::APPLIED_ANNOTATION;

/// `body` with the hash of itself in `metadata.annotations`.
pub fn stamped(mut body: Value) -> Value {
    let hash = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if !annotations.is_object() {
            *annotations = Value::Object(Default::default());
        }
        annotations[APPLIED_ANNOTATION] = Value::String(hash);
    }
    body
}

/// Whether `live` holds everything `desired` sets: each field of an object
/// present with a value that holds; lists of the same length, item by
/// item; other values equal. A `null` the body sends (`creationTimestamp:
/// null`) holds when the field is absent or null.
pub fn holds(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => {
            desired.iter().all(|(key, value)| match live.get(key) {
                Some(live) => holds(live, value),
                None => value.is_null(),
            })
        }
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| holds(l, d))
        }
        (live, desired) => live == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "bao-config", "namespace": "prod", "labels": {"app": "bao"},
                         "ownerReferences": [{"uid": "u", "name": "bao", "controller": true}]},
            "data": {"config.hcl": "ui = false"},
            "spec": {"template": {"metadata": {"creationTimestamp": null},
                     "containers": [{"name": "openbao", "ports": [{"containerPort": 8200}]}]}},
        })
    }

    /// What the API server keeps after applying `body`: the body plus its
    /// own fields and defaults.
    fn kept(body: &Value) -> Value {
        let mut live = body.clone();
        live["metadata"]["uid"] = json!("x");
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["managedFields"] = json!([{"manager": "openbao-backup-operator"}]);
        live["metadata"]["annotations"]["someone-else"] = json!("theirs");
        live["spec"]["template"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        live["spec"]["template"]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("creationTimestamp");
        live
    }

    #[test]
    fn what_the_server_kept_of_the_same_body_holds_it() {
        let body = stamped(body());
        assert!(holds(&kept(&body), &body));
        assert_eq!(stamped(self::body()), body, "the hash is stable");
    }

    #[test]
    fn a_new_body_or_a_field_someone_changed_or_removed_does_not_hold() {
        let applied = stamped(body());
        let live = kept(&applied);

        // A spec change: a new value, or a field no longer set, which only
        // the hash tells.
        let mut changed = body();
        changed["data"]["config.hcl"] = json!("ui = true");
        assert!(!holds(&live, &stamped(changed)));
        let mut dropped = body();
        dropped["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        assert!(!holds(&live, &stamped(dropped)));

        // Drift: someone else changed, removed or added to what we set.
        let mut edited = live.clone();
        edited["data"]["config.hcl"] = json!("ui = true");
        assert!(!holds(&edited, &applied));
        let mut removed = live.clone();
        removed["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        assert!(!holds(&removed, &applied));
        let mut more = live.clone();
        more["spec"]["template"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar"}));
        assert!(!holds(&more, &applied));
        let mut unstamped = live.clone();
        unstamped["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(APPLIED_ANNOTATION);
        assert!(!holds(&unstamped, &applied), "applied by an older operator");
        let mut null = live;
        null["spec"]["template"]["metadata"]["creationTimestamp"] = json!("2026-11-24T03:00:00Z");
        assert!(!holds(&null, &applied));
    }

    #[test]
    fn a_body_without_annotations_gets_them() {
        let body = stamped(json!({"metadata": {"name": "a", "annotations": null}}));
        assert_eq!(
            body["metadata"]["annotations"][APPLIED_ANNOTATION]
                .as_str()
                .unwrap()
                .len(),
            64
        );
    }
}
