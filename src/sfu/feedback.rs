//! What WebRTC viewers tell us in RTCP: keyframe requests (PLI, FIR), NACKs,
//! receiver reports, REMB and TWCC feedback. The stock interceptor chain consumes RTCP;
//! [`DeliverRtcp`] lets the driver see it too, for upstream keyframe
//! requests, NACK answers from the channel's one buffer
//! (`super::retransmit`), congestion control and metrics.

use super::congestion::WINDOW;
use super::congestion::{Controller, Level};
use super::twcc::TwccLog;
use rtc::interceptor::{Attribute, Interceptor, Packet as Tagged, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::time::Instant;

/// Where the driver's RTCP tap sits in a viewer's chain (it is the only
/// interceptor a viewer has; see `peer::answer_viewer`).
pub const SLOT: usize = 14_000;

/// Marks inbound RTCP for the application; passes everything through.
#[derive(Default)]
pub struct DeliverRtcp {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for DeliverRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;
    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if matches!(msg.message.packet, Tagged::Rtcp(_)) {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
}

impl Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// What one batch of a viewer's RTCP asks of the driver.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The viewer lost a picture it cannot rebuild from NACKs.
    pub wants_keyframe: bool,
    /// The viewer's level changed.
    pub level: Option<Level>,
    /// Video sequence numbers (the viewer's) it asked to have resent.
    pub nacked: Vec<u16>,
}

/// Reads one compound RTCP packet from a viewer whose video goes out on
/// `video_ssrc`, with the send times of its packets in `twcc`;
/// `stream_bps` is the channel's full video bitrate.
pub fn on_viewer_rtcp(
    controller: &mut Controller,
    twcc: &mut TwccLog,
    video_ssrc: Option<u32>,
    packets: &[Box<dyn rtc::rtcp::Packet>],
    stream_bps: f64,
    now: Instant,
) -> Outcome {
    let mut out = Outcome::default();
    let mut read_twcc = false;
    for p in packets {
        let any = p.as_any();
        if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
            crate::metrics::pli_received();
            out.wants_keyframe = true;
        } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            let lost: u64 = nack
                .nacks
                .iter()
                .map(|n| 1 + u64::from(n.lost_packets.count_ones()))
                .sum();
            crate::metrics::nacks_received(lost);
            if Some(nack.media_ssrc) == video_ssrc {
                super::retransmit::nacked(nack, &mut out.nacked);
            }
        } else if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
            crate::metrics::twcc_feedback_received();
            // Browsers send one per compound packet; more is a peer
            // making work.
            if read_twcc {
                continue;
            }
            read_twcc = true;
            if let Some(w) = twcc.on_feedback(cc, WINDOW, now) {
                controller.on_transport_window(w, now);
            }
        } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            controller.on_remb(f64::from(remb.bitrate));
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            let video = rr.reports.iter().find(|r| Some(r.ssrc) == video_ssrc);
            let before = controller.level();
            let change = match video {
                Some(r) => {
                    tracing::trace!(
                        total_lost = r.total_lost,
                        highest = r.last_sequence_number,
                        remb = ?controller.remb(),
                        stream_bps,
                        "viewer report"
                    );
                    controller.on_report(r.total_lost, r.last_sequence_number, stream_bps, now)
                }
                None => controller.on_quiet_report(stream_bps, now),
            };
            if let Some(level) = change {
                crate::metrics::quality_change(level > before);
                out.level = Some(level);
            }
        }
    }
    out
}
