//! Profile pictures: an uploaded PNG, JPEG or WebP is decoded under
//! limits, cropped square and re-encoded as PNG at [`SIZES`]. Only the
//! re-encoded pictures are kept and served, never the upload's bytes.
//! Users without one get a generated picture (their initial on a colour).

use crate::auth::rate::{Rate, RateLimiter};
use crate::db::Db;
use crate::store::{Store, StoreError};
use bytes::Bytes;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Largest upload: a phone photo is 1-5 MB, so people scale down first;
/// a profile picture needs far less.
pub const MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024;
/// Largest width or height decoded. A header can claim anything; this is
/// checked before any pixel is.
pub const MAX_DIMENSION: u32 = 4096;
/// Most memory one decode may take (a 4096x4096 RGBA picture).
pub const MAX_DECODE_BYTES: u64 = 64 * 1024 * 1024;
/// Decodes at once: each can take [`MAX_DECODE_BYTES`] and a core.
pub const MAX_CONCURRENT_DECODES: usize = 2;
/// How long an upload waits for a decode slot before a 503.
pub const DECODE_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// The square sizes kept, in pixels.
pub const SIZES: [u32; 2] = [64, 256];
/// Uploads and removals per account.
pub const CHANGES_PER_ACCOUNT: Rate = Rate {
    burst: 5,
    every: Duration::from_secs(60),
};

#[derive(Debug, thiserror::Error)]
pub enum AvatarError {
    #[error("not a PNG, JPEG or WebP picture")]
    Format,
    #[error("the picture is larger than {MAX_DIMENSION}x{MAX_DIMENSION} pixels or {} MiB decoded", MAX_DECODE_BYTES >> 20)]
    TooLarge,
    #[error("the picture cannot be decoded: {0}")]
    Corrupt(String),
    #[error("too many pictures being processed; try again shortly")]
    Busy,
    #[error("too many picture changes; try again in {0} s")]
    RateLimited(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// Decodes `bytes` and renders them at each of [`SIZES`], as PNG. Pure
/// and bounded: what a hostile upload can cost is [`MAX_DECODE_BYTES`] of
/// memory and one decode of at most [`MAX_DIMENSION`] squared pixels.
pub fn render(bytes: &[u8]) -> Result<Vec<Vec<u8>>, AvatarError> {
    let image = decode(bytes, MAX_DIMENSION)?;
    let (w, h) = (image.width(), image.height());
    let side = w.min(h);
    if side == 0 {
        return Err(AvatarError::Corrupt("empty picture".into()));
    }
    let square = image.crop_imm((w - side) / 2, (h - side) / 2, side, side);
    SIZES
        .iter()
        .map(|&size| {
            // thumbnail_exact averages areas: it is fast for any ratio and
            // does not alias the way point sampling does.
            let small = square.thumbnail_exact(size, size).into_rgba8();
            let mut png = Vec::new();
            small
                .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
                .map_err(|e| AvatarError::Corrupt(e.to_string()))?;
            Ok(png)
        })
        .collect()
}

/// Decodes `bytes` as an upload is, with at most `max_side` pixels a side,
/// and returns the upright picture's size: the part of [`render`] that
/// reads a stranger's bytes (the fuzz target's, with a small side so a run
/// tries many inputs rather than a few of the largest size).
pub fn probe(bytes: &[u8], max_side: u32) -> Result<(u32, u32), AvatarError> {
    let image = decode(bytes, max_side.min(MAX_DIMENSION))?;
    Ok((image.width(), image.height()))
}

fn decode(bytes: &[u8], max_side: u32) -> Result<DynamicImage, AvatarError> {
    // The format comes from the bytes, never from what the client says.
    let format = image::guess_format(bytes).map_err(|_| AvatarError::Format)?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP
    ) {
        return Err(AvatarError::Format);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    // Phones store photos sideways with an EXIF note to turn them.
    let orientation = decoder.orientation().map_err(classify)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn classify(e: ImageError) -> AvatarError {
    match e {
        ImageError::Limits(_) => AvatarError::TooLarge,
        ImageError::Unsupported(_) => AvatarError::Format,
        e => AvatarError::Corrupt(e.to_string()),
    }
}

/// The stored picture of a user's avatar version at one size.
pub fn key(user_id: i64, version: i64, size: u32) -> String {
    format!("avatars/{user_id}/{version}-{size}.png")
}

/// The generated picture for a user without one: the first letter of the
/// name on a colour picked from the name. Only an ASCII letter or digit
/// is ever written into the SVG.
pub fn placeholder(username: &str) -> String {
    let initial = username
        .chars()
        .next()
        .filter(char::is_ascii_alphanumeric)
        .map_or('?', |c| c.to_ascii_uppercase());
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let hash = username.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let hue = hash % 360;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\" viewBox=\"0 0 64 64\">\
         <rect width=\"64\" height=\"64\" fill=\"hsl({hue},45%,42%)\"/>\
         <text x=\"32\" y=\"43\" font-family=\"sans-serif\" font-size=\"30\" \
         font-weight=\"600\" text-anchor=\"middle\" fill=\"#fff\">{initial}</text></svg>"
    )
}

/// Uploads and removals: decoding bounded in concurrency, changes
/// limited per account, and the pictures in the store.
pub struct Avatars {
    db: Db,
    store: Store,
    decodes: Arc<Semaphore>,
    changes: RateLimiter<i64>,
}

impl Avatars {
    pub fn new(db: Db, store: Store) -> Avatars {
        Avatars {
            db,
            store,
            decodes: Arc::new(Semaphore::new(MAX_CONCURRENT_DECODES)),
            changes: RateLimiter::new("avatar_changes", CHANGES_PER_ACCOUNT),
        }
    }

    /// Makes `bytes` the user's picture; returns its version. The new
    /// pictures are stored under a new version before the account points
    /// at them, and the old ones removed after: a failure at any step
    /// leaves the previous picture in place.
    pub async fn set(&self, user_id: i64, bytes: Bytes) -> Result<i64, AvatarError> {
        self.allow(user_id)?;
        let permit = tokio::time::timeout(DECODE_QUEUE_WAIT, self.decodes.clone().acquire_owned())
            .await
            .map_err(|_| AvatarError::Busy)?
            .map_err(|_| AvatarError::Busy)?;
        let rendered = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            render(&bytes)
        })
        .await
        .map_err(|e| AvatarError::Corrupt(format!("decoder failed: {e}")))??;
        let version = new_version();
        for (png, size) in rendered.into_iter().zip(SIZES) {
            if let Err(e) = self
                .store
                .put(&key(user_id, version, size), png.into())
                .await
            {
                self.remove_files(user_id, version).await;
                return Err(e.into());
            }
        }
        match self.db.set_avatar_version(user_id, version).await {
            Ok(old) => {
                self.remove_files(user_id, old).await;
                Ok(version)
            }
            Err(e) => {
                self.remove_files(user_id, version).await;
                Err(e.into())
            }
        }
    }

