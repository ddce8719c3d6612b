//! DTLS for one viewer, on rtc-dtls's sans-I/O endpoint: we are the server
//! (our answer says `setup:passive`), the viewer's certificate must match
//! the fingerprint in its offer (RFC 8842 5), and once the handshake is done
//! the SRTP keying material is exported (RFC 5764 4.2) for the session's own
//! SRTP. Application data (SCTP, for the data channel) goes both ways.

use super::hello;
use crate::sfu::srtp::{Profile, EXPORTER_LABEL};
use bytes::BytesMut;
use rtc::crypto::RTCCryptoProvider;
use rtc::dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType};
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::shared::TransportProtocol;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The endpoint keys its one association by this: the viewer's datagrams
/// may come from any of its proven ICE paths, and they are one association.
const ASSOCIATION: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

pub enum Event {
    /// The handshake is done: `material` is the exporter's output,
    /// client key | server key | client salt | server salt.
    Connected { profile: Profile, material: Vec<u8> },
    /// Decrypted application data (an SCTP packet).
    Data(BytesMut),
    /// The viewer sent close_notify, or the association failed.
    Closed,
}

#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    #[error("DTLS: {0}")]
    Protocol(String),
    #[error("DTLS configuration: {0}")]
    Config(String),
}

pub struct Dtls {
    endpoint: Option<Endpoint>,
    certificate: rtc::dtls::crypto::Certificate,
    provider: Arc<dyn RTCCryptoProvider>,
    fingerprint: (String, Vec<u8>),
    connected: bool,
}

/// The digest of a DER certificate under an SDP fingerprint's algorithm
/// (RFC 8122 5: sha-1, sha-224, sha-256, sha-384, sha-512).
fn digest(algorithm: &str, der: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    Some(match algorithm {
        "sha-1" => sha1::Sha1::digest(der).to_vec(),
        "sha-224" => sha2::Sha224::digest(der).to_vec(),
        "sha-256" => sha2::Sha256::digest(der).to_vec(),
        "sha-384" => sha2::Sha384::digest(der).to_vec(),
        "sha-512" => sha2::Sha512::digest(der).to_vec(),
        _ => return None,
    })
}

