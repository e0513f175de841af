//! ES256 JSON Web Tokens: an issuer for tests (the Kubernetes side) and the
//! signature check the fake OpenBao runs at login.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};

/// Signs tokens like a Kubernetes ServiceAccount issuer would.
pub struct JwtIssuer {
    pkcs8: Vec<u8>,
    key_pair: EcdsaKeyPair,
    rng: SystemRandom,
}

/// A public key OpenBao is configured to trust (`jwt_validation_pubkeys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPublicKey(pub Vec<u8>);

impl JwtIssuer {
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key generation");
        let key_pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("generated key parses");
        Self {
            pkcs8: pkcs8.as_ref().to_vec(),
            key_pair,
            rng,
        }
    }

    /// The private key as PKCS#8 PEM (kube-apiserver's
    /// `--service-account-signing-key-file`).
    pub fn private_key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.pkcs8)
    }

    /// The public key as SubjectPublicKeyInfo PEM (kube-apiserver's
    /// `--service-account-key-file`).
    pub fn public_key_pem(&self) -> String {
        // DER prefix of a P-256 SubjectPublicKeyInfo, then the 65-byte point.
        const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
        let mut der = hex::decode(P256_SPKI_PREFIX).expect("valid hex");
        der.extend_from_slice(self.key_pair.public_key().as_ref());
        pem("PUBLIC KEY", &der)
    }

    pub fn public_key(&self) -> JwtPublicKey {
        JwtPublicKey(self.key_pair.public_key().as_ref().to_vec())
    }

    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = B64.encode(br#"{"alg":"ES256","typ":"JWT","kid":"test"}"#);
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let sig = self
            .key_pair
            .sign(&self.rng, signing_input.as_bytes())
            .expect("signing");
        format!("{signing_input}.{}", B64.encode(sig.as_ref()))
    }

    /// Claims of a projected ServiceAccount token, valid for an hour.
    pub fn service_account_token(&self, namespace: &str, sa: &str, audience: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        self.sign(&serde_json::json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": format!("system:serviceaccount:{namespace}:{sa}"),
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": sa}},
        }))
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Returns the claims when one of `keys` signed the token.
pub fn verify(token: &str, keys: &[JwtPublicKey]) -> Result<serde_json::Value, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("error validating token: malformed JWT".into());
    };
    let header: serde_json::Value = B64
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("error validating token: malformed JWT header")?;
    if header["alg"] != "ES256" {
        return Err(format!(
            "error validating token: unsupported signing algorithm {}",
            header["alg"]
        ));
    }
    let sig = B64
        .decode(sig)
        .map_err(|_| "error validating token: malformed signature")?;
    let signed = format!("{}.{}", header_part(token), payload);
    let valid = keys.iter().any(|key| {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &key.0)
            .verify(signed.as_bytes(), &sig)
            .is_ok()
    });
    if !valid {
        return Err("error validating token: error verifying token signature: no known key successfully validated the token signature".into());
    }
    B64.decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or_else(|| "error validating token: malformed JWT claims".into())
}

fn header_part(token: &str) -> &str {
    token.split('.').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_checked() {
        let issuer = JwtIssuer::generate();
        let other = JwtIssuer::generate();
        let token = issuer.service_account_token("ns", "sa", "openbao-internal");
        let claims = verify(&token, &[other.public_key(), issuer.public_key()]).unwrap();
        assert_eq!(claims["kubernetes.io"]["namespace"], "ns");
        assert!(
            verify(&token, &[other.public_key()])
                .unwrap_err()
                .contains("signature")
        );
        let mut forged = token.clone();
        forged.insert(token.find('.').unwrap() + 3, 'x');
        assert!(verify(&forged, &[issuer.public_key()]).is_err());
    }
}
