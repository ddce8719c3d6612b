//! A WHEP offer read and answered on the caller's task (the HTTP request's),
//! not on a fan-out shard: parsing SDP and setting up a session must not
//! hold up the media of the viewers already watching. The shard only files
//! the finished peer.

use super::feed::Feeds;
use super::peer::{self, Answer, Candidates};
use super::{session, Engine, SfuError};
use crate::isolate;
use rtc::peer_connection::certificate::RTCCertificate;
use std::sync::Arc;
use std::time::Instant;

/// What answering a viewer's offer needs, shared by every request.
pub(crate) struct Signalling {
    /// What every lean session shares (certificate, candidates).
    lean: Option<Arc<session::Config>>,
    candidates: Candidates,
    certificate: RTCCertificate,
    feeds: Arc<Feeds>,
}

/// The component a panic in answering is counted under.
const SIGNALLING: &str = "webrtc_peer";

impl Signalling {
    pub fn new(
        engine: Engine,
        candidates: Candidates,
        certificate: RTCCertificate,
        feeds: Arc<Feeds>,
    ) -> Result<Signalling, SfuError> {
        let lean = match engine {
            Engine::Lean => Some(Arc::new(lean_config(&candidates, &certificate)?)),
            Engine::Rtc => None,
        };
        Ok(Signalling {
            lean,
            candidates,
            certificate,
            feeds,
        })
    }

    /// The viewer `offer` makes, and its answer, following what the
    /// channel's source sends. A panic in it fails this offer alone.
    pub fn answer(&self, channel: &Arc<str>, offer: String) -> Result<Box<Answer>, SfuError> {
        let source = peer::SourceVideo {
            codec: self.feeds.codec(channel),
            profile: self.feeds.profile(channel),
        };
        let now = Instant::now();
        isolate::catch(
            SIGNALLING,
            &format_args!("offer for {channel}"),
            || match &self.lean {
                Some(config) => peer::answer_lean(0, channel.clone(), &offer, config, source, now),
                None => peer::answer_viewer(
                    0,
                    channel.clone(),
                    offer,
                    &self.candidates,
                    &self.certificate,
                    source,
                    now,
                ),
            },
        )
        .ok_or_else(|| SfuError::BadOffer("the offer could not be read".into()))?
        .map(Box::new)
    }
}

fn lean_config(
    candidates: &Candidates,
    certificate: &RTCCertificate,
) -> Result<session::Config, SfuError> {
    let provider = rtc::crypto::default_provider()
        .map_err(|e| SfuError::Internal(format!("crypto provider: {e}")))?;
    let udp = candidates.udp.iter().map(|a| (a, false));
    let tcp = candidates.tcp.iter().map(|a| (a, true));
    let candidates = udp
        .chain(tcp)
        .map(|(addr, tcp)| session::sdp::LocalCandidate { addr: *addr, tcp })
        .collect();
    session::Config::new(certificate, provider, candidates)
}
