//! Load on the token endpoint: backend services asking for tokens with `client_credentials`,
//! each request with a fresh ES384 client assertion (a new `jti`), as the spec requires.
//!
//!     token_load keygen DIR          writes DIR/key.p8 (PKCS#8) and DIR/jwks.json
//!     token_load run TOKEN_URL CLIENT_ID DIR CONNECTIONS SECONDS
//!
//! `run` prints: grants, grants/s, median and p99 latency in ms, and failures. See
//! `benches/token_load.sh`.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("keygen") => keygen(&args[2]),
        Some("run") => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(run(
                args[2].clone(),
                args[3].clone(),
                &args[4],
                args[5].parse().expect("connections"),
                args[6].parse().expect("seconds"),
            ));
        }
        _ => {
            eprintln!(
                "usage: token_load keygen DIR | run TOKEN_URL CLIENT_ID DIR CONNECTIONS SECONDS"
            );
            std::process::exit(2);
        }
    }
}

fn keygen(dir: &str) {
    let key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).expect("key");
    let der = key.to_pkcs8v1().expect("pkcs8");
    std::fs::write(format!("{dir}/key.p8"), der.as_ref()).expect("write key");
    let point = key.public_key().as_ref();
    let (x, y) = point[1..].split_at(48);
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-384", "alg": "ES384", "kid": "bench", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}]});
    std::fs::write(format!("{dir}/jwks.json"), jwks.to_string()).expect("write jwks");
}

fn assertion(key: &EcdsaKeyPair, client_id: &str, aud: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"alg": "ES384", "typ": "JWT", "kid": "bench"});
    let claims = json!({"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 240,
        "jti": uuid::Uuid::new_v4().to_string()});
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key
        .sign(&SystemRandom::new(), token.as_bytes())
        .expect("sign");
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
    token
}

async fn run(token_url: String, client_id: String, dir: &str, connections: usize, seconds: u64) {
    let der = std::fs::read(format!("{dir}/key.p8")).expect("key");
    let key = std::sync::Arc::new(
        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &der).expect("key"),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("client");
    let end = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, key, token_url, client_id) = (
                client.clone(),
                key.clone(),
                token_url.clone(),
                client_id.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                while Instant::now() < end {
                    let signed = assertion(&key, &client_id, &token_url);
                    let started = Instant::now();
                    let response = client
                        .post(&token_url)
                        .form(&[
                            ("grant_type", "client_credentials"),
                            ("scope", "system/Patient.rs"),
                            (
                                "client_assertion_type",
                                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                            ),
                            ("client_assertion", signed.as_str()),
                        ])
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(started.elapsed());
                        }
                        Ok(r) => {
                            failures += 1;
                            if failures == 1 {
                                eprintln!(
                                    "token request failed: {} {}",
                                    r.status(),
                                    r.text().await.unwrap_or_default()
                                );
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            if failures == 1 {
                                eprintln!("token request failed: {e}");
                            }
                        }
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (l, f) = task.await.expect("task");
        latencies.extend(l);
        failures += f;
    }
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{} {:.1} {:.2} {:.2} {}",
        latencies.len(),
        latencies.len() as f64 / seconds as f64,
        pick(0.5),
        pick(0.99),
        failures
    );
}
