//! Signed manifests: an HMAC-SHA256 over the manifest, keyed from a secret
//! only the backups' writer and reader hold. Without it the manifest is
//! trusted because it is in the bucket, and anyone who may write there can
//! plant an older genuine snapshot under a newer key.
//!
//! The MAC covers the manifest's canonical form: its JSON without the
//! `signature` member, serialized compactly with keys sorted (serde_json's
//! map is a sorted `BTreeMap` without the `preserve_order` feature; a unit
//! test holds that). The manifest records its own object key, so a copy
//! beside another key no longer verifies either.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "HMAC-SHA256";
/// A shorter key would be weaker than the hash it keys.
pub const MIN_KEY_BYTES: usize = 32;
/// The flag (and its variable) that gives the key, for error messages.
pub const KEY_FLAG: &str = "--manifest-key-file (MANIFEST_KEY_FILE)";

/// The `signature` member of a signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    pub alg: String,
    /// Which key signed: the first 16 hex digits of its SHA-256.
    pub key_id: String,
    /// The MAC, hex.
    pub value: String,
}

/// The secret key manifests are signed with. `Debug` never shows it.
#[derive(Clone)]
pub struct ManifestKey {
    bytes: Vec<u8>,
    id: String,
}

impl fmt::Debug for ManifestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestKey(id {}, <redacted>)", self.id)
    }
}

impl ManifestKey {
    /// The key is the bytes as they are, a trailing newline included: a
    /// key of random bytes (`head -c 32 /dev/urandom`) may end in one.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "{KEY_FLAG} holds {} bytes; a manifest key needs at least {MIN_KEY_BYTES} (e.g. `head -c 32 /dev/urandom > manifest.key`)",
                bytes.len()
            ));
        }
        let id = hex::encode(Sha256::digest(&bytes))[..16].to_string();
        Ok(Self { bytes, id })
    }

    /// Reads the key file (a mounted Secret).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read {KEY_FLAG} {}: {e}", path.display()))?;
        Self::new(bytes)
    }

    /// Which key this is, safe to show.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signature of `manifest` (its `signature` member, if any, left out).
    pub fn sign(&self, manifest: &Value) -> Signature {
        let mut mac = self.mac();
        mac.update(&canonical(manifest));
        Signature {
            alg: ALGORITHM.into(),
            key_id: self.id.clone(),
            value: hex::encode(mac.finalize().into_bytes()),
        }
    }

    /// Checks the `signature` member of `manifest` (the JSON as read), in
    /// constant time. The error completes "the manifest ...".
    pub fn verify(&self, manifest: &Value) -> Result<(), String> {
        let id = &self.id;
        let signature = match manifest.get("signature") {
            None | Some(Value::Null) => {
                return Err(format!(
                    "has no signature, but {KEY_FLAG} (key id {id}) requires one: it was not written with that key, or its signature was removed"
                ));
            }
            Some(signature) => Signature::deserialize(signature)
                .map_err(|e| format!("has an unreadable signature ({e})"))?,
        };
        if signature.alg != ALGORITHM {
            return Err(format!("is signed with {}, not {ALGORITHM}", signature.alg));
        }
        if signature.key_id != *id {
            return Err(format!(
                "is signed with key id {}, not with the key of {KEY_FLAG} (key id {id})",
                signature.key_id
            ));
        }
        let value = hex::decode(&signature.value).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&canonical(manifest));
        mac.verify_slice(&value).map_err(|_| {
            format!(
                "does not match its signature (key id {id}): it was altered, or copied beside another backup"
            )
        })
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::new_from_slice(&self.bytes).expect("HMAC takes keys of any length")
    }
}

/// What the MAC covers: the manifest without `signature`, keys sorted.
fn canonical(manifest: &Value) -> Vec<u8> {
    let mut unsigned = manifest.clone();
    if let Some(members) = unsigned.as_object_mut() {
        members.remove("signature");
    }
    serde_json::to_vec(&unsigned).expect("a JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(byte: u8) -> ManifestKey {
        ManifestKey::new(vec![byte; 32]).unwrap()
    }

    fn signed(key: &ManifestKey, manifest: Value) -> Value {
        let mut manifest = manifest;
        manifest["signature"] = serde_json::to_value(key.sign(&manifest)).unwrap();
        manifest
    }

    #[test]
    fn short_keys_are_refused_naming_the_flag() {
        let err = ManifestKey::new(vec![1; 31]).unwrap_err();
        assert!(
            err.contains("--manifest-key-file (MANIFEST_KEY_FILE) holds 31 bytes")
                && err.contains("at least 32"),
            "{err}"
        );
        let key = key(7);
        assert_eq!(key.id().len(), 16);
        assert!(!format!("{key:?}").contains("7, 7"), "{key:?}");
    }

    #[test]
    fn a_signed_manifest_verifies_whatever_the_order_of_its_members() {
        let key = key(1);
        let manifest = signed(
            &key,
            json!({"key": "a.snap", "raft": {"index": 4, "term": 2}}),
        );
        assert_eq!(manifest["signature"]["alg"], "HMAC-SHA256");
        assert_eq!(manifest["signature"]["keyId"], key.id());
        assert!(key.verify(&manifest).is_ok());
        // The same members written in another order, as another writer might.
        let reordered: Value = serde_json::from_str(&format!(
            r#"{{"signature": {}, "raft": {{"term": 2, "index": 4}}, "key": "a.snap"}}"#,
            manifest["signature"]
        ))
        .unwrap();
        assert_eq!(canonical(&reordered), canonical(&manifest));
        assert!(key.verify(&reordered).is_ok());
    }

    #[test]
    fn altered_unsigned_or_foreign_manifests_are_refused() {
        let key = key(1);
        let manifest = signed(&key, json!({"key": "new.snap", "raft": {"index": 4}}));
        let mut altered = manifest.clone();
        altered["raft"]["index"] = json!(3);
        let err = key.verify(&altered).unwrap_err();
        assert!(err.contains("does not match its signature"), "{err}");
        let mut moved = manifest.clone();
        moved["key"] = json!("newer.snap");
        assert!(key.verify(&moved).is_err());

        let mut unsigned = manifest.clone();
        unsigned.as_object_mut().unwrap().remove("signature");
        let err = key.verify(&unsigned).unwrap_err();
        assert!(err.contains("has no signature"), "{err}");

        let other = ManifestKey::new(vec![2; 40]).unwrap();
        let err = other.verify(&manifest).unwrap_err();
        assert!(
            err.contains(&format!("signed with key id {}", key.id())) && err.contains(other.id()),
            "{err}"
        );

        let mut garbled = manifest.clone();
        garbled["signature"]["value"] = json!("not hex");
        assert!(key.verify(&garbled).is_err());
        let mut other_alg = manifest;
        other_alg["signature"]["alg"] = json!("none");
        let err = key.verify(&other_alg).unwrap_err();
        assert!(err.contains("signed with none"), "{err}");
    }
}