    /// Back to the generated picture.
    pub async fn remove(&self, user_id: i64) -> Result<(), AvatarError> {
        self.allow(user_id)?;
        let old = self.db.set_avatar_version(user_id, 0).await?;
        self.remove_files(user_id, old).await;
        Ok(())
    }

    /// Removes the picture of a deleted account, with no rate limit: the
    /// account is gone either way, and only its files are at stake.
    pub async fn forget(&self, user_id: i64) {
        match self.db.set_avatar_version(user_id, 0).await {
            Ok(old) => self.remove_files(user_id, old).await,
            Err(e) => tracing::warn!(user_id, error = %e, "cannot clear an avatar"),
        }
    }

    /// The stored PNG of `version` at `size`.
    pub async fn get(
        &self,
        user_id: i64,
        version: i64,
        size: u32,
    ) -> Result<Option<Bytes>, StoreError> {
        self.store.get(&key(user_id, version, size)).await
    }

    fn allow(&self, user_id: i64) -> Result<(), AvatarError> {
        self.changes
            .check(&user_id, Instant::now())
            .map_err(|wait| AvatarError::RateLimited(wait.as_secs().max(1)))
    }

    async fn remove_files(&self, user_id: i64, version: i64) {
        if version == 0 {
            return;
        }
        for size in SIZES {
            if let Err(e) = self.store.delete(&key(user_id, version, size)).await {
                // Left behind, it costs disk but is never served.
                tracing::warn!(user_id, version, error = %e, "cannot remove an old avatar");
            }
        }
    }
}

/// A version no earlier upload of any account had: it names the files
/// and busts caches. Positive, so 0 stays "none".
fn new_version() -> i64 {
    (rand::random::<u64>() >> 12) as i64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, RgbaImage};

    fn encode(img: &RgbaImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(img.clone())
            .to_rgb8()
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    #[test]
    fn every_format_renders_square_at_each_size() {
        let img = RgbaImage::from_fn(300, 120, |x, _| image::Rgba([x as u8, 80, 160, 255]));
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP] {
            let out = render(&encode(&img, format)).unwrap();
            assert_eq!(out.len(), SIZES.len());
            for (png, size) in out.iter().zip(SIZES) {
                let back = image::load_from_memory_with_format(png, ImageFormat::Png).unwrap();
                assert_eq!((back.width(), back.height()), (size, size), "{format:?}");
            }
        }
    }

    #[test]
    fn a_header_claiming_huge_dimensions_is_refused_before_decoding() {
        // A real 1x1 PNG, then its IHDR rewritten to 60000x60000: a
        // decompression bomb's shape, refused on the header alone.
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&[0, 0, 0, 255], 1, 1, image::ExtendedColorType::Rgba8)
            .unwrap();
        png[16..20].copy_from_slice(&60000u32.to_be_bytes());
        png[20..24].copy_from_slice(&60000u32.to_be_bytes());
        let crc = crc32fast::hash(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(render(&png), Err(AvatarError::TooLarge)));
    }

    #[test]
    fn other_bytes_are_refused() {
        assert!(matches!(render(b"GIF89a...."), Err(AvatarError::Format)));
        assert!(matches!(render(b"<svg/>"), Err(AvatarError::Format)));
        assert!(matches!(render(b""), Err(AvatarError::Format)));
        let img = RgbaImage::from_pixel(40, 40, image::Rgba([1, 2, 3, 255]));
        let png = encode(&img, ImageFormat::Png);
        assert!(matches!(
            render(&png[..png.len() / 2]),
            Err(AvatarError::Corrupt(_))
        ));
    }

    #[test]
    fn placeholder_writes_only_a_letter() {
        assert!(placeholder("bob").contains(">B</text>"));
        assert!(placeholder("<x").contains(">?</text>"));
        assert_eq!(placeholder("ann"), placeholder("ann"));
    }
}
