use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Bit writer for crafting SPS that encoders here do not produce (scaling
/// matrices in the SPS, odd cropping).
#[derive(Default)]
struct BitWriter {
    bits: Vec<bool>,
}

impl BitWriter {
    fn u(&mut self, n: u32, v: u32) -> &mut Self {
        for i in (0..n).rev() {
            self.bits.push((v >> i) & 1 == 1);
        }
        self
    }
    fn ue(&mut self, v: u32) -> &mut Self {
        let x = u64::from(v) + 1;
        let len = 64 - x.leading_zeros();
        for _ in 0..len - 1 {
            self.bits.push(false);
        }
        for i in (0..len).rev() {
            self.bits.push((x >> i) & 1 == 1);
        }
        self
    }
    fn se(&mut self, v: i32) -> &mut Self {
        let k = if v > 0 { 2 * v - 1 } else { -2 * v };
        self.ue(k as u32)
    }
    fn bytes(&mut self) -> Vec<u8> {
        self.u(1, 1); // rbsp_stop_one_bit
        while self.bits.len() % 8 != 0 {
            self.bits.push(false);
        }
        self.bits
            .chunks(8)
            .map(|c| c.iter().fold(0u8, |a, b| (a << 1) | u8::from(*b)))
            .collect()
    }
}

/// A High profile SPS with every scaling list present (exercising
/// scaling_list()), pic_order_cnt_type 1 and 4:2:0 cropping.
fn crafted_scaling_sps() -> Vec<u8> {
    let mut w = BitWriter::default();
    w.u(8, 100).u(8, 0).u(8, 40).ue(0); // profile, flags, level, sps id
    w.ue(1).ue(0).ue(0).u(1, 0); // chroma 4:2:0, 8-bit, no bypass
    w.u(1, 1); // seq_scaling_matrix_present_flag
    for i in 0..8 {
        w.u(1, 1);
        let size = if i < 6 { 16 } else { 64 };
        // Deltas of +1 walk lastScale up from 8; a delta back to 0
        // (nextScale 0) ends the list early, as 7.3.2.1.1.1 allows.
        for j in 0..size {
            if j == size / 2 {
                w.se(-(8 + j));
                break;
            }
            w.se(1);
        }
    }
    w.ue(0).ue(1); // log2_max_frame_num_minus4, poc type 1
    w.u(1, 0).se(-1).se(2).ue(2).se(3).se(-3);
    w.ue(4).u(1, 0); // max_num_ref_frames, gaps
    w.ue(119).ue(67); // 1920 x 1088
    w.u(1, 1).u(1, 1); // frame_mbs_only, direct_8x8
    w.u(1, 1).ue(0).ue(0).ue(0).ue(4); // crop bottom 8 rows
    w.u(1, 0); // no VUI
    let mut nal = vec![0x67];
    // Insert emulation prevention where the RBSP has 00 00 0x (x <= 3).
    let mut zeros = 0;
    for b in w.bytes() {
        if zeros >= 2 && b <= 3 {
            nal.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        nal.push(b);
    }
    nal
}

struct SpsCase {
    name: &'static str,
    nal: Vec<u8>,
    profile_idc: u8,
    constraint_flags: u8,
    level_idc: u8,
    width: u32,
    height: u32,
    frame_mbs_only: bool,
}

/// SPS from libx264 (ffmpeg 5.1 here) plus a crafted one. The x264 ones
/// carry emulation prevention bytes and VUI, which the parser must stop
/// before.
fn sps_cases() -> Vec<SpsCase> {
    let c = |name, h: &str, p, f, l, w, ht, fmo| SpsCase {
        name,
        nal: hex(h),
        profile_idc: p,
        constraint_flags: f,
        level_idc: l,
        width: w,
        height: ht,
        frame_mbs_only: fmo,
    };
    let mut v = vec![
        c(
            "x264 baseline 720p",
            "6742c01fd9005005bb0110000003001000000303c0f1832480",
            66,
            0xc0,
            31,
            1280,
            720,
            true,
        ),
        c(
            "x264 main 360p (cropped)",
            "674d401eeca05017fcb80880000003008000001e078b16cb",
            77,
            0x40,
            30,
            640,
            360,
            true,
        ),
        c(
            "x264 high 1080p (cropped)",
            "67640028acd940780227e5c044000003000400000300f03c60c658",
            100,
            0,
            40,
            1920,
            1080,
            true,
        ),
        c(
            "x264 high 4:4:4 1080p",
            "67f40028919b280f0044fc4e0220000003002000000781e30632c0",
            244,
            0,
            40,
            1920,
            1080,
            true,
        ),
        c(
            "x264 high 4:2:2 720p",
            "677a001fbcd9405005bb0110000003001000000303c0f1831960",
            122,
            0,
            31,
            1280,
            720,
            true,
        ),
        c(
            "x264 interlaced 1080i",
            "67640028acd94078044fde0220000003002000000783e2c5b2c0",
            100,
            0,
            40,
            1920,
            1080,
            false,
        ),
        c(
            "x264 odd size 322x242",
            "6764000dacd94150878888c044000003000400000300f03c50a658",
            100,
            0,
            13,
            322,
            242,
            true,
        ),
    ];
    v.push(SpsCase {
        name: "crafted scaling lists + poc type 1",
        nal: crafted_scaling_sps(),
        profile_idc: 100,
        constraint_flags: 0,
        level_idc: 40,
        width: 1920,
        height: 1080,
        frame_mbs_only: true,
    });
    v
}

#[test]
fn sps_decode_table() {
    for case in sps_cases() {
        let sps = parse_sps(&case.nal).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            (sps.profile_idc, sps.constraint_flags, sps.level_idc),
            (case.profile_idc, case.constraint_flags, case.level_idc),
            "{}",
            case.name
        );
        assert_eq!(
            (sps.width, sps.height),
            (case.width, case.height),
            "{}",
            case.name
        );
        assert_eq!(sps.frame_mbs_only, case.frame_mbs_only, "{}", case.name);
    }
}

#[test]
fn sps_truncations_are_errors() {
    for case in sps_cases() {
        for cut in 0..case.nal.len().min(12) {
            // Short prefixes must fail cleanly; none may panic.
            let _ = parse_sps(&case.nal[..cut]);
        }
        assert!(parse_sps(&case.nal[..4]).is_err(), "{}", case.name);
    }
    assert!(parse_sps(&[0x68, 1, 2, 3]).is_err(), "a PPS is not an SPS");
    assert!(parse_sps(&[]).is_err());
}

#[test]
fn emulation_prevention_removed() {
    let cases: &[(&[u8], &[u8])] = &[
        (&[0, 0, 3, 1], &[0, 0, 1]),
        (&[0, 0, 3, 0, 0, 3], &[0, 0, 0, 0]),
        (&[0, 3, 0], &[0, 3, 0]),
        (&[1, 2, 3], &[1, 2, 3]),
    ];
    for (input, want) in cases {
        assert_eq!(nal_to_rbsp(input), *want, "{input:?}");
    }
}

struct AvccCase {
    name: &'static str,
    data: &'static [u8],
    length_size: u8,
    want: Result<Vec<&'static [u8]>, ()>,
}

fn avcc_cases() -> Vec<AvccCase> {
    vec![
        AvccCase {
            name: "two NALs, 4-byte lengths",
            data: &[0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x06],
            length_size: 4,
            want: Ok(vec![&[0x65, 1], &[0x06]]),
        },
        AvccCase {
            name: "2-byte lengths",
            data: &[0, 1, 0x41, 0, 2, 0x41, 2],
            length_size: 2,
            want: Ok(vec![&[0x41], &[0x41, 2]]),
        },
        AvccCase {
            name: "1-byte lengths",
            data: &[1, 0x41],
            length_size: 1,
            want: Ok(vec![&[0x41]]),
        },
        AvccCase {
            name: "zero-length NAL skipped",
            data: &[0, 0, 0, 0, 0, 0, 0, 1, 0x09],
            length_size: 4,
            want: Ok(vec![&[0x09]]),
        },
        AvccCase {
            name: "empty",
            data: &[],
            length_size: 4,
            want: Ok(vec![]),
        },
        AvccCase {
            name: "length past end",
            data: &[0, 0, 0, 5, 0x65, 1],
            length_size: 4,
            want: Err(()),
        },
        AvccCase {
            name: "huge length",
            data: &[0xff, 0xff, 0xff, 0xff, 0x65],
            length_size: 4,
            want: Err(()),
        },
        AvccCase {
            name: "truncated prefix",
            data: &[0, 0, 0, 1, 0x65, 0, 0],
            length_size: 4,
            want: Err(()),
        },
        AvccCase {
            name: "length size 3",
            data: &[0, 0, 1, 0x65],
            length_size: 3,
            want: Err(()),
        },
    ]
}

#[test]
fn avcc_split_table() {
    for case in avcc_cases() {
        let got = split_avcc(&Bytes::from_static(case.data), case.length_size);
        match (&got, &case.want) {
            (Ok(got), Ok(want)) => {
                let got: Vec<&[u8]> = got.iter().map(|b| b.as_ref()).collect();
                assert_eq!(&got, want, "{}", case.name);
            }
            (Err(_), Err(())) => {}
            _ => panic!("{}: got {got:?}", case.name),
        }
    }
}

#[test]
fn avcc_roundtrip_and_too_many_nalus() {
    let nalus = vec![
        Bytes::from_static(&[0x67, 1]),
        Bytes::from_static(&[0x65, 2, 3]),
    ];
    let joined = Bytes::from(join_avcc(&nalus));
    assert_eq!(split_avcc(&joined, 4).unwrap(), nalus);
    let many: Vec<u8> = std::iter::repeat_n([1u8, 0x41], MAX_NALUS_PER_AU + 1)
        .flatten()
        .collect();
    assert!(split_avcc(&Bytes::from(many), 1).is_err());
}

#[test]
fn annexb_split_table() {
    type Case = (
        &'static str,
        &'static [u8],
        Option<&'static [&'static [u8]]>,
    );
    let cases: &[Case] = &[
        (
            "4-byte and 3-byte start codes",
            &[0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2],
            Some(&[&[0x67, 1], &[0x68, 2]]),
        ),
        (
            "trailing zeros stripped",
            &[0, 0, 1, 0x65, 5, 0, 0, 0, 0, 1, 0x41],
            Some(&[&[0x65, 5], &[0x41]]),
        ),
        ("empty", &[], Some(&[])),
        ("no start code", &[0x65, 1, 2], None),
        ("junk before start code", &[7, 0, 0, 1, 0x65], None),
    ];
    for (name, data, want) in cases {
        let got = split_annexb(&Bytes::from_static(data));
        match (got, want) {
            (Ok(got), Some(want)) => {
                let got: Vec<&[u8]> = got.iter().map(|b| b.as_ref()).collect();
                assert_eq!(&got, want, "{name}");
            }
            (Err(_), None) => {}
            (got, _) => panic!("{name}: got {got:?}"),
        }
    }
}

