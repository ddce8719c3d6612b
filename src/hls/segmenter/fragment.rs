//! Closing parts and segments: each part's units become one fMP4 fragment
//! (`moof` + `mdat`), and the events the playlist and recorder read.

use super::*;

impl Segmenter {
    pub(super) fn close_part(&mut self, end: i64, out: &mut Vec<Event>) {
        let Some(part) = self.part.take() else { return };
        let Some(seg) = self.segment.as_mut() else {
            return;
        };
        let index = seg.next_part;
        seg.next_part += 1;
        let msn = seg.msn;
        let bytes = self.build_fragment(&part, end);
        out.push(Event::Part(Arc::new(Part {
            msn,
            index,
            start: part.start,
            duration: (end - part.start).max(0) as f64 / CLOCK_RATE as f64,
            independent: part.independent,
            bytes,
        })));
    }

    pub(super) fn close_segment(&mut self, end: i64, out: &mut Vec<Event>) {
        if let Some(seg) = self.segment.take() {
            out.push(Event::SegmentEnd {
                msn: seg.msn,
                duration: (end - seg.start).max(0) as f64 / CLOCK_RATE as f64,
            });
        }
    }

    fn build_fragment(&mut self, part: &PartBuf, end: i64) -> Bytes {
        let mut video = Run {
            track_id: VIDEO_TRACK_ID,
            base_decode_time: 0,
            samples: Vec::new(),
        };
        let mut audio = Run {
            track_id: AUDIO_TRACK_ID,
            base_decode_time: 0,
            samples: Vec::new(),
        };
        let vids: Vec<&Placed> = part
            .units
            .iter()
            .filter(|p| p.unit.kind() == MediaKind::Video)
            .collect();
        for (i, p) in vids.iter().enumerate() {
            let u = &p.unit;
            let next = vids.get(i + 1).map(|n| n.dts).unwrap_or(end);
            if i == 0 {
                video.base_decode_time = p.dts.max(0) as u64;
            }
            let Payload::H264(nalus) = &u.payload else {
                continue;
            };
            let mut data = Vec::with_capacity(nalus.len() * 2);
            for n in nalus {
                // Parameter sets live in avcC; AUDs are useless in MP4.
                if matches!(crate::codec::h264::nal_type(n), Some(7..=9) | None) {
                    continue;
                }
                data.push(Bytes::copy_from_slice(&(n.len() as u32).to_be_bytes()));
                data.push(n.clone());
            }
            video.samples.push(Sample {
                // Output decode times are strictly increasing and step by
                // at most a second (see the table), so this fits.
                duration: (next - p.dts).clamp(0, u32::MAX as i64) as u32,
                cts_offset: (u.pts - u.dts).clamp(0, MAX_CTS_TICKS) as i32,
                sync: u.keyframe,
                data,
            });
        }
        let rate = self.tracks.audio_timescale() as i128;
        // A gap in the audio stretches the sample before it, by at most a
        // second of samples; beyond that the run just goes on.
        let max_stretch = rate as u64;
        for p in part
            .units
            .iter()
            .filter(|p| p.unit.kind() == MediaKind::Audio)
        {
            let Payload::Aac(frame) = &p.unit.payload else {
                continue;
            };
            // i128: an explicit AudioSpecificConfig rate (up to 2^24 Hz)
            // times a 2^47-tick time does not fit an i64.
            let measured = (p.dts.max(0) as i128 * rate / CLOCK_RATE as i128) as u64;
            // Keep the sample clock unless the publisher's time disagrees by
            // more than half a frame (a real gap or overlap).
            let mut t = match self.audio_next {
                Some(n) if n.abs_diff(measured) < AAC_FRAME_SAMPLES / 2 => n,
                _ => measured,
            };
            if audio.samples.is_empty() {
                audio.base_decode_time = t;
            } else {
                // Samples in a run are contiguous: the previous one lasts
                // until this one, and one that comes early is placed right
                // after it.
                let prev_end = audio.base_decode_time
                    + audio.samples.iter().map(|s| s.duration as u64).sum::<u64>();
                if t > prev_end {
                    let stretch = (t - prev_end).min(max_stretch);
                    if let Some(s) = audio.samples.last_mut() {
                        s.duration += stretch as u32;
                    }
                    t = prev_end + stretch;
                } else {
                    t = prev_end;
                }
            }
            audio.samples.push(Sample {
                duration: AAC_FRAME_SAMPLES as u32,
                cts_offset: 0,
                sync: true,
                data: vec![frame.clone()],
            });
            self.audio_next = Some(t + AAC_FRAME_SAMPLES);
        }
        self.fragment_seq = self.fragment_seq.wrapping_add(1);
        fmp4::fragment(self.fragment_seq, &[video, audio])
    }
}
