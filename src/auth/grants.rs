//! What the authorization server hands out and takes back: authorization codes (single use,
//! 60 s, bound to client, redirect URI and PKCE challenge), refresh tokens (rotated on every
//! use; narrowing allowed, widening refused; a reused token revokes its grant), EHR launch
//! values, and the token responses themselves (access token, id_token, launch context).

use std::time::Duration;

use oauth2::{
    AccessToken, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RefreshToken, Scope,
    StandardTokenResponse, TokenType,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::clients::OAuthError;
use super::{Auth, Scopes, hash_secret, random_secret};
use crate::accounts::Status;
use crate::storage::oauth::{CodeRow, RefreshRow, Spend};

/// What one authorization granted: carried by its code, then by its refresh tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The client.
    pub client_id: String,
    /// The user who approved it (none for backend services).
    pub user_id: Option<String>,
    /// The granted scopes.
    pub scope: String,
    /// Launch context: the patient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Launch context: the encounter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    /// The user's FHIR resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// The user's role (`admin`, `physician`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Whether the app must show a patient banner.
    #[serde(default)]
    pub need_patient_banner: bool,
    /// OpenID Connect nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// When the user signed in (seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// An EHR launch: the context a `launch` value binds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchContext {
    /// The patient's id.
    pub patient: Option<String>,
    /// The encounter's id.
    pub encounter: Option<String>,
    /// The user who launched, if the launch is theirs only.
    pub user_id: Option<String>,
}

/// `Bearer`, spelled as SMART clients expect (oauth2's own type says `bearer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bearer(String);

impl TokenType for Bearer {}

/// SMART's additions to the token response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartFields {
    /// The patient in context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The encounter in context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    /// Whether a patient banner is needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub need_patient_banner: Option<bool>,
    /// Where the EHR's style is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart_style_url: Option<String>,
    /// OpenID Connect id_token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl ExtraTokenFields for SmartFields {}

/// The token response of this server.
pub type SmartTokenResponse = StandardTokenResponse<SmartFields, Bearer>;

