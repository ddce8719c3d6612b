//! Time-limited TURN credentials in the TURN REST API scheme that coturn's
//! `use-auth-secret` checks (draft-uberti-behave-turn-rest-00): username
//! `EXPIRY:USER`, password `base64(HMAC-SHA1(secret, username))`. Any TURN
//! server with the same secret accepts them, ours or coturn.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// How long handed-out credentials stay valid: a viewing session.
pub const TURN_CREDENTIAL_TTL_SECS: u64 = 24 * 3600;

/// One entry of an ICE server list, as WebRTC's `RTCIceServer` takes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

pub fn turn_password(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The configured servers, TURN ones with fresh credentials for `user`
/// when a secret is set. STUN needs none.
pub fn ice_servers(
    urls: &[String],
    secret: Option<&str>,
    user: &str,
    now_unix: u64,
) -> Vec<IceServer> {
    urls.iter()
        .map(|url| {
            let turn = url.starts_with("turn:") || url.starts_with("turns:");
            let (username, credential) = match (turn, secret) {
                (true, Some(secret)) => {
                    let username = format!("{}:{user}", now_unix + TURN_CREDENTIAL_TTL_SECS);
                    let password = turn_password(secret, &username);
                    (Some(username), Some(password))
                }
                _ => (None, None),
            };
            IceServer {
                urls: vec![url.clone()],
                username,
                credential,
            }
        })
        .collect()
}

/// A `Link` header value for WHIP/WHEP answers (RFC 9725 4.6).
pub fn link_header(s: &IceServer) -> String {
    let url = s.urls.first().map(String::as_str).unwrap_or_default();
    let mut v = format!("<{url}>; rel=\"ice-server\"");
    if let (Some(u), Some(c)) = (&s.username, &s.credential) {
        v.push_str(&format!(
            "; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\""
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coturn_rest_credentials() {
        // HMAC-SHA1 test vector (RFC 2202 case 2), base64-encoded.
        assert_eq!(
            turn_password("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        let list = ice_servers(
            &["stun:s.example:3478".into(), "turn:t.example:3478".into()],
            Some("k"),
            "v1",
            1000,
        );
        assert_eq!(list[0].username, None);
        let u = list[1].username.clone().unwrap();
        assert_eq!(u, format!("{}:v1", 1000 + TURN_CREDENTIAL_TTL_SECS));
        assert_eq!(list[1].credential.clone().unwrap(), turn_password("k", &u));
        assert!(link_header(&list[1])
            .starts_with("<turn:t.example:3478>; rel=\"ice-server\"; username="));
        assert_eq!(
            link_header(&list[0]),
            "<stun:s.example:3478>; rel=\"ice-server\""
        );
    }
}