/// The sequence header ffmpeg/libx264 sends for the baseline 720p case.
fn x264_config_record() -> Vec<u8> {
    let sps = hex("6742c01fd9005005bb0110000003001000000303c0f1832480");
    let pps = hex("68cb83cb20");
    let mut v = vec![1, 0x42, 0xc0, 0x1f, 0xff, 0xe1];
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(&sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(&pps);
    v
}

#[test]
fn config_record_table() {
    let good = x264_config_record();
    let ok = parse_avc_decoder_config(&Bytes::from(good.clone())).unwrap();
    assert_eq!(ok.nal_length_size, 4);
    assert_eq!((ok.sps.len(), ok.pps.len()), (1, 1));
    assert_eq!(parse_sps(&ok.sps[0]).unwrap().width, 1280);

    let mut bad_version = good.clone();
    bad_version[0] = 0;
    let mut len3 = good.clone();
    len3[4] = 0xfe;
    let mut sps_len_past_end = good.clone();
    sps_len_past_end[7] = 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("version 0", bad_version),
        ("3-byte lengths", len3),
        ("sps length past end", sps_len_past_end),
        ("missing pps count", good[..good.len() - 8].to_vec()),
        ("cut in pps", good[..good.len() - 2].to_vec()),
        ("empty", vec![]),
    ];
    for (name, data) in cases {
        assert!(
            parse_avc_decoder_config(&Bytes::from(data)).is_err(),
            "{name}"
        );
    }
    for cut in 0..good.len() {
        let _ = parse_avc_decoder_config(&Bytes::copy_from_slice(&good[..cut]));
    }
}
