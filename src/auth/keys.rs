//! The server's signing keys. Each generation is a pair: an EC P-256 key signing access tokens
//! (ES256: fast to sign and verify) and an RSA-2048 key signing OpenID Connect id_tokens (RS256,
//! which SMART's `sso-openid-connect` requires). Keys live in the database so that every node
//! signs and verifies alike; retired keys stay published until the tokens they signed expire.
//! Signing uses aws-lc-rs (constant-time RSA); verification goes through `jsonwebtoken`.

use std::collections::HashMap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};

use crate::storage::oauth::KeyRow;

/// A signing algorithm Hearth signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// ECDSA P-256 SHA-256: access tokens.
    Es256,
    /// RSASSA-PKCS1-v1_5 SHA-256: id_tokens.
    Rs256,
}

impl SigningAlg {
    fn name(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Rs256 => "RS256",
        }
    }
}

enum Private {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A key that signs.
pub struct Signer {
    kid: String,
    alg: SigningAlg,
    key: Private,
}

impl Signer {
    /// Signs `claims` as a compact JWS (a JWT).
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"alg": self.alg.name(), "typ": "JWT", "kid": self.kid});
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default()));
        let rng = SystemRandom::new();
        let signature = match &self.key {
            Private::Ec(key) => key
                .sign(&rng, token.as_bytes())
                .map_err(|_| "ES256 signing failed".to_owned())?
                .as_ref()
                .to_vec(),
            Private::Rsa(key) => {
                let mut out = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, token.as_bytes(), &mut out)
                    .map_err(|_| "RS256 signing failed".to_owned())?;
                out
            }
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }
}

/// A key that verifies, parsed once.
pub struct Verifier {
    /// The algorithm it verifies.
    pub alg: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

/// The keys as loaded from the database.
pub struct KeySet {
    access: Signer,
    id_token: Signer,
    verifiers: HashMap<String, Verifier>,
    jwks: Value,
}

impl KeySet {
    /// Builds the set from stored rows (newest first). The newest active key of each algorithm
    /// signs; every stored key verifies and is published.
    pub fn load(rows: &[KeyRow]) -> Result<KeySet, String> {
        let mut access = None;
        let mut id_token = None;
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for row in rows {
            let jwk: Value = serde_json::from_str(&row.public_jwk)
                .map_err(|e| format!("key {}: public JWK unreadable: {e}", row.kid))?;
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())
                .map_err(|e| format!("key {}: public JWK unreadable: {e}", row.kid))?;
            let key = DecodingKey::from_jwk(&parsed)
                .map_err(|e| format!("key {}: public JWK unusable: {e}", row.kid))?;
            let (alg, slot) = match row.alg.as_str() {
                "ES256" => (Algorithm::ES256, &mut access),
                "RS256" => (Algorithm::RS256, &mut id_token),
                other => return Err(format!("key {}: unknown algorithm {other}", row.kid)),
            };
            verifiers.insert(row.kid.clone(), Verifier { alg, key });
            published.push(jwk);
            if row.retired_ms.is_none() && slot.is_none() {
                let der = STANDARD
                    .decode(&row.private_der)
                    .map_err(|e| format!("key {}: private key unreadable: {e}", row.kid))?;
                let key = match alg {
                    Algorithm::ES256 => Private::Ec(
                        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                            .map_err(|e| format!("key {}: {e}", row.kid))?,
                    ),
                    _ => Private::Rsa(
                        RsaKeyPair::from_pkcs8(&der)
                            .map_err(|e| format!("key {}: {e}", row.kid))?,
                    ),
                };
                *slot = Some(Signer {
                    kid: row.kid.clone(),
                    alg: if alg == Algorithm::ES256 {
                        SigningAlg::Es256
                    } else {
                        SigningAlg::Rs256
                    },
                    key,
                });
            }
        }
        Ok(KeySet {
            access: access.ok_or("no active ES256 signing key")?,
            id_token: id_token.ok_or("no active RS256 signing key")?,
            verifiers,
            jwks: json!({ "keys": published }),
        })
    }

    /// The key that signs access tokens.
    pub fn access_signer(&self) -> &Signer {
        &self.access
    }

    /// The key that signs id_tokens.
    pub fn id_token_signer(&self) -> &Signer {
        &self.id_token
    }

    /// The verifier of a `kid`.
    pub fn verifier(&self, kid: &str) -> Option<&Verifier> {
        self.verifiers.get(kid)
    }

    /// The public JWK Set.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}

/// Generates a new pair of signing keys (not yet stored).
pub fn generate(now_ms: i64) -> Result<Vec<KeyRow>, String> {
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| "cannot generate an EC key")?;
    let ec_der = ec.to_pkcs8v1().map_err(|_| "cannot encode the EC key")?;
    let point = ec.public_key().as_ref();
    let (x, y) = point[1..].split_at(32);
    let ec_kid = uuid::Uuid::now_v7().to_string();
    let ec_jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": ec_kid,
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    });
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| "cannot generate an RSA key")?;
    let rsa_der = rsa.as_der().map_err(|_| "cannot encode the RSA key")?;
    let public = rsa.public_key();
    let rsa_kid = uuid::Uuid::now_v7().to_string();
    let rsa_jwk = json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": rsa_kid,
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    });
    let row = |kid: String, alg: &str, der: &[u8], jwk: Value| KeyRow {
        kid,
        alg: alg.to_owned(),
        private_der: STANDARD.encode(der),
        public_jwk: jwk.to_string(),
        created_ms: now_ms,
        retired_ms: None,
    };
    Ok(vec![
        row(ec_kid, "ES256", ec_der.as_ref(), ec_jwk),
        row(rsa_kid, "RS256", rsa_der.as_ref(), rsa_jwk),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_what_their_public_keys_verify() {
        let rows = generate(1).unwrap();
        let keys = KeySet::load(&rows).unwrap();
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 2);
        for signer in [keys.access_signer(), keys.id_token_signer()] {
            let token = signer
                .sign(&json!({"sub": "x", "exp": 4_000_000_000u64}))
                .unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            let verifier = keys.verifier(header.kid.as_deref().unwrap()).unwrap();
            let mut validation = jsonwebtoken::Validation::new(verifier.alg);
            validation.validate_aud = false;
            let data = jsonwebtoken::decode::<Value>(&token, &verifier.key, &validation).unwrap();
            assert_eq!(data.claims["sub"], "x");
            let tampered = format!("{}x", &token[..token.len() - 1]);
            assert!(jsonwebtoken::decode::<Value>(&tampered, &verifier.key, &validation).is_err());
        }
    }

    #[test]
    fn the_newest_active_key_signs_and_retired_keys_still_verify() {
        let mut old = generate(1).unwrap();
        for row in &mut old {
            row.retired_ms = Some(2);
        }
        let mut rows = generate(3).unwrap();
        rows.extend(old.clone());
        let keys = KeySet::load(&rows).unwrap();
        assert_eq!(keys.access_signer().kid, rows[0].kid);
        assert!(keys.verifier(&old[0].kid).is_some());
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 4);
    }
}
