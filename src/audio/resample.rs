//! A streaming polyphase windowed-sinc resampler for fixed rational ratios.
//!
//! AAC arrives at 44.1, 32, 22.05 kHz and friends; Opus wants 48 kHz. The
//! ratio `to / from` reduces to `up / down` with `up` at most 640 for every
//! AAC rate, so one precomputed filter per phase is small (about 100 KB at
//! worst) and each output sample costs one short dot product.
//!
//! Output sample `n` sits exactly at input time `n * down / up` (no added
//! delay), so callers can map timestamps by sample counts alone. The price
//! is `HALF_TAPS` input samples of lookahead held back between calls.
//! History is kept across calls, so chunk boundaries are inaudible: output is
//! identical however the input is split.

/// Zero crossings of the sinc on each side of the centre, at the filter's
/// cutoff. 24 gives a transition band narrow enough that everything below
/// ~19 kHz passes flat when upsampling 44.1 kHz.
const HALF_TAPS: usize = 24;
/// Kaiser window shape: about 80 dB stopband.
const KAISER_BETA: f64 = 8.0;
/// Cutoff as a fraction of the lower of the two Nyquist frequencies; the
/// rest is transition band.
const CUTOFF: f64 = 0.92;
/// Keeps the phase table bounded for odd explicit sample rates.
const MAX_PHASES: usize = 1024;

/// Converts planar f32 audio from one rate to another, one instance per
/// stream. See the module doc for the timing guarantee.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: usize,
    down: usize,
    /// Input samples each side of the centre the filter reaches.
    half: usize,
    /// `up` phases of `2 * half` coefficients each.
    table: Vec<f32>,
    /// Per channel: input not yet fully consumed, starting `half - 1` samples
    /// before the current centre.
    hist: Vec<Vec<f32>>,
    /// Index in `hist` of the input sample at or before the next output.
    centre: usize,
    /// Fractional position of the next output, in `1 / up` input samples.
    phase: usize,
}

impl Resampler {
    /// `None` when the rates are zero or their reduced ratio needs more than
    /// [`MAX_PHASES`] filter phases (a 24-bit explicit AAC rate can).
    pub fn new(from: u32, to: u32, channels: usize) -> Option<Self> {
        if from == 0 || to == 0 || channels == 0 {
            return None;
        }
        let g = gcd(from, to);
        let up = (to / g) as usize;
        let down = (from / g) as usize;
        if up > MAX_PHASES {
            return None;
        }
        // Downsampling moves the cutoff below the input's Nyquist, so the
        // filter must reach further in input samples for the same quality.
        let fc = CUTOFF * (up as f64 / down as f64).min(1.0);
        let half = (HALF_TAPS as f64 / fc * CUTOFF).ceil() as usize;
        let taps = 2 * half;
        let mut table = Vec::with_capacity(up * taps);
        for p in 0..up {
            let frac = p as f64 / up as f64;
            let start = table.len();
            for k in 0..taps {
                // Tap k multiplies input sample centre - half + 1 + k.
                let x = (k as f64 - (half as f64 - 1.0)) - frac;
                table.push((fc * sinc(fc * x) * kaiser(x / half as f64)) as f32);
            }
            // Normalise each phase to unity DC gain, so a constant input
            // stays constant instead of rippling at the phase rate.
            let sum: f32 = table[start..].iter().sum();
            if sum.abs() > f32::EPSILON {
                table[start..].iter_mut().for_each(|c| *c /= sum);
            }
        }
        let mut r = Resampler {
            up,
            down,
            half,
            table,
            hist: vec![Vec::new(); channels],
            centre: 0,
            phase: 0,
        };
        r.reset();
        Some(r)
    }

    pub fn channels(&self) -> usize {
        self.hist.len()
    }

    /// Forgets all history: the next input sample is time zero again.
    pub fn reset(&mut self) {
        for h in &mut self.hist {
            h.clear();
            // Silence before the first sample, so output 0 can be centred on
            // input 0.
            h.resize(self.half - 1, 0.0);
        }
        self.centre = self.half - 1;
        self.phase = 0;
    }

    /// Output samples `process` will produce for `input_len` more input
    /// samples per channel, give or take one.
    pub fn output_len_hint(&self, input_len: usize) -> usize {
        input_len * self.up / self.down + 1
    }

