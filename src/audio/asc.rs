//! Just enough of the AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) to refuse
//! what the decoder can't handle with a message a publisher can act on. The
//! decoder parses the ASC again itself; this pass exists for the error text.

use super::AudioError;

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

const AOT_LC: u8 = 2;
const AOT_SBR: u8 = 5;
const AOT_PS: u8 = 29;
/// Marks backward-compatible explicit SBR signalling after the GA config.
const SYNC_EXTENSION: u32 = 0x2b7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Asc {
    pub sample_rate: u32,
    pub channels: u8,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn left(&self) -> usize {
        self.data.len() * 8 - self.pos
    }

    fn read(&mut self, n: usize) -> Result<u32, AudioError> {
        if n > self.left() {
            return Err(AudioError::BadConfig("truncated".into()));
        }
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.data[self.pos / 8];
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }

    fn object_type(&mut self) -> Result<u8, AudioError> {
        let aot = self.read(5)? as u8;
        if aot == 31 {
            Ok(32 + self.read(6)? as u8)
        } else {
            Ok(aot)
        }
    }
}

/// Accepts AAC-LC with 1024-sample frames, mono or stereo, at a known rate.
pub(crate) fn parse(asc: &[u8]) -> Result<Asc, AudioError> {
    let mut b = Bits { data: asc, pos: 0 };
    let aot = b.object_type()?;
    let sfi = b.read(4)?;
    let sample_rate = if sfi == 15 {
        b.read(24)?
    } else {
        *SAMPLE_RATES
            .get(sfi as usize)
            .ok_or_else(|| AudioError::BadConfig(format!("reserved sampling index {sfi}")))?
    };
    let channels = b.read(4)? as u8;
    if aot == AOT_SBR || aot == AOT_PS {
        return Err(AudioError::HeAac(aot));
    }
    if aot != AOT_LC {
        return Err(AudioError::UnsupportedObjectType(aot));
    }
    if channels == 0 {
        return Err(AudioError::BadConfig(
            "channel configuration 0 (program config element) is not supported".into(),
        ));
    }
    if channels > 2 {
        // Configuration 7 is 7.1; the count is what the publisher recognises.
        let count = if channels == 7 { 8 } else { channels };
        return Err(AudioError::Channels(count));
    }
    if sample_rate == 0 {
        return Err(AudioError::BadConfig("sample rate 0".into()));
    }
    // GASpecificConfig: frameLengthFlag, dependsOnCoreCoder, extensionFlag.
    // Configs shorter than this are common in the wild (a bare 2 bytes has
    // room for frameLengthFlag only, and some muxers truncate), so a missing
    // flag means the default of 1024-sample frames.
    if b.left() >= 1 && b.read(1)? == 1 {
        return Err(AudioError::BadConfig(
            "960-sample AAC frames are not supported".into(),
        ));
    }
    if b.left() >= 2 {
        b.read(2)?;
    }
    // Backward-compatible HE-AAC signalling hides SBR behind an LC header;
    // the decoder would refuse it with a vaguer message.
    if b.left() >= 16 && b.read(11)? == SYNC_EXTENSION {
        let ext = b.object_type()?;
        if ext == AOT_SBR && b.left() >= 1 && b.read(1)? == 1 {
            return Err(AudioError::HeAac(AOT_SBR));
        }
    }
    Ok(Asc {
        sample_rate,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asc(aot: u8, sfi: u8, ch: u8) -> [u8; 2] {
        [(aot << 3) | (sfi >> 1), ((sfi & 1) << 7) | (ch << 3)]
    }

    #[test]
    fn table() {
        let ok = |b: &[u8]| parse(b).map_err(|e| e.to_string());
        assert_eq!(
            ok(&asc(2, 3, 2)),
            Ok(Asc {
                sample_rate: 48000,
                channels: 2
            })
        );
        assert_eq!(
            ok(&asc(2, 4, 1)),
            Ok(Asc {
                sample_rate: 44100,
                channels: 1
            })
        );
        assert!(matches!(parse(&asc(5, 3, 2)), Err(AudioError::HeAac(5))));
        assert!(matches!(parse(&asc(29, 3, 2)), Err(AudioError::HeAac(29))));
        assert!(matches!(
            parse(&asc(1, 3, 2)),
            Err(AudioError::UnsupportedObjectType(1))
        ));
        assert!(matches!(parse(&asc(2, 3, 6)), Err(AudioError::Channels(6))));
        assert!(matches!(parse(&asc(2, 3, 7)), Err(AudioError::Channels(8))));
        assert!(matches!(
            parse(&asc(2, 3, 0)),
            Err(AudioError::BadConfig(_))
        ));
        assert!(matches!(
            parse(&asc(2, 13, 2)),
            Err(AudioError::BadConfig(_))
        ));
        assert!(matches!(parse(&[0x12]), Err(AudioError::BadConfig(_))));
        assert!(matches!(parse(&[]), Err(AudioError::BadConfig(_))));
        // 960-sample frames.
        let mut b = asc(2, 3, 2);
        b[1] |= 0x04;
        assert!(matches!(parse(&b), Err(AudioError::BadConfig(_))));
        // LC 44.1 kHz stereo + sync extension 0x2b7, SBR, sbrPresentFlag=1.
        assert!(matches!(
            parse(&[0x12, 0x10, 0x56, 0xe5, 0x80]),
            Err(AudioError::HeAac(5))
        ));
        // Same, sbrPresentFlag=0: plain LC.
        assert!(parse(&[0x12, 0x10, 0x56, 0xe5, 0x00]).is_ok());
    }
}
