//! Talking to OpenID Connect providers: discovery (cached, refreshed when
//! keys rotate), the authorization URL with PKCE, state and nonce, and the
//! code exchange with the ID token's signature, issuer, audience, expiry
//! and nonce checked.

use super::oidc::{Flow, ProviderSpec, DISCOVERY_TTL, PROVIDER_TIMEOUT};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use std::sync::{Arc, Mutex};
use std::time::Instant;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The issuer's subject is at most 255 ASCII characters (OIDC Core 2);
/// longer is a broken or hostile provider, not an identity to store.
const MAX_SUBJECT: usize = 255;
const MAX_EMAIL: usize = 254;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no such sign-in provider")]
    Unknown,
    #[error("cannot reach the sign-in provider: {0}")]
    Discovery(String),
    #[error("the sign-in provider refused the code (used already, or expired): {0}")]
    Exchange(String),
    #[error("the sign-in provider's answer did not verify: {0}")]
    Token(String),
}

/// What a verified ID token says about the person.
#[derive(Debug, Clone)]
pub struct Person {
    pub subject: String,
    pub email: Option<String>,
    /// Only the provider's explicit `email_verified: true` counts.
    pub email_verified: bool,
    pub preferred_username: Option<String>,
}

struct Entry {
    spec: ProviderSpec,
    meta: Mutex<Option<(Instant, Arc<CoreProviderMetadata>)>>,
}

/// The configured providers.
pub struct Providers {
    list: Vec<Entry>,
    http: reqwest::Client,
}

impl Providers {
    pub fn new(specs: Vec<ProviderSpec>) -> Providers {
        let http = reqwest::Client::builder()
            // A provider's redirect could point the server at any internal
            // address (SSRF); no provider needs one.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .unwrap_or_default();
        Providers {
            list: specs
                .into_iter()
                .map(|spec| Entry {
                    spec,
                    meta: Mutex::new(None),
                })
                .collect(),
            http,
        }
    }

    pub fn specs(&self) -> impl Iterator<Item = &ProviderSpec> {
        self.list.iter().map(|e| &e.spec)
    }

    pub fn spec(&self, id: &str) -> Option<&ProviderSpec> {
        self.entry(id).ok().map(|e| &e.spec)
    }

    fn entry(&self, id: &str) -> Result<&Entry, ProviderError> {
        self.list
            .iter()
            .find(|e| e.spec.id == id)
            .ok_or(ProviderError::Unknown)
    }

    /// The provider's metadata, from the cache unless it is stale or
    /// `fresh` asks for a refetch. The lock is never held over the fetch.
    async fn metadata(
        &self,
        e: &Entry,
        fresh: bool,
    ) -> Result<Arc<CoreProviderMetadata>, ProviderError> {
        if !fresh {
            let cached = e.meta.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some((at, m)) = cached {
                if at.elapsed() < DISCOVERY_TTL {
                    return Ok(m);
                }
            }
        }
        let issuer = IssuerUrl::new(e.spec.issuer.clone())
            .map_err(|err| ProviderError::Discovery(err.to_string()))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|err| {
                tracing::warn!(provider = %e.spec.id, "OIDC discovery failed: {err}");
                ProviderError::Discovery(err.to_string())
            })?;
        let m = Arc::new(m);
        *e.meta.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    fn client(
        e: &Entry,
        meta: &CoreProviderMetadata,
        redirect_uri: &str,
    ) -> Result<Client, ProviderError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|err| ProviderError::Discovery(err.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            meta.clone(),
            ClientId::new(e.spec.client_id.clone()),
            e.spec.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// The URL to send the user to, and the flow to remember under `state`.
    pub async fn authorize(
        &self,
        id: &str,
        state: &str,
        redirect_uri: String,
        link_user: Option<i64>,
        next: String,
    ) -> Result<(String, Flow), ProviderError> {
        let e = self.entry(id)?;
        let meta = self.metadata(e, false).await?;
        let client = Self::client(e, &meta, &redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_string();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            Nonce::new_random,
        );
        for s in &e.spec.scopes {
            if s != "openid" {
                req = req.add_scope(Scope::new(s.clone()));
            }
        }
        let (url, _, nonce) = req.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            Flow {
                provider: id.to_string(),
                pkce_verifier: verifier.secret().clone(),
                nonce: nonce.secret().clone(),
                redirect_uri,
                link_user,
                next,
            },
        ))
    }

    /// Trades the code for tokens and verifies the ID token.
    pub async fn exchange(&self, flow: &Flow, code: &str) -> Result<Person, ProviderError> {
        let e = self.entry(&flow.provider)?;
        let meta = self.metadata(e, false).await?;
        let client = Self::client(e, &meta, &flow.redirect_uri)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|err| ProviderError::Exchange(err.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|err| ProviderError::Exchange(describe(&err)))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| ProviderError::Token("no ID token".into()))?;
        let nonce = Nonce::new(flow.nonce.clone());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            Err(first) => {
                // A signing key we have not seen: the provider rotated its
                // keys since discovery. Fetch them once more and check again.
                let meta = self.metadata(e, true).await?;
                let client = Self::client(e, &meta, &flow.redirect_uri)?;
                let verifier = client.id_token_verifier();
                let claims = id_token.claims(&verifier, &nonce).map_err(|err| {
                    tracing::warn!(provider = %e.spec.id, "ID token refused: {first}; {err}");
                    ProviderError::Token(err.to_string())
                })?;
                claims.clone()
            }
        };
        let subject = claims.subject().clone();
        if subject.is_empty() || subject.len() > MAX_SUBJECT {
            return Err(ProviderError::Token("bad subject".into()));
        }
        let mut person = Person {
            subject: subject.as_str().to_string(),
            email: claims.email().map(|m| m.as_str().to_string()),
            email_verified: claims.email_verified() == Some(true),
            preferred_username: claims.preferred_username().map(|u| u.as_str().to_string()),
        };
        // Many providers put the email and name only in UserInfo (the ID
        // token holds what the client asked for by `claims`). UserInfo is
        // checked to be about the same subject.
        if person.email.is_none() {
            let info = match client.user_info(tokens.access_token().clone(), Some(subject)) {
                Ok(req) => req.request_async(&self.http).await.ok(),
                Err(_) => None,
            };
            let info: Option<openidconnect::core::CoreUserInfoClaims> = info;
            if let Some(info) = info {
                person.email = info.email().map(|m| m.as_str().to_string());
                person.email_verified = info.email_verified() == Some(true);
                if person.preferred_username.is_none() {
                    person.preferred_username =
                        info.preferred_username().map(|u| u.as_str().to_string());
                }
            }
        }
        person.email = person
            .email
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty() && m.len() <= MAX_EMAIL && m.contains('@'));
        person.email_verified &= person.email.is_some();
        person.preferred_username = person
            .preferred_username
            .map(|u| u.chars().take(64).collect());
        Ok(person)
    }
}

/// A token error with the provider's own error code when it sent one.
fn describe<E: std::error::Error>(
    err: &openidconnect::RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    match err {
        openidconnect::RequestTokenError::ServerResponse(r) => r.error().to_string(),
        other => other.to_string(),
    }
}