    /// Consumes `input` (one slice per channel, equal lengths) and appends
    /// the output it allows to `out` (one vector per channel). Extra input
    /// channels are ignored, missing ones read as silence.
    pub fn process(&mut self, input: &[&[f32]], out: &mut [Vec<f32>]) {
        let len = input.iter().map(|c| c.len()).min().unwrap_or(0);
        for (ch, h) in self.hist.iter_mut().enumerate() {
            match input.get(ch) {
                Some(src) => h.extend_from_slice(&src[..len]),
                None => h.resize(h.len() + len, 0.0),
            }
        }
        let avail = self.hist.first().map_or(0, Vec::len);
        let taps = 2 * self.half;
        let (mut centre, mut phase) = (self.centre, self.phase);
        // The last tap of output at `centre` reads hist[centre + half].
        while centre + self.half < avail {
            let coefs = &self.table[phase * taps..(phase + 1) * taps];
            let first = centre + 1 - self.half;
            for (h, o) in self.hist.iter().zip(out.iter_mut()) {
                let window = &h[first..first + taps];
                o.push(dot(coefs, window));
            }
            phase += self.down;
            centre += phase / self.up;
            phase %= self.up;
        }
        // Drop input no future output reaches.
        let drop = (centre + 1 - self.half).min(avail);
        for h in &mut self.hist {
            h.drain(..drop);
        }
        self.centre = centre - drop;
        self.phase = phase;
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four accumulators let the compiler vectorise without fast-math.
    let mut acc = [0.0f32; 4];
    let (ca, ra) = a.split_at(a.len() / 4 * 4);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(4).zip(cb.chunks_exact(4)) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-9 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Kaiser window over [-1, 1], zero outside.
fn kaiser(t: f64) -> f64 {
    if t.abs() >= 1.0 {
        return 0.0;
    }
    bessel_i0(KAISER_BETA * (1.0 - t * t).sqrt()) / bessel_i0(KAISER_BETA)
}

/// Modified Bessel function of the first kind, order 0, by its power series
/// (converges fast for the small arguments a window uses).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin() as f32)
            .collect()
    }

    fn run(r: &mut Resampler, input: &[f32], chunks: &[usize]) -> Vec<f32> {
        let mut out = vec![Vec::new()];
        let mut pos = 0;
        let mut i = 0;
        while pos < input.len() {
            let n = chunks[i % chunks.len()].min(input.len() - pos);
            r.process(&[&input[pos..pos + n]], &mut out);
            pos += n;
            i += 1;
        }
        out.pop().unwrap_or_default()
    }

    /// Largest error against the ideal sine at the output rate, after the
    /// first `skip` samples (where the primed silence still shows).
    fn max_err(out: &[f32], freq: f64, rate: u32, skip: usize) -> f32 {
        let ideal = sine(freq, rate, out.len());
        out.iter()
            .zip(&ideal)
            .skip(skip)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn upsamples_every_aac_rate_accurately_and_without_delay() {
        for from in [
            7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 64000, 88200, 96000,
        ] {
            let mut r = Resampler::new(from, 48000, 1).expect("supported ratio");
            let input = sine(1000.0, from, from as usize);
            let out = run(&mut r, &input, &[1024]);
            // One second in, one second out, minus the held-back lookahead.
            let expect = 48000;
            assert!(
                out.len() <= expect && out.len() + 48000 * r.half / from as usize + 2 >= expect,
                "{from}: {} samples",
                out.len()
            );
            // Matching the ideal 48 kHz sine sample by sample proves both the
            // filter's accuracy and that output time 0 is input time 0.
            let err = max_err(&out, 1000.0, 48000, 48000 * 2 * r.half / from as usize);
            assert!(err < 2e-3, "{from}: max error {err}");
        }
    }

    #[test]
    fn chunking_does_not_change_output() {
        let input = sine(440.0, 44100, 20000);
        let whole = run(
            &mut Resampler::new(44100, 48000, 1).unwrap(),
            &input,
            &[20000],
        );
        for chunks in [&[1][..], &[1024], &[7, 1, 300, 33], &[0, 5]] {
            let parts = run(
                &mut Resampler::new(44100, 48000, 1).unwrap(),
                &input,
                chunks,
            );
            assert_eq!(whole, parts, "chunks {chunks:?}");
        }
    }

    #[test]
    fn no_clicks_at_chunk_boundaries() {
        // A click is a jump far larger than a 440 Hz sine can make between
        // neighbouring samples (2*pi*440/48000 ~ 0.058).
        let input = sine(440.0, 44100, 44100);
        let out = run(
            &mut Resampler::new(44100, 48000, 1).unwrap(),
            &input,
            &[1024, 17],
        );
        let max_step = out
            .windows(2)
            .skip(100)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        assert!(max_step < 0.065, "max step {max_step}");
    }

    #[test]
    fn downsampling_rejects_what_the_output_cannot_hold() {
        // 30 kHz at 96 kHz would alias to 18 kHz at 48 kHz.
        let mut r = Resampler::new(96000, 48000, 1).unwrap();
        let out = run(&mut r, &sine(30000.0, 96000, 96000), &[1024]);
        let rms =
            (out[1000..].iter().map(|x| x * x).sum::<f32>() / (out.len() - 1000) as f32).sqrt();
        assert!(rms < 1e-3, "alias rms {rms}");
    }

    #[test]
    fn channels_stay_separate_and_reset_restarts_time() {
        let mut r = Resampler::new(32000, 48000, 2).unwrap();
        let left = sine(500.0, 32000, 3200);
        let right: Vec<f32> = left.iter().map(|x| -x).collect();
        let mut out = vec![Vec::new(), Vec::new()];
        r.process(&[&left, &right], &mut out);
        assert!(!out[0].is_empty());
        for (l, rr) in out[0].iter().zip(&out[1]) {
            assert!((l + rr).abs() < 1e-6);
        }
        r.reset();
        let mut again = vec![Vec::new(), Vec::new()];
        r.process(&[&left, &right], &mut again);
        assert_eq!(out, again);
    }

    #[test]
    fn refuses_unreasonable_ratios() {
        assert!(Resampler::new(0, 48000, 1).is_none());
        assert!(Resampler::new(44100, 48000, 0).is_none());
        assert!(Resampler::new(44099, 48000, 1).is_none());
    }
}