/// Whether a PKCE code verifier is well formed (RFC 7636 §4.1).
fn verifier_ok(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Auth {
    /// Issues an authorization code for `grant`.
    pub async fn issue_code(
        &self,
        grant: &Grant,
        redirect_uri: &str,
        code_challenge: &str,
    ) -> Result<String, OAuthError> {
        let code = random_secret();
        let now = self.now_ms();
        self.storage()
            .insert_code(CodeRow {
                code_hash: hash_secret(&code),
                client_id: grant.client_id.clone(),
                redirect_uri: redirect_uri.to_owned(),
                code_challenge: code_challenge.to_owned(),
                grant_json: serde_json::to_string(grant).map_err(OAuthError::server)?,
                created_ms: now,
                expires_ms: now + self.settings().code_lifetime_s * 1000,
                used_ms: None,
            })
            .await?;
        Ok(code)
    }

    /// Issues an EHR launch value binding `context`.
    pub async fn issue_launch(&self, context: &LaunchContext) -> Result<String, OAuthError> {
        let launch = random_secret();
        self.storage()
            .insert_launch(
                hash_secret(&launch),
                serde_json::to_string(context).map_err(OAuthError::server)?,
                self.now_ms() + self.settings().launch_lifetime_s * 1000,
            )
            .await?;
        Ok(launch)
    }

    /// The context of a launch value, if it is known and current.
    pub async fn launch_context(&self, launch: &str) -> Result<Option<LaunchContext>, OAuthError> {
        let Some(text) = self.storage().launch(&hash_secret(launch)).await? else {
            return Ok(None);
        };
        Ok(Some(
            serde_json::from_str(&text).map_err(OAuthError::server)?,
        ))
    }

    /// `grant_type=authorization_code`.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        code: Option<&str>,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<SmartTokenResponse, OAuthError> {
        let code = code.ok_or_else(|| OAuthError::bad("invalid_request", "code is missing"))?;
        let row = match self.storage().spend_code(&hash_secret(code)).await? {
            Spend::Spent(row) => row,
            Spend::Reused => {
                return Err(OAuthError::bad(
                    "invalid_grant",
                    "the authorization code was used before",
                ));
            }
            Spend::Expired => {
                return Err(OAuthError::bad(
                    "invalid_grant",
                    "the authorization code has expired",
                ));
            }
            Spend::Unknown => {
                return Err(OAuthError::bad(
                    "invalid_grant",
                    "the authorization code is not known",
                ));
            }
        };
        if row.client_id != client_id {
            return Err(OAuthError::bad(
                "invalid_grant",
                "the authorization code was issued to another client",
            ));
        }
        if redirect_uri != Some(row.redirect_uri.as_str()) {
            return Err(OAuthError::bad(
                "invalid_grant",
                "redirect_uri differs from the authorization request's",
            ));
        }
        let verifier = verifier.ok_or_else(|| {
            OAuthError::bad(
                "invalid_grant",
                "code_verifier is missing (PKCE is required)",
            )
        })?;
        if !verifier_ok(verifier) {
            return Err(OAuthError::bad(
                "invalid_grant",
                "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
            ));
        }
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            verifier.to_owned(),
        ));
        if challenge.as_str() != row.code_challenge {
            return Err(OAuthError::bad(
                "invalid_grant",
                "code_verifier does not match the code_challenge (PKCE S256)",
            ));
        }
        let grant: Grant = serde_json::from_str(&row.grant_json).map_err(OAuthError::server)?;
        self.check_user(&grant).await?;
        let refresh = self
            .new_refresh(&grant, &uuid::Uuid::new_v4().to_string())
            .await?;
        self.token_response(&grant, self.settings().access_lifetime_s, refresh)
    }

    /// `grant_type=refresh_token`: rotates the token; `scope` may narrow the grant.
    pub async fn refresh(
        &self,
        client_id: &str,
        token: Option<&str>,
        scope: Option<&str>,
    ) -> Result<SmartTokenResponse, OAuthError> {
        let token =
            token.ok_or_else(|| OAuthError::bad("invalid_request", "refresh_token is missing"))?;
        let hash = hash_secret(token);
        let Some(row) = self.storage().refresh_token(&hash).await? else {
            return Err(OAuthError::bad(
                "invalid_grant",
                "the refresh token is not known",
            ));
        };
        if row.client_id != client_id {
            return Err(OAuthError::bad(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        let mut grant: Grant = serde_json::from_str(&row.grant_json).map_err(OAuthError::server)?;
        if let Some(requested) = scope.filter(|s| !s.trim().is_empty()) {
            let requested = Scopes::parse(requested);
            if !requested.is_within(&Scopes::parse(&grant.scope)) {
                return Err(OAuthError::bad(
                    "invalid_scope",
                    "a refresh may keep or narrow the granted scopes, not widen them",
                ));
            }
            grant.scope = requested.to_string();
        }
        self.check_user(&grant).await?;
        let new_token = random_secret();
        let lifetime = self.refresh_lifetime_s(&Scopes::parse(&grant.scope));
        let next = lifetime.map(|lifetime| RefreshRow {
            token_hash: hash_secret(&new_token),
            grant_id: row.grant_id.clone(),
            client_id: row.client_id.clone(),
            grant_json: serde_json::to_string(&grant).unwrap_or_default(),
            created_ms: self.now_ms(),
            expires_ms: self.now_ms() + lifetime * 1000,
            used_ms: None,
        });
        let spent = self
            .storage()
            .rotate_refresh(&hash, move |_| next.clone())
            .await?;
        match spent {
            Spend::Spent(_) => {}
            Spend::Reused => {
                return Err(OAuthError::bad(
                    "invalid_grant",
                    "the refresh token was used before; the grant is revoked",
                ));
            }
            Spend::Expired => {
                return Err(OAuthError::bad(
                    "invalid_grant",
                    "the refresh token has expired",
                ));
            }
            Spend::Unknown => {
                return Err(OAuthError::bad(
                    "invalid_grant",
                    "the refresh token is not known",
                ));
            }
        }
        let refresh = lifetime.map(|_| new_token);
        self.token_response(&grant, self.settings().access_lifetime_s, refresh)
    }

    /// `grant_type=client_credentials` for an authenticated backend service: the requested
    /// system scopes that the client is registered for.
    pub async fn client_credentials(
        &self,
        client: &crate::storage::oauth::ClientRow,
        scope: Option<&str>,
    ) -> Result<SmartTokenResponse, OAuthError> {
        let requested = Scopes::parse(scope.unwrap_or_default());
        if requested.all.is_empty() {
            return Err(OAuthError::bad("invalid_scope", "scope is missing"));
        }
        let granted = requested.within(&Scopes::parse(&client.scope));
        let granted = Scopes::parse(
            &granted
                .resources
                .iter()
                .filter(|s| s.level == super::Level::System)
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
        if granted.all.is_empty() {
            return Err(OAuthError::bad(
                "invalid_scope",
                format!(
                    "none of the requested scopes ({requested}) is a system scope this client is registered for ({})",
                    client.scope
                ),
            ));
        }
        let grant = Grant {
            client_id: client.id.clone(),
            scope: granted.to_string(),
            ..Grant::default()
        };
        self.token_response(&grant, self.settings().backend_lifetime_s, None)
    }

    /// The grant's user must still be allowed in.
    async fn check_user(&self, grant: &Grant) -> Result<(), OAuthError> {
        let Some(user_id) = &grant.user_id else {
            return Ok(());
        };
        match self.accounts().user(user_id).await {
            Ok(user) if user.status == Status::Active => Ok(()),
            Ok(_) => Err(OAuthError::bad(
                "invalid_grant",
                "the user's account is disabled",
            )),
            Err(_) => Err(OAuthError::bad(
                "invalid_grant",
                "the user's account no longer exists",
            )),
        }
    }

    fn refresh_lifetime_s(&self, scopes: &Scopes) -> Option<i64> {
        if scopes.has("offline_access") {
            Some(self.settings().offline_lifetime_s)
        } else if scopes.has("online_access") {
            Some(self.settings().online_lifetime_s)
        } else {
            None
        }
    }

    async fn new_refresh(
        &self,
        grant: &Grant,
        grant_id: &str,
    ) -> Result<Option<String>, OAuthError> {
        let Some(lifetime) = self.refresh_lifetime_s(&Scopes::parse(&grant.scope)) else {
            return Ok(None);
        };
        let token = random_secret();
        let now = self.now_ms();
        self.storage()
            .insert_refresh(RefreshRow {
                token_hash: hash_secret(&token),
                grant_id: grant_id.to_owned(),
                client_id: grant.client_id.clone(),
                grant_json: serde_json::to_string(grant).map_err(OAuthError::server)?,
                created_ms: now,
                expires_ms: now + lifetime * 1000,
                used_ms: None,
            })
            .await?;
        Ok(Some(token))
    }

    /// Signs the access token (and id_token) of `grant` and builds the response.
    fn token_response(
        &self,
        grant: &Grant,
        lifetime_s: i64,
        refresh: Option<String>,
    ) -> Result<SmartTokenResponse, OAuthError> {
        let settings = self.settings();
        let now = self.now_ms() / 1000;
        let scopes = Scopes::parse(&grant.scope);
        let launched = scopes.has("launch") || scopes.has("launch/patient");
        let subject = grant
            .user_id
            .clone()
            .unwrap_or_else(|| grant.client_id.clone());
        let mut claims = json!({
            "iss": settings.public_url,
            "aud": settings.fhir_base,
            "sub": subject,
            "client_id": grant.client_id,
            "scope": grant.scope,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let patient = grant
            .patient
            .clone()
            .filter(|_| launched || scopes.any_at(super::Level::Patient));
        let encounter = grant.encounter.clone().filter(|_| launched);
        if let Some(p) = &patient {
            claims["patient"] = json!(p);
        }
        if let Some(e) = &encounter {
            claims["encounter"] = json!(e);
        }
        if let Some(u) = &grant.fhir_user {
            claims["fhirUser"] = json!(u);
        }
        if let Some(role) = &grant.role {
            claims["hearth_role"] = json!(role);
        }
        let id_token = if scopes.has("openid") && grant.user_id.is_some() {
            let mut id = json!({
                "iss": settings.public_url,
                "sub": subject,
                "aud": grant.client_id,
                "iat": now,
                "exp": now + lifetime_s,
            });
            if (scopes.has("fhirUser") || scopes.has("profile"))
                && let Some(u) = &grant.fhir_user
            {
                id["fhirUser"] = json!(format!("{}/{u}", settings.fhir_base));
            }
            if let Some(n) = &grant.nonce {
                id["nonce"] = json!(n);
            }
            if let Some(t) = grant.auth_time {
                id["auth_time"] = json!(t);
            }
            Some(self.sign_id_token(&id)?)
        } else {
            None
        };
        if patient.is_some() || launched {
            claims["need_patient_banner"] = json!(grant.need_patient_banner);
        }
        let access = self.sign_access(&claims)?;
        let mut response = SmartTokenResponse::new(
            AccessToken::new(access),
            Bearer("Bearer".into()),
            SmartFields {
                patient,
                encounter,
                need_patient_banner: launched.then_some(grant.need_patient_banner),
                smart_style_url: launched
                    .then(|| format!("{}/auth/smart-style.json", settings.public_url)),
                id_token,
            },
        );
        response.set_expires_in(Some(&Duration::from_secs(lifetime_s.max(0) as u64)));
        response.set_scopes(Some(scopes.all.iter().cloned().map(Scope::new).collect()));
        response.set_refresh_token(refresh.map(RefreshToken::new));
        Ok(response)
    }
}
