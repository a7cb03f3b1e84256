//! SMART on FHIR end to end, with the `oauth2` crate as the client against the real server over
//! HTTP: discovery, standalone and EHR launch (login and consent pages driven with a cookie
//! jar), PKCE, refresh, backend services with RS384 and ES384 assertions, introspection,
//! revocation, and the scope and compartment checks of the FHIR API. Both backends.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA384, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hearth::accounts::{Actor, NewAccount, Role};
use hearth::auth::clients::{Credentials, NewClient, Registered};
use hearth::auth::grants::LaunchContext;
use hearth::config::Overrides;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::support::{TestDatabase, TestServer, json_with_status, outcome};

const PASSWORD: &str = "Sonogram#42";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// SMART's token response fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Smart {
    patient: Option<String>,
    encounter: Option<String>,
    need_patient_banner: Option<bool>,
    smart_style_url: Option<String>,
    id_token: Option<String>,
}

impl ExtraTokenFields for Smart {}

type SmartResponse = StandardTokenResponse<Smart, BasicTokenType>;

type SmartClient = oauth2::Client<
    BasicErrorResponse,
    SmartResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn oauth_client(server: &TestServer, id: &str, secret: Option<&str>) -> SmartClient {
    let root = server.root();
    let mut client = oauth2::Client::new(ClientId::new(id.to_owned()))
        .set_auth_uri(AuthUrl::new(format!("{root}/auth/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(format!("{root}/auth/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
    match secret {
        Some(secret) => client = client.set_client_secret(ClientSecret::new(secret.to_owned())),
        None => client = client.set_auth_type(AuthType::RequestBody),
    }
    client
}

/// Runs each scenario on SQLite and PostgreSQL, with cheap password hashing and an admin.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let server = super::start($crate::support::TestDatabase::sqlite()).await;
                super::$name(&server).await;
                server.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(database) = $crate::support::TestDatabase::postgres() else { return };
                let server = super::start(database).await;
                super::$name(&server).await;
                server.finish().await;
            }
        }
    )*};
}

on_both!(
    discovery_is_open_and_complete,
    requests_need_a_valid_token,
    backend_services_sign_in_with_keys,
    standalone_launch_with_pkce_and_refresh,
    authorization_errors_go_where_the_spec_says,
    ehr_launch_and_granular_scopes,
    introspection_and_revocation,
    patient_scopes_confine_writes_and_bundles,
    patient_data_is_audited,
);

async fn start(database: TestDatabase) -> TestServer {
    TestServer::start(
        database,
        Overrides {
            argon2_memory_kib: Some(1024),
            argon2_iterations: Some(1),
            ..Overrides::default()
        },
    )
    .await
}

async fn user(server: &TestServer, email: &str, role: Role) -> hearth::accounts::User {
    server
        .accounts()
        .create(
            NewAccount {
                email: email.into(),
                display_name: format!("User {email}"),
                role,
                password: Some(PASSWORD.into()),
                specialty: None,
                verified: true,
            },
            &Actor::default(),
        )
        .await
        .expect("account")
}

async fn app(server: &TestServer, credentials: Credentials, scope: Option<&str>) -> Registered {
    server
        .auth()
        .add_client(NewClient {
            name: "Test App".into(),
            redirect_uris: vec![REDIRECT.into()],
            scope: scope.map(str::to_owned),
            credentials,
            launch_url: None,
        })
        .await
        .expect("client")
}

async fn patient(server: &TestServer, family: &str) -> String {
    let p = server
        .create(
            &json!({"resourceType": "Patient", "name": [{"family": family, "given": ["Test"]}]}),
        )
        .await;
    p["id"].as_str().unwrap().to_owned()
}

async fn observation(server: &TestServer, patient: &str, category: &str) -> String {
    let o = server
        .create(&json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
            "code": {"text": "test"},
            "subject": {"reference": format!("Patient/{patient}")},
        }))
        .await;
    o["id"].as_str().unwrap().to_owned()
}

