//! Passwords: the site's policy, and argon2id hashing on a few blocking threads so that logins
//! never stall the async executor nor take every core from FHIR traffic.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// What a password must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters.
    pub min_length: usize,
    /// Whether an upper-case letter, a lower-case letter, a digit and a symbol are all needed.
    pub require_classes: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            require_classes: true,
        }
    }
}

/// Longest password accepted (argon2 hashes anything, but a megabyte is not a password).
const MAX_LENGTH: usize = 256;

impl PasswordPolicy {
    /// The rule in words, for forms.
    pub fn describe(&self) -> String {
        if self.require_classes {
            format!(
                "At least {} characters, with an upper-case letter, a lower-case letter, a digit and a symbol.",
                self.min_length
            )
        } else {
            format!("At least {} characters.", self.min_length)
        }
    }

    /// Why `password` does not meet the policy, if it does not.
    pub fn check(&self, password: &str) -> Result<(), String> {
        let length = password.chars().count();
        if length < self.min_length {
            return Err(format!(
                "The password is too short: {}",
                self.describe().to_lowercase()
            ));
        }
        if length > MAX_LENGTH {
            return Err(format!(
                "The password is too long (at most {MAX_LENGTH} characters)."
            ));
        }
        if self.require_classes {
            let mut missing = Vec::new();
            if !password.chars().any(char::is_uppercase) {
                missing.push("an upper-case letter");
            }
            if !password.chars().any(char::is_lowercase) {
                missing.push("a lower-case letter");
            }
            if !password.chars().any(|c| c.is_ascii_digit()) {
                missing.push("a digit");
            }
            if !password
                .chars()
                .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
            {
                missing.push("a symbol");
            }
            if !missing.is_empty() {
                return Err(format!("The password needs {}.", missing.join(", ")));
            }
        }
        Ok(())
    }
}

/// argon2id cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
}

impl Default for HashCost {
    /// About 60–80 ms per hash on the 2-core reference machine (benches/README.md).
    fn default() -> Self {
        HashCost {
            memory_kib: 19_456,
            iterations: 3,
        }
    }
}

/// Hashes and verifies passwords on blocking threads, at most `parallel` at a time.
#[derive(Clone)]
pub struct Hasher {
    argon: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// A hash of nothing, verified against when the account does not exist, so that a
    /// wrong email costs as much time as a wrong password.
    decoy: Arc<String>,
}

impl Hasher {
    /// A hasher with this cost.
    pub fn new(cost: HashCost, parallel: usize) -> Result<Hasher, String> {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| format!("argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy = hash_with(&argon, "decoy password that nobody has")?;
        Ok(Hasher {
            argon: Arc::new(argon),
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            decoy: Arc::new(decoy),
        })
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: &str) -> Result<String, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let (argon, password) = (self.argon.clone(), password.to_owned());
        tokio::task::spawn_blocking(move || hash_with(&argon, &password))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Whether `password` matches `hash`; with no hash, spends the same time and says no.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let (argon, password) = (self.argon.clone(), password.to_owned());
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.decoy.as_str().to_owned(), false),
        };
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            argon.verify_password(password.as_bytes(), &parsed).is_ok() && real
        })
        .await
        .unwrap_or(false)
    }
}

fn hash_with(argon: &Argon2<'_>, password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&super::tokens::random_bytes::<16>())
        .map_err(|e| format!("salt: {e}"))?;
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_names_what_is_missing() {
        let policy = PasswordPolicy::default();
        assert!(policy.check("Abcdef1!").is_ok());
        assert!(policy.check("Ab1!").unwrap_err().contains("too short"));
        let message = policy.check("abcdefgh").unwrap_err();
        assert!(message.contains("upper-case") && message.contains("digit"));
        assert!(message.contains("symbol") && !message.contains("lower-case"));
        let relaxed = PasswordPolicy {
            min_length: 12,
            require_classes: false,
        };
        assert!(relaxed.check("correct horse battery").is_ok());
        assert!(relaxed.check("short").is_err());
        assert!(policy.check(&"Aa1!".repeat(100)).is_err());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verified() {
        let hasher = Hasher::new(
            HashCost {
                memory_kib: 1024,
                iterations: 1,
            },
            1,
        )
        .unwrap();
        let a = hasher.hash("Secret1!").await.unwrap();
        let b = hasher.hash("Secret1!").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(hasher.verify("Secret1!", Some(&a)).await);
        assert!(!hasher.verify("secret1!", Some(&a)).await);
        assert!(!hasher.verify("Secret1!", None).await);
        assert!(!hasher.verify("Secret1!", Some("not a hash")).await);
    }
}