impl Dtls {
    pub fn new(
        certificate: rtc::dtls::crypto::Certificate,
        provider: Arc<dyn RTCCryptoProvider>,
        fingerprint: (String, Vec<u8>),
    ) -> Dtls {
        Dtls {
            endpoint: None,
            certificate,
            provider,
            fingerprint,
            connected: false,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The association starts with the first ClientHello: its `use_srtp`
    /// list decides the profile we accept, AES-GCM whenever offered.
    fn start(&mut self, first: &[u8]) -> Result<(), DtlsError> {
        let offered = hello::offered_profiles(first).unwrap_or_default();
        let profiles = if offered.contains(&hello::AEAD_AES_128_GCM) {
            vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]
        } else {
            vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]
        };
        let (algorithm, expected) = self.fingerprint.clone();
        let verify: rtc::dtls::config::VerifyPeerCertificateFn = Arc::new(move |certs, _| {
            let leaf = certs
                .first()
                .ok_or_else(|| rtc::shared::error::Error::Other("no client certificate".into()))?;
            match digest(&algorithm, leaf) {
                Some(d) if d == expected => Ok(()),
                _ => Err(rtc::shared::error::Error::Other(
                    "the certificate does not match the offer's fingerprint".into(),
                )),
            }
        });
        let config = ConfigBuilder::default()
            .with_crypto_provider(self.provider.clone())
            .with_certificates(vec![self.certificate.clone()])
            .with_srtp_protection_profiles(profiles)
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(verify))
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .build(false, None)
            .map_err(|e| DtlsError::Config(e.to_string()))?;
        self.endpoint = Some(Endpoint::new(
            ASSOCIATION,
            TransportProtocol::UDP,
            Some(Arc::new(config)),
        ));
        Ok(())
    }

    /// Reads one DTLS datagram from the viewer.
    pub fn handle(
        &mut self,
        now: Instant,
        data: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), DtlsError> {
        if self.endpoint.is_none() {
            self.start(data)?;
        }
        let Some(endpoint) = self.endpoint.as_mut() else {
            return Ok(());
        };
        let read = endpoint.read(now, ASSOCIATION, None, BytesMut::from(data));
        let happened = match read {
            Ok(h) => h,
            Err(e) => {
                // A bad record before the handshake is done is the peer's
                // failure; after it, a forged or stale datagram to drop.
                if !self.connected && endpoint.get_connection_state(ASSOCIATION).is_none() {
                    events.push(Event::Closed);
                }
                return Err(DtlsError::Protocol(e.to_string()));
            }
        };
        for ev in happened {
            match ev {
                EndpointEvent::HandshakeComplete => {
                    let state = endpoint.get_connection_state(ASSOCIATION).ok_or_else(|| {
                        DtlsError::Protocol("no state after the handshake".into())
                    })?;
                    let profile = match state.srtp_protection_profile() {
                        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => Profile::AeadAes128Gcm,
                        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => {
                            Profile::Aes128CmHmacSha1_80
                        }
                        other => {
                            return Err(DtlsError::Protocol(format!(
                                "unexpected SRTP profile {other:?}"
                            )))
                        }
                    };
                    let material = state
                        .export_keying_material(EXPORTER_LABEL, &[], profile.exporter_len())
                        .map_err(|e| DtlsError::Protocol(e.to_string()))?;
                    self.connected = true;
                    events.push(Event::Connected {
                        profile,
                        material: material.as_ref().to_vec(),
                    });
                }
                EndpointEvent::ApplicationData(d) => events.push(Event::Data(d)),
                EndpointEvent::PeerClosed => events.push(Event::Closed),
                _ => {}
            }
        }
        Ok(())
    }

    /// Sends application data (an SCTP packet) once connected.
    pub fn write(&mut self, now: Instant, data: &[u8]) -> Result<(), DtlsError> {
        match self.endpoint.as_mut() {
            Some(e) if self.connected => e
                .write(now, ASSOCIATION, data)
                .map_err(|e| DtlsError::Protocol(e.to_string())),
            _ => Err(DtlsError::Protocol("not connected".into())),
        }
    }

    /// The next datagram to send to the viewer.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.endpoint.as_mut()?.poll_transmit().map(|t| t.message)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.endpoint.as_ref()?.poll_timeout(&ASSOCIATION)
    }

    /// Retransmits a lost flight; an error means the handshake gave up.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        match self.endpoint.as_mut() {
            Some(e) => e
                .handle_timeout(ASSOCIATION, now)
                .map_err(|e| DtlsError::Protocol(e.to_string())),
            None => Ok(()),
        }
    }

    /// Queues close_notify.
    pub fn close(&mut self, now: Instant) {
        if let Some(e) = self.endpoint.as_mut() {
            let _ = e.close(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};

    fn cert(provider: &Arc<dyn RTCCryptoProvider>) -> RTCCertificate {
        RTCCertificate::generate(
            provider.crypto(),
            rtc::crypto::SignatureScheme::EcdsaP256Sha256,
            CertificateParams::new(vec!["test".into()]).unwrap(),
        )
        .unwrap()
    }

    /// An rtc-dtls client (the viewer's side, independent of ours) offering
    /// `profiles`, against our server; returns (our events, the client's
    /// exported material).
    fn handshake(profiles: Vec<SrtpProtectionProfile>, lie: bool) -> (Vec<Event>, Option<Vec<u8>>) {
        let provider = rtc::crypto::default_provider().unwrap();
        let server_cert = cert(&provider);
        let client_cert = cert(&provider);
        let mut fp = digest("sha-256", &client_cert.dtls_certificate.certificate[0]).unwrap();
        if lie {
            fp[0] ^= 1;
        }
        let mut ours = Dtls::new(
            server_cert.dtls_certificate.clone(),
            provider.clone(),
            ("sha-256".into(), fp),
        );
        let client_config = ConfigBuilder::default()
            .with_crypto_provider(provider.clone())
            .with_certificates(vec![client_cert.dtls_certificate.clone()])
            .with_srtp_protection_profiles(profiles)
            .with_insecure_skip_verify(true)
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .build(true, None)
            .unwrap();
        let server_addr: SocketAddr = "192.0.2.1:8189".parse().unwrap();
        let mut client = Endpoint::new(
            "192.0.2.9:5000".parse().unwrap(),
            TransportProtocol::UDP,
            None,
        );
        let now = Instant::now();
        client
            .connect(now, server_addr, Arc::new(client_config), None)
            .unwrap();
        let mut events = Vec::new();
        let mut client_done = false;
        for _ in 0..20 {
            while let Some(t) = client.poll_transmit() {
                let _ = ours.handle(now, &t.message, &mut events);
            }
            while let Some(d) = ours.poll_transmit() {
                for ev in client.read(now, server_addr, None, d).unwrap_or_default() {
                    client_done |= matches!(ev, EndpointEvent::HandshakeComplete);
                }
            }
        }
        let material = client_done.then(|| {
            let st = client.get_connection_state(server_addr).unwrap();
            let p = match st.srtp_protection_profile() {
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => Profile::AeadAes128Gcm,
                _ => Profile::Aes128CmHmacSha1_80,
            };
            st.export_keying_material(EXPORTER_LABEL, &[], p.exporter_len())
                .unwrap()
                .as_ref()
                .to_vec()
        });
        (events, material)
    }

    #[test]
    fn gcm_is_chosen_whenever_offered_and_keys_agree() {
        for (offered, want) in [
            (
                vec![
                    SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
                    SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                ],
                Profile::AeadAes128Gcm,
            ),
            (
                vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80],
                Profile::Aes128CmHmacSha1_80,
            ),
        ] {
            let (events, theirs) = handshake(offered, false);
            let ours = events.iter().find_map(|e| match e {
                Event::Connected { profile, material } => Some((*profile, material.clone())),
                _ => None,
            });
            let (profile, material) = ours.expect("our side connected");
            assert_eq!(profile, want);
            assert_eq!(Some(material), theirs, "both sides export the same keys");
        }
    }

    #[test]
    fn a_certificate_that_does_not_match_the_offer_is_refused() {
        let (events, _) = handshake(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm], true);
        assert!(
            !events.iter().any(|e| matches!(e, Event::Connected { .. })),
            "a viewer whose certificate is not the one it offered must not connect"
        );
    }
}