/// A GET under the FHIR base with `token`.
async fn get_with(server: &TestServer, token: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}/{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn send_with(
    server: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    let url = if path.is_empty() {
        server.base.clone()
    } else {
        format!("{}/{path}", server.base)
    };
    http()
        .request(method, url)
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn ids(bundle: &Value) -> Vec<String> {
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] != "outcome")
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------

async fn discovery_is_open_and_complete(server: &TestServer) {
    let response = http()
        .get(format!("{}/.well-known/smart-configuration", server.base))
        .header("accept", "application/fhir+xml")
        .header("origin", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let config = json_with_status(response, 200).await;
    let root = server.root();
    assert_eq!(config["issuer"], root);
    assert_eq!(config["token_endpoint"], format!("{root}/auth/token"));
    assert_eq!(
        config["authorization_endpoint"],
        format!("{root}/auth/authorize")
    );
    assert_eq!(config["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        config["grant_types_supported"],
        json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    let capabilities = config["capabilities"].as_array().unwrap();
    for c in [
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "context-standalone-patient",
        "sso-openid-connect",
        "permission-offline",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
        "authorize-post",
    ] {
        assert!(capabilities.contains(&json!(c)), "capability {c}");
    }
    for m in [
        "private_key_jwt",
        "client_secret_basic",
        "client_secret_post",
    ] {
        assert!(
            config["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(m))
        );
    }
    for url in [
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "token_endpoint",
        "authorization_endpoint",
    ] {
        assert!(
            config[url].as_str().unwrap().starts_with("http://"),
            "{url} is absolute"
        );
    }
    let openid = json_with_status(
        http()
            .get(format!("{root}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        openid["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    let jwks = json_with_status(
        http()
            .get(config["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .any(|k| k["alg"] == "RS256" && k["kid"].is_string() && k.get("d").is_none())
    );
    // CORS: the FHIR API and the token endpoint answer registered origins only.
    app(server, Credentials::Public, None).await;
    for path in [
        format!("{}/Patient", server.base),
        format!("{root}/auth/token"),
    ] {
        let preflight = |origin: &'static str| {
            http()
                .request(reqwest::Method::OPTIONS, &path)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                )
                .send()
        };
        let allowed = preflight("http://127.0.0.1:9").await.unwrap();
        assert_eq!(allowed.status(), 204, "{path}");
        assert_eq!(
            allowed.headers()["access-control-allow-origin"],
            "http://127.0.0.1:9"
        );
        assert!(
            allowed.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("Authorization")
        );
        let refused = preflight("https://evil.example").await.unwrap();
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{path}"
        );
    }
    let token = server.auth().operator_token("system/*.rs", 60).unwrap();
    let read = http()
        .get(format!("{}/Patient", server.base))
        .bearer_auth(&token)
        .header("origin", "http://127.0.0.1:9")
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.headers()["access-control-allow-origin"],
        "http://127.0.0.1:9"
    );
    // The CapabilityStatement stays open and declares SMART.
    let metadata = json_with_status(
        http()
            .get(format!("{}/metadata", server.base))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let security = &metadata["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    assert_eq!(
        security["extension"][0]["extension"][1]["valueUri"],
        format!("{root}/auth/token")
    );
}

async fn requests_need_a_valid_token(server: &TestServer) {
    let id = patient(server, "Guarded").await;
    let response = http()
        .get(format!("{}/Patient/{id}", server.base))
        .send()
        .await
        .unwrap();
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    let message = outcome(response, 401, "login").await;
    assert!(message.contains("bearer token"), "{message}");

    let response = get_with(server, "not-a-token", &format!("Patient/{id}")).await;
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    outcome(response, 401, "login").await;

    let now = chrono::Utc::now().timestamp();
    let claims = |aud: &str, exp: i64, scope: &str| json!({"iss": server.root(), "aud": aud, "sub": "t", "client_id": "t", "scope": scope, "iat": now, "exp": exp, "jti": uuid::Uuid::new_v4().to_string()});
    let expired = server
        .auth()
        .sign_access(&claims(&server.base, now - 10, "system/*.rs"))
        .unwrap();
    let message = outcome(
        get_with(server, &expired, &format!("Patient/{id}")).await,
        401,
        "login",
    )
    .await;
    assert!(message.contains("expired"), "{message}");
    let elsewhere = server
        .auth()
        .sign_access(&claims(
            "https://other.example/fhir",
            now + 60,
            "system/*.rs",
        ))
        .unwrap();
    let message = outcome(
        get_with(server, &elsewhere, &format!("Patient/{id}")).await,
        401,
        "login",
    )
    .await;
    assert!(message.contains("another server"), "{message}");
    // An id_token (RS256) is no access token.
    let id_token = server
        .auth()
        .sign_id_token(&claims(&server.base, now + 60, "system/*.rs"))
        .unwrap();
    outcome(
        get_with(server, &id_token, &format!("Patient/{id}")).await,
        401,
        "login",
    )
    .await;

    let observations_only = server
        .auth()
        .operator_token("system/Observation.rs", 60)
        .unwrap();
    let message = outcome(
        get_with(server, &observations_only, &format!("Patient/{id}")).await,
        403,
        "forbidden",
    )
    .await;
    assert!(
        message.contains("do not permit read of Patient"),
        "{message}"
    );
    outcome(
        get_with(server, &observations_only, "Patient?name=Guarded").await,
        403,
        "forbidden",
    )
    .await;
    json_with_status(
        get_with(server, &observations_only, "Observation").await,
        200,
    )
    .await;
    outcome(
        get_with(server, &observations_only, "_history").await,
        403,
        "forbidden",
    )
    .await;
    let create = send_with(
        server,
        &observations_only,
        reqwest::Method::POST,
        "Observation",
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
    )
    .await;
    outcome(create, 403, "forbidden").await;
    // v1 syntax: .read is rs, .write is cud.
    let v1 = server
        .auth()
        .operator_token("system/Patient.read system/Observation.write", 60)
        .unwrap();
    json_with_status(get_with(server, &v1, &format!("Patient/{id}")).await, 200).await;
    outcome(
        send_with(
            server,
            &v1,
            reqwest::Method::PUT,
            &format!("Patient/{id}"),
            &json!({"resourceType": "Patient", "id": id}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
}

/// A client key pair and how it signs.
struct ClientKey {
    kid: String,
    alg: &'static str,
    rsa: Option<RsaKeyPair>,
    ec: Option<EcdsaKeyPair>,
}

impl ClientKey {
    fn rs384() -> ClientKey {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let _ = key.as_der().unwrap();
        ClientKey {
            kid: uuid::Uuid::new_v4().to_string(),
            alg: "RS384",
            rsa: Some(key),
            ec: None,
        }
    }

    fn es384() -> ClientKey {
        let key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        ClientKey {
            kid: uuid::Uuid::new_v4().to_string(),
            alg: "ES384",
            rsa: None,
            ec: Some(key),
        }
    }

    fn jwks(&self) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let key = match (&self.rsa, &self.ec) {
            (Some(rsa), _) => {
                let public = rsa.public_key();
                json!({"kty": "RSA", "alg": "RS384", "kid": self.kid, "use": "sig",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero())})
            }
            (_, Some(ec)) => {
                let point = ec.public_key().as_ref();
                let (x, y) = point[1..].split_at(48);
                json!({"kty": "EC", "crv": "P-384", "alg": "ES384", "kid": self.kid, "use": "sig", "x": b64(x), "y": b64(y)})
            }
            _ => unreachable!(),
        };
        json!({"keys": [key]})
    }

    fn sign(&self, header: Value, claims: Value) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let signature = match (&self.rsa, &self.ec) {
            (Some(rsa), _) => {
                let mut out = vec![0; rsa.public_modulus_len()];
                rsa.sign(&RSA_PKCS1_SHA384, &rng, token.as_bytes(), &mut out)
                    .unwrap();
                out
            }
            (_, Some(ec)) => ec.sign(&rng, token.as_bytes()).unwrap().as_ref().to_vec(),
            _ => unreachable!(),
        };
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        token
    }

    /// A client assertion as Backend Services describes it.
    fn assertion(
        &self,
        client_id: &str,
        aud: &str,
        exp_in: i64,
        jti: &str,
        jku: Option<&str>,
    ) -> String {
        let mut header = json!({"alg": self.alg, "typ": "JWT", "kid": self.kid});
        if let Some(jku) = jku {
            header["jku"] = json!(jku);
        }
        let now = chrono::Utc::now().timestamp();
        self.sign(header, json!({"iss": client_id, "sub": client_id, "aud": aud, "exp": now + exp_in, "jti": jti}))
    }
}

/// Serves a JWK Set on 127.0.0.1 (a client's JWKS URL).
async fn serve_jwks(jwks: Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let jwks = Arc::new(jwks);
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json((*jwks).clone()) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks.json")
}

async fn client_credentials(
    server: &TestServer,
    client_id: &str,
    assertion: &str,
    scope: &str,
) -> Result<SmartResponse, (u16, Value)> {
    let response = oauth_client(server, client_id, None)
        .exchange_client_credentials()
        .add_scope(Scope::new(scope.to_owned()))
        .add_extra_param(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .add_extra_param("client_assertion", assertion.to_owned())
        .request_async(&http())
        .await;
    match response {
        Ok(token) => Ok(token),
        Err(RequestTokenError::ServerResponse(e)) => Err((400, serde_json::to_value(&e).unwrap())),
        Err(RequestTokenError::Parse(_, body)) => {
            Err((0, serde_json::from_slice(&body).unwrap_or(Value::Null)))
        }
        Err(other) => panic!("token request failed: {other:?}"),
    }
}

async fn backend_services_sign_in_with_keys(server: &TestServer) {
    let token_url = format!("{}/auth/token", server.root());
    let id = patient(server, "Backend").await;
    // RS384 with a registered JWK Set.
    let rsa = ClientKey::rs384();
    let registered = server
        .auth()
        .add_client(NewClient {
            name: "Reporter".into(),
            redirect_uris: vec![],
            scope: Some("system/Patient.rs system/Observation.rs".into()),
            credentials: Credentials::Jwks(rsa.jwks()),
            launch_url: None,
        })
        .await
        .unwrap();
    let client_id = registered.client_id.clone();
    assert!(registered.client_secret.is_none());
    // The raw response: headers and fields.
    let raw = http()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs system/Encounter.rs"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (
                "client_assertion",
                &rsa.assertion(&client_id, &token_url, 240, "jti-raw", None),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["cache-control"], "no-store");
    assert_eq!(raw.headers()["pragma"], "no-cache");
    let body = json_with_status(raw, 200).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["scope"], "system/Patient.rs",
        "only what the client is registered for"
    );
    assert!(body["expires_in"].as_u64().unwrap() <= 300);
    assert!(body.get("refresh_token").is_none());

    let token = client_credentials(
        server,
        &client_id,
        &rsa.assertion(&client_id, &token_url, 240, "jti-1", None),
        "system/Patient.rs",
    )
    .await
    .expect("token");
    let access = token.access_token().secret().clone();
    json_with_status(
        get_with(server, &access, &format!("Patient/{id}")).await,
        200,
    )
    .await;
    outcome(
        send_with(
            server,
            &access,
            reqwest::Method::POST,
            "Patient",
            &json!({"resourceType": "Patient"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;

    // Replay, expiry, wrong audience, unknown key, too long a lifetime.
    let replay = client_credentials(
        server,
        &client_id,
        &rsa.assertion(&client_id, &token_url, 240, "jti-1", None),
        "system/Patient.rs",
    )
    .await
    .unwrap_err();
    assert_eq!(replay.1["error"], "invalid_client");
    assert!(
        replay.1["error_description"]
            .as_str()
            .unwrap()
            .contains("replay"),
        "{replay:?}"
    );
    let expired = client_credentials(
        server,
        &client_id,
        &rsa.assertion(&client_id, &token_url, -120, "jti-2", None),
        "system/Patient.rs",
    )
    .await
    .unwrap_err();
    assert!(
        expired.1["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{expired:?}"
    );
    let aud = client_credentials(
        server,
        &client_id,
        &rsa.assertion(&client_id, "https://elsewhere/token", 240, "jti-3", None),
        "system/Patient.rs",
    )
    .await
    .unwrap_err();
    assert!(
        aud.1["error_description"].as_str().unwrap().contains("aud"),
        "{aud:?}"
    );
    let stranger = ClientKey::rs384();
    let unknown = client_credentials(
        server,
        &client_id,
        &stranger.assertion(&client_id, &token_url, 240, "jti-4", None),
        "system/Patient.rs",
    )
    .await
    .unwrap_err();
    assert!(
        unknown.1["error_description"]
            .as_str()
            .unwrap()
            .contains("kid"),
        "{unknown:?}"
    );
    let forged = ClientKey {
        kid: rsa.kid.clone(),
        ..ClientKey::rs384()
    };
    let bad_signature = client_credentials(
        server,
        &client_id,
        &forged.assertion(&client_id, &token_url, 240, "jti-5", None),
        "system/Patient.rs",
    )
    .await
    .unwrap_err();
    assert_eq!(bad_signature.1["error"], "invalid_client");
    let long = client_credentials(
        server,
        &client_id,
        &rsa.assertion(&client_id, &token_url, 3600, "jti-6", None),
        "system/Patient.rs",
    )
    .await
    .unwrap_err();
    assert!(
        long.1["error_description"]
            .as_str()
            .unwrap()
            .contains("five minutes"),
        "{long:?}"
    );
    let scope = client_credentials(
        server,
        &client_id,
        &rsa.assertion(&client_id, &token_url, 240, "jti-7", None),
        "system/Practitioner.rs",
    )
    .await
    .unwrap_err();
    assert_eq!(scope.1["error"], "invalid_scope");
    // A jku that is not the registered JWKS URL is refused.
    let jku = client_credentials(
        server,
        &client_id,
        &rsa.assertion(
            &client_id,
            &token_url,
            240,
            "jti-8",
            Some("https://attacker.example/jwks"),
        ),
        "system/Patient.rs",
    )
    .await
    .unwrap_err();
    assert!(
        jku.1["error_description"].as_str().unwrap().contains("jku"),
        "{jku:?}"
    );

    // ES384 with a JWK Set URL, named as jku.
    let ec = ClientKey::es384();
    let url = serve_jwks(ec.jwks()).await;
    let by_url = server
        .auth()
        .add_client(NewClient {
            name: "Exporter".into(),
            redirect_uris: vec![],
            scope: None,
            credentials: Credentials::JwksUrl(url.clone()),
            launch_url: None,
        })
        .await
        .unwrap();
    let token = client_credentials(
        server,
        &by_url.client_id,
        &ec.assertion(&by_url.client_id, &token_url, 240, "e-1", Some(&url)),
        "system/*.rs",
    )
    .await
    .expect("ES384 token");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "system/*.rs");
    json_with_status(
        get_with(
            server,
            token.access_token().secret(),
            &format!("Patient/{id}"),
        )
        .await,
        200,
    )
    .await;
    client_credentials(
        server,
        &by_url.client_id,
        &ec.assertion(&by_url.client_id, &token_url, 240, "e-2", None),
        "system/Patient.rs",
    )
    .await
    .expect("without jku, the registered URL");

    // A disabled client gets nothing.
    assert!(
        server
            .auth()
            .set_client_disabled(&by_url.client_id, true)
            .await
            .unwrap()
    );
    let disabled = client_credentials(
        server,
        &by_url.client_id,
        &ec.assertion(&by_url.client_id, &token_url, 240, "e-3", None),
        "system/Patient.rs",
    )
    .await
    .unwrap_err();
    assert_eq!(disabled.1["error"], "invalid_client");

    // A client with a secret may not use client_credentials.
    let symmetric = app(server, Credentials::Secret, None).await;
    let refused = oauth_client(
        server,
        &symmetric.client_id,
        symmetric.client_secret.as_deref(),
    )
    .exchange_client_credentials()
    .add_scope(Scope::new("system/*.rs".into()))
    .request_async(&http())
    .await;
    match refused {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error().as_ref(), "unauthorized_client")
        }
        other => panic!("expected unauthorized_client, got {other:?}"),
    }
}

/// An app signing a user in through the browser, start to finish: the authorization request
/// with PKCE, login and consent, and the code exchanged for tokens.
struct SignIn<'a> {
    server: &'a TestServer,
    client: &'a SmartClient,
    browser: &'a Browser,
    email: &'a str,
}

/// What a sign-in got: the token response, the code it used and the PKCE verifier.
struct Granted {
    token: SmartResponse,
    code: String,
    verifier: String,
}

impl SignIn<'_> {
    async fn grant(
        &self,
        scopes: &[&str],
        extra: &[(&str, &str)],
        patient: Option<&str>,
    ) -> Granted {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(scopes.iter().map(|s| Scope::new((*s).into())))
            .add_extra_param("aud", self.server.base.clone())
            .set_pkce_challenge(challenge);
        for (k, v) in extra {
            request = request.add_extra_param(*k, *v);
        }
        let (url, _) = request.url();
        let back = authorize(
            self.server,
            self.browser,
            url.as_str(),
            self.email,
            scopes,
            patient,
        )
        .await;
        let code = query_value(&back, "code").expect("code");
        let verifier_text = verifier.secret().clone();
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .set_pkce_verifier(verifier)
            .request_async(&http())
            .await
            .expect("token");
        Granted {
            token,
            code,
            verifier: verifier_text,
        }
    }
}

/// Drives the browser through login and consent; returns the redirect to the app.
async fn authorize(
    server: &TestServer,
    browser: &Browser,
    url: &str,
    email: &str,
    grants: &[&str],
    patient: Option<&str>,
) -> String {
    let path = url.trim_start_matches(&server.root()).to_owned();
    let mut page = browser.get(&path).await;
    if page.status == 303
        && page
            .location
            .as_deref()
            .unwrap_or_default()
            .starts_with("/console/login")
    {
        let login_url = page.location.clone().unwrap();
        let next: String = form_urlencoded::parse(login_url.split_once('?').unwrap().1.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let csrf = browser.get(&login_url).await.csrf();
        let signed_in = browser
            .post_raw(
                "/console/login",
                &[
                    ("csrf", &csrf),
                    ("email", email),
                    ("password", PASSWORD),
                    ("next", &next),
                ],
            )
            .await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        assert_eq!(signed_in.location.as_deref(), Some(next.as_str()));
        page = browser.get(&next).await;
    }
    assert_eq!(
        page.status, 200,
        "consent page: {:?} {}",
        page.location, page.body
    );
    assert!(page.body.contains("Test App"), "{}", page.body);
    // The consent form: its hidden fields, the scopes chosen, the patient.
    let mut fields: Vec<(String, String)> = Vec::new();
    let form = &page.body[page.body.find("/auth/authorize/decide").unwrap()..];
    let form = &form[..form.find("</form>").unwrap()];
    for input in form.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| {
            let start = input.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            let end = input[start..].find('"').unwrap();
            html_unescape(&input[start..start + end])
        };
        fields.push((attr("name"), attr("value")));
    }
    for grant in grants {
        assert!(
            form.contains(&format!("value=\"{grant}\""))
                || form.contains(&format!("value=\"{}\"", html_escape(grant))),
            "scope {grant} offered: {form}"
        );
        fields.push(("grant".into(), (*grant).to_owned()));
    }
    if let Some(p) = patient {
        assert!(
            form.contains(&format!("<option value=\"{p}\"")),
            "patient {p} offered: {form}"
        );
        fields.push(("patient".into(), p.to_owned()));
    }
    fields.push(("decision".into(), "allow".into()));
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let decided = browser.post_raw("/auth/authorize/decide", &refs).await;
    assert_eq!(decided.status, 303, "{}", decided.body);
    decided.location.unwrap()
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('/', "&#x2f;")
}

fn query_value(url: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(url.split_once('?')?.1.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn standalone_launch_with_pkce_and_refresh(server: &TestServer) {
    let doctor = user(server, "doctor@hearth.test", Role::Physician).await;
    let mine = patient(server, "Mine").await;
    let other = patient(server, "Other").await;
    let mine_obs = observation(server, &mine, "laboratory").await;
    let other_obs = observation(server, &other, "laboratory").await;
    let registered = app(server, Credentials::Public, None).await;
    let client = oauth_client(server, &registered.client_id, None);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let scopes = "launch/patient openid fhirUser offline_access patient/*.rs";
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.split(' ').map(|s| Scope::new(s.into())))
        .add_extra_param("aud", server.base.clone())
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser::new(&server.root());
    let back = authorize(
        server,
        &browser,
        url.as_str(),
        "doctor@hearth.test",
        &scopes.split(' ').collect::<Vec<_>>(),
        Some(&mine),
    )
    .await;
    assert!(back.starts_with(REDIRECT), "{back}");
    assert_eq!(
        query_value(&back, "state").as_deref(),
        Some(state.secret().as_str())
    );
    let code = query_value(&back, "code").expect("code");

    // A wrong verifier spends the code: the right one then fails too.
    let wrong = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(PkceCodeVerifier::new("x".repeat(50)))
        .request_async(&http())
        .await;
    assert!(
        matches!(wrong, Err(RequestTokenError::ServerResponse(ref e)) if e.error().as_ref() == "invalid_grant"),
        "{wrong:?}"
    );

    // Again, properly.
    let _ = verifier;
    let sign_in = SignIn {
        server,
        client: &client,
        browser: &browser,
        email: "doctor@hearth.test",
    };
    let Granted {
        token,
        code,
        verifier: verifier_text,
    } = sign_in
        .grant(&scopes.split(' ').collect::<Vec<_>>(), &[], Some(&mine))
        .await;
    assert_eq!(token.extra_fields().patient.as_deref(), Some(mine.as_str()));
    assert_eq!(token.extra_fields().need_patient_banner, Some(true));
    let granted: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(granted.join(" "), scopes);
    let refresh = token
        .refresh_token()
        .expect("offline_access gives a refresh token")
        .clone();

    // The id_token: RS256, signed by a published key, fhirUser is the doctor's Practitioner.
    let id_token = token.extra_fields().id_token.clone().expect("id_token");
    let header = jsonwebtoken::decode_header(&id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwks: jsonwebtoken::jwk::JwkSet = http()
        .get(format!("{}/auth/jwks", server.root()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&registered.client_id]);
    validation.set_issuer(&[server.root()]);
    let claims = jsonwebtoken::decode::<Value>(&id_token, &key, &validation)
        .unwrap()
        .claims;
    let fhir_user = claims["fhirUser"].as_str().unwrap();
    assert_eq!(
        fhir_user,
        format!("{}/{}", server.base, doctor.fhir_reference.clone().unwrap())
    );
    assert!(fhir_user.contains("/Practitioner/"));

    // The code is single use.
    let reused = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier_text))
        .request_async(&http())
        .await;
    assert!(
        matches!(reused, Err(RequestTokenError::ServerResponse(ref e)) if e.error().as_ref() == "invalid_grant"),
        "{reused:?}"
    );

    // The token reaches the chosen patient's compartment only.
    let access = token.access_token().secret().clone();
    json_with_status(
        get_with(server, &access, &format!("Patient/{mine}")).await,
        200,
    )
    .await;
    let message = outcome(
        get_with(server, &access, &format!("Patient/{other}")).await,
        403,
        "forbidden",
    )
    .await;
    assert!(message.contains("compartment"), "{message}");
    json_with_status(
        get_with(server, &access, &format!("Observation/{mine_obs}")).await,
        200,
    )
    .await;
    outcome(
        get_with(server, &access, &format!("Observation/{other_obs}")).await,
        403,
        "forbidden",
    )
    .await;
    outcome(
        get_with(
            server,
            &access,
            &format!("Observation/{other_obs}/_history/1"),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let searched = json_with_status(get_with(server, &access, "Observation").await, 200).await;
    assert_eq!(ids(&searched), vec![format!("Observation/{mine_obs}")]);
    let patients = json_with_status(get_with(server, &access, "Patient").await, 200).await;
    assert_eq!(ids(&patients), vec![format!("Patient/{mine}")]);
    let other_compartment = json_with_status(
        get_with(server, &access, &format!("Patient/{other}/Observation")).await,
        200,
    )
    .await;
    assert!(ids(&other_compartment).is_empty());
    // Included resources are confined too.
    let included = json_with_status(
        get_with(
            server,
            &access,
            &format!("Patient?_id={mine},{other}&_revinclude=Observation:subject"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&included), {
        let mut v = vec![format!("Observation/{mine_obs}"), format!("Patient/{mine}")];
        v.sort();
        v
    });
    let history =
        json_with_status(get_with(server, &access, "Observation/_history").await, 200).await;
    assert!(
        history["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["resource"]["subject"]["reference"] == format!("Patient/{mine}"))
    );
    // Read-only scopes cannot write.
    outcome(send_with(server, &access, reqwest::Method::POST, "Observation", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": format!("Patient/{mine}")}})).await, 403, "forbidden").await;

    // Refresh: the same scopes when none are named, narrower on request, never wider.
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .request_async(&http())
        .await
        .expect("refresh");
    assert_eq!(refreshed.scopes().unwrap().len(), 5);
    assert_eq!(
        refreshed.extra_fields().patient.as_deref(),
        Some(mine.as_str())
    );
    let rotated = refreshed.refresh_token().expect("rotated").clone();
    let narrower = client
        .exchange_refresh_token(&rotated)
        .add_scope(Scope::new("patient/Observation.rs".into()))
        .add_scope(Scope::new("offline_access".into()))
        .request_async(&http())
        .await
        .expect("narrower");
    let narrowed = narrower.access_token().secret().clone();
    json_with_status(
        get_with(server, &narrowed, &format!("Observation/{mine_obs}")).await,
        200,
    )
    .await;
    outcome(
        get_with(server, &narrowed, &format!("Patient/{mine}")).await,
        403,
        "forbidden",
    )
    .await;
    let wider = client
        .exchange_refresh_token(narrower.refresh_token().unwrap())
        .add_scope(Scope::new("patient/*.cruds".into()))
        .request_async(&http())
        .await;
    assert!(
        matches!(wider, Err(RequestTokenError::ServerResponse(ref e)) if e.error().as_ref() == "invalid_scope"),
        "{wider:?}"
    );
    // The first refresh token was rotated away: using it again revokes the grant.
    let replayed = client
        .exchange_refresh_token(&refresh)
        .request_async(&http())
        .await;
    assert!(
        matches!(replayed, Err(RequestTokenError::ServerResponse(ref e)) if e.error().as_ref() == "invalid_grant"),
        "{replayed:?}"
    );
    let after = client
        .exchange_refresh_token(narrower.refresh_token().unwrap())
        .request_async(&http())
        .await;
    assert!(after.is_err(), "the grant is revoked after a replay");

    // A disabled user's grants stop refreshing.
    let token = sign_in
        .grant(&["offline_access", "user/Patient.rs"], &[], None)
        .await
        .token;
    // User-level scopes of a physician reach every patient.
    json_with_status(
        get_with(
            server,
            token.access_token().secret(),
            &format!("Patient/{other}"),
        )
        .await,
        200,
    )
    .await;
    server
        .accounts()
        .set_disabled(&doctor.id, true, &Actor::default())
        .await
        .unwrap();
    let refused = client
        .exchange_refresh_token(token.refresh_token().unwrap())
        .request_async(&http())
        .await;
    match refused {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error().as_ref(), "invalid_grant");
            assert!(e.error_description().unwrap().contains("disabled"));
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

async fn authorization_errors_go_where_the_spec_says(server: &TestServer) {
    user(server, "nurse@hearth.test", Role::Clinician).await;
    let registered = app(server, Credentials::Public, None).await;
    let browser = Browser::new(&server.root());
    browser.login("nurse@hearth.test", PASSWORD).await;
    let base = |extra: &[(&str, &str)]| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        let (challenge, _) = PkceCodeChallenge::new_random_sha256();
        let mut pairs = vec![
            ("response_type", "code".to_owned()),
            ("client_id", registered.client_id.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("scope", "openid user/Patient.rs".to_owned()),
            ("state", "s-1".to_owned()),
            ("aud", server.base.clone()),
            ("code_challenge", challenge.as_str().to_owned()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        for (k, v) in extra {
            pairs.retain(|(name, _)| name != k);
            if !v.is_empty() {
                pairs.push((k, (*v).to_owned()));
            }
        }
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        format!("/auth/authorize?{}", q.finish())
    };
    // The consent page for a valid request; also by POST.
    browser.get(&base(&[])).await.expect(200, "Allow Test App");
    let csrfless: Vec<(String, String)> =
        form_urlencoded::parse(base(&[]).split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    let refs: Vec<(&str, &str)> = csrfless
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser
        .post_raw("/auth/authorize", &refs)
        .await
        .expect(200, "Allow Test App");
    // Unsafe to redirect: shown.
    browser
        .get(&base(&[("redirect_uri", "http://127.0.0.1:9/evil")]))
        .await
        .expect(400, "is not registered");
    browser
        .get(&base(&[("client_id", "nobody")]))
        .await
        .expect(400, "No active app");
    browser
        .get(&base(&[("client_id", "no\u{0}body")]))
        .await
        .expect(400, "No active app");
    // Back to the app with the error and the state.
    let error_of = |page: crate::browser::Page| {
        assert_eq!(page.status, 303, "{}", page.body);
        let location = page.location.unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        (
            query_value(&location, "error").unwrap(),
            query_value(&location, "state"),
            query_value(&location, "error_description").unwrap_or_default(),
        )
    };
    let (error, state, description) = error_of(
        browser
            .get(&base(&[("aud", "https://other.example/fhir")]))
            .await,
    );
    assert_eq!(
        (error.as_str(), state.as_deref()),
        ("invalid_request", Some("s-1"))
    );
    assert!(description.contains("aud"));
    let (error, _, description) = error_of(
        browser
            .get(&base(&[("code_challenge_method", "plain")]))
            .await,
    );
    assert_eq!(error, "invalid_request");
    assert!(description.contains("S256"));
    let (error, _, _) = error_of(
        browser
            .get(&base(&[
                ("code_challenge", ""),
                ("code_challenge_method", ""),
            ]))
            .await,
    );
    assert_eq!(error, "invalid_request");
    let (error, _, _) = error_of(browser.get(&base(&[("response_type", "token")])).await);
    assert_eq!(error, "unsupported_response_type");
    let (error, _, _) = error_of(browser.get(&base(&[("launch", "not-a-launch")])).await);
    assert_eq!(error, "invalid_request");
    // The user says no.
    let page = browser.get(&base(&[])).await;
    let csrf = page.csrf();
    let mut fields = refs.clone();
    fields.push(("csrf", &csrf));
    fields.push(("decision", "deny"));
    let (error, state, _) = error_of(browser.post_raw("/auth/authorize/decide", &fields).await);
    assert_eq!(
        (error.as_str(), state.as_deref()),
        ("access_denied", Some("s-1"))
    );
    // A code is bound to its redirect URI and client.
    fields.pop();
    fields.push(("decision", "allow"));
    fields.push(("grant", "user/Patient.rs"));
    let location = browser
        .post_raw("/auth/authorize/decide", &fields)
        .await
        .location
        .unwrap();
    let code = query_value(&location, "code").unwrap();
    let other_redirect = oauth_client(server, &registered.client_id, None)
        .set_redirect_uri(RedirectUrl::new("http://127.0.0.1:9/other".into()).unwrap())
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new("y".repeat(43)))
        .request_async(&http())
        .await;
    match other_redirect {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error().as_ref(), "invalid_grant");
            assert!(e.error_description().unwrap().contains("redirect_uri"));
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    // A missing verifier.
    let page = browser.get(&base(&[])).await;
    let csrf = page.csrf();
    let mut fields = refs.clone();
    fields.push(("csrf", &csrf));
    fields.push(("decision", "allow"));
    fields.push(("grant", "user/Patient.rs"));
    let location = browser
        .post_raw("/auth/authorize/decide", &fields)
        .await
        .location
        .unwrap();
    let raw = http()
        .post(format!("{}/auth/token", server.root()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &query_value(&location, "code").unwrap()),
            ("redirect_uri", REDIRECT),
            ("client_id", &registered.client_id),
        ])
        .send()
        .await
        .unwrap();
    let body = json_with_status(raw, 400).await;
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );
    // Unknown grant types and clients.
    let raw = http()
        .post(format!("{}/auth/token", server.root()))
        .form(&[
            ("grant_type", "password"),
            ("client_id", &registered.client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(raw, 400).await["error"],
        "unsupported_grant_type"
    );
    // No client id holds a NUL (on PostgreSQL, whose text refuses it, this was a 500).
    for client_id in ["nobody", "no\u{0}body"] {
        let raw = http()
            .post(format!("{}/auth/token", server.root()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(json_with_status(raw, 401).await["error"], "invalid_client");
    }
}

async fn ehr_launch_and_granular_scopes(server: &TestServer) {
    user(server, "cardio@hearth.test", Role::Physician).await;
    let subject = patient(server, "Launched").await;
    let lab = observation(server, &subject, "laboratory").await;
    let vitals = observation(server, &subject, "vital-signs").await;
    let encounter = server
        .create(&json!({"resourceType": "Encounter", "status": "in-progress", "class": {"code": "IMP"}, "subject": {"reference": format!("Patient/{subject}")}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let launch = server
        .auth()
        .issue_launch(&LaunchContext {
            patient: Some(subject.clone()),
            encounter: Some(encounter.clone()),
            user_id: None,
        })
        .await
        .unwrap();
    let registered = app(server, Credentials::Secret, None).await;
    let client = oauth_client(
        server,
        &registered.client_id,
        registered.client_secret.as_deref(),
    );
    let granular = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
    let scopes = [
        "launch",
        "openid",
        "fhirUser",
        granular,
        "patient/Patient.rs",
    ];
    let browser = Browser::new(&server.root());
    // No patient picker: the launch names the patient; client_secret_basic at the token endpoint.
    let sign_in = SignIn {
        server,
        client: &client,
        browser: &browser,
        email: "cardio@hearth.test",
    };
    let token = sign_in
        .grant(&scopes, &[("launch", &launch)], None)
        .await
        .token;
    assert_eq!(
        token.extra_fields().patient.as_deref(),
        Some(subject.as_str())
    );
    assert_eq!(
        token.extra_fields().encounter.as_deref(),
        Some(encounter.as_str())
    );
    assert_eq!(token.extra_fields().need_patient_banner, Some(false));
    assert!(token.extra_fields().smart_style_url.is_some());
    let access = token.access_token().secret().clone();
    let searched = json_with_status(get_with(server, &access, "Observation").await, 200).await;
    assert_eq!(ids(&searched), vec![format!("Observation/{lab}")]);
    json_with_status(
        get_with(server, &access, &format!("Observation/{lab}")).await,
        200,
    )
    .await;
    let message = outcome(
        get_with(server, &access, &format!("Observation/{vitals}")).await,
        403,
        "forbidden",
    )
    .await;
    assert!(message.contains("granular"), "{message}");
    // Encounters are not granted at all.
    outcome(
        get_with(server, &access, &format!("Encounter/{encounter}")).await,
        403,
        "forbidden",
    )
    .await;
    // client_secret_post works too, and a wrong secret does not.
    let raw = http()
        .post(format!("{}/auth/token", server.root()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "nope"),
            ("client_id", &registered.client_id),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(raw, 401).await["error"], "invalid_client");
    let raw = http()
        .post(format!("{}/auth/token", server.root()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "nope"),
            ("client_id", &registered.client_id),
            (
                "client_secret",
                registered.client_secret.as_deref().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(raw, 400).await["error"], "invalid_grant");
}

async fn introspection_and_revocation(server: &TestServer) {
    user(server, "intro@hearth.test", Role::Physician).await;
    let subject = patient(server, "Introspected").await;
    let registered = app(server, Credentials::Secret, None).await;
    let client = oauth_client(
        server,
        &registered.client_id,
        registered.client_secret.as_deref(),
    );
    let scopes = [
        "launch/patient",
        "openid",
        "fhirUser",
        "online_access",
        "patient/*.rs",
    ];
    let browser = Browser::new(&server.root());
    let sign_in = SignIn {
        server,
        client: &client,
        browser: &browser,
        email: "intro@hearth.test",
    };
    let token = sign_in.grant(&scopes, &[], Some(&subject)).await.token;
    let access = token.access_token().secret().clone();
    let introspect = |token: String| {
        let (id, secret) = (
            registered.client_id.clone(),
            registered.client_secret.clone().unwrap(),
        );
        let url = format!("{}/auth/introspect", server.root());
        async move {
            json_with_status(
                http()
                    .post(url)
                    .basic_auth(id, Some(secret))
                    .form(&[("token", token)])
                    .send()
                    .await
                    .unwrap(),
                200,
            )
            .await
        }
    };
    let active = introspect(access.clone()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], registered.client_id);
    assert_eq!(active["scope"], scopes.join(" "));
    assert_eq!(active["patient"], subject);
    assert!(active["exp"].as_i64().unwrap() > chrono::Utc::now().timestamp());
    assert_eq!(active["iss"], server.root());
    assert!(active["sub"].is_string());
    assert!(
        active["fhirUser"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );
    assert_eq!(introspect("garbage".into()).await, json!({"active": false}));
    // Unauthenticated introspection is refused.
    let raw = http()
        .post(format!("{}/auth/introspect", server.root()))
        .form(&[("token", &access)])
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(raw, 401).await["error"], "invalid_client");
    // A refresh token (online_access) introspects as active.
    let refresh = token.refresh_token().unwrap().secret().clone();
    assert_eq!(introspect(refresh.clone()).await["active"], true);

    // Revocation: the access token stops working at once.
    json_with_status(
        get_with(server, &access, &format!("Patient/{subject}")).await,
        200,
    )
    .await;
    let revoked = http()
        .post(format!("{}/auth/revoke", server.root()))
        .basic_auth(&registered.client_id, registered.client_secret.as_deref())
        .form(&[("token", &access)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let message = outcome(
        get_with(server, &access, &format!("Patient/{subject}")).await,
        401,
        "login",
    )
    .await;
    assert!(message.contains("revoked"), "{message}");
    assert_eq!(introspect(access).await["active"], false);
    // Revoking the refresh token ends the grant.
    let revoked = http()
        .post(format!("{}/auth/revoke", server.root()))
        .basic_auth(&registered.client_id, registered.client_secret.as_deref())
        .form(&[("token", &refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(introspect(refresh.clone()).await["active"], false);
    let refused = client
        .exchange_refresh_token(&RefreshToken::new(refresh))
        .request_async(&http())
        .await;
    assert!(refused.is_err());
    // Unknown tokens revoke quietly.
    let revoked = http()
        .post(format!("{}/auth/revoke", server.root()))
        .basic_auth(&registered.client_id, registered.client_secret.as_deref())
        .form(&[("token", "unknown")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
}

async fn patient_scopes_confine_writes_and_bundles(server: &TestServer) {
    let portal = user(server, "pat@hearth.test", Role::Patient).await;
    let own = portal
        .fhir_reference
        .clone()
        .unwrap()
        .trim_start_matches("Patient/")
        .to_owned();
    let other = patient(server, "Stranger").await;
    let registered = app(server, Credentials::Public, None).await;
    let client = oauth_client(server, &registered.client_id, None);
    let scopes = [
        "launch/patient",
        "patient/Observation.cruds",
        "patient/Patient.rs",
    ];
    let browser = Browser::new(&server.root());
    // A patient user is their own patient: no picker.
    let sign_in = SignIn {
        server,
        client: &client,
        browser: &browser,
        email: "pat@hearth.test",
    };
    let token = sign_in.grant(&scopes, &[], None).await.token;
    assert_eq!(token.extra_fields().patient.as_deref(), Some(own.as_str()));
    let access = token.access_token().secret().clone();
    let obs = |p: &str| json!({"resourceType": "Observation", "status": "final", "code": {"text": "steps"}, "subject": {"reference": format!("Patient/{p}")}});
    let created = json_with_status(
        send_with(
            server,
            &access,
            reqwest::Method::POST,
            "Observation",
            &obs(&own),
        )
        .await,
        201,
    )
    .await;
    let message = outcome(
        send_with(
            server,
            &access,
            reqwest::Method::POST,
            "Observation",
            &obs(&other),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert!(message.contains("compartment"), "{message}");
    // Moving one's own Observation to another patient is refused; so is touching theirs.
    let mut moved = obs(&other);
    moved["id"] = created["id"].clone();
    outcome(
        send_with(
            server,
            &access,
            reqwest::Method::PUT,
            &format!("Observation/{}", created["id"].as_str().unwrap()),
            &moved,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let theirs = observation(server, &other, "laboratory").await;
    let mut taken = obs(&own);
    taken["id"] = json!(theirs);
    outcome(
        send_with(
            server,
            &access,
            reqwest::Method::PUT,
            &format!("Observation/{theirs}"),
            &taken,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    outcome(
        http()
            .delete(format!("{}/Observation/{theirs}", server.base))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    json_with_status(
        get_with(
            server,
            server_token(server).as_str(),
            &format!("Observation/{theirs}"),
        )
        .await,
        200,
    )
    .await;
    // A transaction with one entry outside the compartment keeps nothing.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f1c6a57-0000-4000-8000-000000000001", "resource": obs(&own), "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:6f1c6a57-0000-4000-8000-000000000002", "resource": obs(&other), "request": {"method": "POST", "url": "Observation"}},
    ]});
    let before = json_with_status(
        get_with(server, &access, "Observation?_summary=count").await,
        200,
    )
    .await["total"]
        .clone();
    let message = outcome(
        send_with(server, &access, reqwest::Method::POST, "", &bundle).await,
        403,
        "forbidden",
    )
    .await;
    assert!(message.contains("Bundle.entry[1]"), "{message}");
    let after = json_with_status(
        get_with(server, &access, "Observation?_summary=count").await,
        200,
    )
    .await["total"]
        .clone();
    assert_eq!(before, after);
    // A batch answers each entry on its own.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": obs(&own), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": format!("Patient/{other}")}},
        {"request": {"method": "GET", "url": "Encounter"}},
    ]});
    let answered = json_with_status(
        send_with(server, &access, reqwest::Method::POST, "", &batch).await,
        200,
    )
    .await;
    let statuses: Vec<&str> = answered["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        vec!["201 Created", "403 Forbidden", "403 Forbidden"]
    );
}

fn server_token(server: &TestServer) -> String {
    server.auth().operator_token("system/*.rs", 60).unwrap()
}

/// A token the server signed for a user, as its token endpoint would issue one.
fn user_token(server: &TestServer, user: &str, fhir_user: &str, role: &str, scope: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    server
        .auth()
        .sign_access(&json!({
            "iss": server.root(), "aud": server.base, "sub": user, "client_id": "audit-test-app",
            "scope": scope, "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string(),
            "fhirUser": fhir_user, "hearth_role": role,
        }))
        .unwrap()
}

async fn patient_data_is_audited(server: &TestServer) {
    let subject = patient(server, "Audited").await;
    let doctor = user_token(
        server,
        "u-doc",
        "Practitioner/doc",
        "physician",
        "user/*.cruds",
    );
    json_with_status(
        get_with(server, &doctor, &format!("Patient/{subject}")).await,
        200,
    )
    .await;
    json_with_status(
        get_with(
            server,
            &doctor,
            &format!("Observation?subject=Patient/{subject}"),
        )
        .await,
        200,
    )
    .await;
    let created = json_with_status(
        send_with(server, &doctor, reqwest::Method::POST, "Observation", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "bp"}, "subject": {"reference": format!("Patient/{subject}")}})).await,
        201,
    )
    .await;
    let reader = user_token(
        server,
        "u-nurse",
        "Practitioner/nurse",
        "clinician",
        "user/Patient.rs",
    );
    outcome(
        get_with(
            server,
            &reader,
            &format!("Observation/{}", created["id"].as_str().unwrap()),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    // Not patient data: not audited.
    json_with_status(get_with(server, &doctor, "Practitioner").await, 200).await;

    // The events arrive in batches; wait for them. (The operator's own writes above are
    // audited too; only the app's are counted here.)
    let operator = server
        .auth()
        .operator_token("system/AuditEvent.rs", 60)
        .unwrap();
    let refused = format!("Observation/{}", created["id"].as_str().unwrap());
    let mut events = Vec::new();
    for _ in 0..100 {
        let found = json_with_status(
            get_with(
                server,
                &operator,
                "AuditEvent?agent:identifier=urn:hearth:client|audit-test-app&_count=50",
            )
            .await,
            200,
        )
        .await;
        events = found["entry"].as_array().cloned().unwrap_or_default();
        if events.len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let summary: Vec<(String, String, String, String)> = events
        .iter()
        .map(|e| {
            let r = &e["resource"];
            let patient = r["entity"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["role"]["code"] == "1")
                .map_or(String::new(), |x| {
                    x["what"]["reference"].as_str().unwrap().to_owned()
                });
            (
                r["action"].as_str().unwrap().to_owned(),
                r["subtype"][0]["code"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
                patient,
            )
        })
        .collect();
    let about = format!("Patient/{subject}");
    for expected in [
        ("R", "read", "0", about.as_str()),
        ("E", "search-type", "0", about.as_str()),
        ("C", "create", "0", about.as_str()),
        ("R", "read", "4", ""),
    ] {
        assert!(
            summary.contains(&(
                expected.0.into(),
                expected.1.into(),
                expected.2.into(),
                expected.3.into()
            )),
            "{expected:?} in {summary:?}"
        );
    }
    assert_eq!(
        summary.len(),
        4,
        "Practitioner is not patient data: {summary:?}"
    );
    let read = events
        .iter()
        .find(|e| e["resource"]["subtype"][0]["code"] == "read" && e["resource"]["outcome"] == "0")
        .unwrap();
    assert_eq!(
        read["resource"]["agent"][0]["who"]["reference"],
        "Practitioner/doc"
    );
    assert_eq!(
        read["resource"]["agent"][1]["who"]["identifier"]["value"],
        "audit-test-app"
    );
    assert_eq!(read["resource"]["entity"][0]["what"]["reference"], about);
    let denied = json_with_status(
        get_with(
            server,
            &operator,
            &format!("AuditEvent?entity={refused}&outcome=4"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        denied["entry"][0]["resource"]["agent"][0]["who"]["reference"],
        "Practitioner/nurse"
    );
    assert_eq!(denied["entry"][0]["resource"]["outcomeDesc"], "HTTP 403");
    // Administrators and system tokens only.
    let message = outcome(
        get_with(server, &doctor, "AuditEvent").await,
        403,
        "forbidden",
    )
    .await;
    assert!(message.contains("administrators"), "{message}");
    let admin = user_token(
        server,
        "u-admin",
        "Practitioner/admin",
        "admin",
        "user/*.rs",
    );
    json_with_status(get_with(server, &admin, "AuditEvent").await, 200).await;
}
