//! Where stored objects live (avatars, finished recordings): named blobs,
//! written whole or not at all. One interface over the backends a deployment can choose, so
//! the code that stores things does not care which: the data directory
//! (`file://`, the default) or an S3-compatible bucket (`s3://`).

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Longest key: far above any we make, and a bound on the paths built.
pub const MAX_KEY: usize = 256;
/// One request to the bucket, connection included; a request that is
/// slower fails (and is retried, within [`S3_RETRY_WITHIN`]).
pub const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an operation may keep retrying: an answer to a person waits
/// on it.
pub const S3_RETRY_WITHIN: Duration = Duration::from_secs(20);
/// Largest object read back: ours are pictures of a few hundred KB and
/// recording segments of at most `hls::segmenter::MAX_SEGMENT_BYTES` (16
/// MiB), so a bucket answering with more is not answering about ours.
pub const MAX_OBJECT_BYTES: usize = 16 * 1024 * 1024;
/// Objects removed by one [`Store::delete_prefix`]: a recording of the
/// longest broadcast has a few thousand files, and a prefix holding more
/// is not one of ours.
pub const MAX_PREFIX_OBJECTS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid object key {0:?}")]
    BadKey(String),
    #[error("object store: {0}")]
    Io(#[from] io::Error),
    #[error("object store: {0}")]
    Remote(#[from] object_store::Error),
    #[error("object store: an object of more than {MAX_OBJECT_BYTES} bytes")]
    TooLarge,
    #[error("object store: more than {MAX_PREFIX_OBJECTS} objects under one prefix")]
    TooMany,
}

/// `--object-store`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Dir(PathBuf),
    S3(S3Url),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Keys go under this (`s3://BUCKET/PREFIX`), so a bucket can be shared.
    pub prefix: String,
    /// None: AWS S3 itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `BUCKET.host` rather than `host/BUCKET`: AWS's way, and what some
    /// services (R2 custom domains) need. Default: virtual on AWS, path
    /// elsewhere (MinIO, Garage and most self-hosted stores).
    pub virtual_hosted: bool,
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// needs a path".into());
            }
            return Ok(StoreUrl::Dir(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(format!(
                "{url:?}: expected file://PATH or s3://BUCKET?endpoint=..."
            ));
        };
        let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = target.split_once('/').unwrap_or((target, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(format!(
                "{bucket:?} is not a bucket name (3-63 of a-z 0-9 . -)"
            ));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() && !valid_key(&prefix) {
            return Err(format!("{prefix:?} is not a key prefix (a-z 0-9 . _ - /)"));
        }
        let mut s3 = S3Url {
            bucket: bucket.to_string(),
            prefix,
            endpoint: None,
            region: None,
            virtual_hosted: false,
        };
        let mut addressing = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or_else(|| format!("{k}: bad %-escape"))?;
            match k {
                "endpoint" if v.starts_with("http://") || v.starts_with("https://") => {
                    s3.endpoint = Some(v.trim_end_matches('/').to_string())
                }
                "endpoint" => return Err(format!("endpoint {v:?}: expected http:// or https://")),
                "region" if !v.is_empty() => s3.region = Some(v),
                "addressing" if v == "path" || v == "virtual" => addressing = Some(v == "virtual"),
                _ => {
                    return Err(format!(
                        "unknown or empty setting {k:?} (endpoint, region, addressing=path|virtual)"
                    ))
                }
            }
        }
        s3.virtual_hosted = addressing.unwrap_or(s3.endpoint.is_none());
        Ok(StoreUrl::S3(s3))
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A blob store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Dir(PathBuf),
    Remote {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

impl Store {
    /// Objects as files under `root` (made on first write).
    pub fn dir(root: impl Into<PathBuf>) -> Store {
        Store {
            backend: Backend::Dir(root.into()),
        }
    }

    /// The store `url` names. An S3 bucket is not contacted here: a store
    /// that is down does not stop the server from starting.
    pub fn open(url: &StoreUrl) -> Result<Store, StoreError> {
        let s3 = match url {
            StoreUrl::Dir(root) => return Ok(Store::dir(root)),
            StoreUrl::S3(s3) => s3,
        };
        // Credentials (and a default region) from the usual AWS variables.
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&s3.bucket)
            .with_virtual_hosted_style_request(s3.virtual_hosted)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(S3_REQUEST_TIMEOUT)
                    .with_connect_timeout(S3_REQUEST_TIMEOUT)
                    .with_allow_http(true),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: S3_RETRY_WITHIN,
                ..Default::default()
            });
        if let Some(region) = &s3.region {
            b = b.with_region(region);
        }
        if let Some(endpoint) = &s3.endpoint {
            // Virtual-hosted addressing takes the endpoint as the bucket's
            // own host.
            let endpoint = match (s3.virtual_hosted, endpoint.split_once("://")) {
                (true, Some((scheme, host))) => format!("{scheme}://{}.{host}", s3.bucket),
                _ => endpoint.clone(),
            };
            b = b.with_endpoint(endpoint);
        }
        Ok(Store {
            backend: Backend::Remote {
                store: Arc::new(b.build()?),
                prefix: s3.prefix.clone(),
            },
        })
    }

    /// Stores `bytes` under `key`, replacing what was there. Readers see
    /// the old object or the new one, never a part: on disk the bytes go
    /// to a temporary file, are synced, and take the name in one rename;
    /// an S3 PUT is atomic by itself.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        check_key(key)?;
        match &self.backend {
            Backend::Dir(root) => {
                let path = root.join(key);
                tokio::task::spawn_blocking(move || write_whole(&path, &bytes))
                    .await
                    .map_err(io::Error::other)??;
            }
            Backend::Remote { store, prefix } => {
                store
                    .put(&remote_path(prefix, key), PutPayload::from_bytes(bytes))
                    .await?;
            }
        }
        Ok(())
    }

    /// The object under `key`, if there is one.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        check_key(key)?;
        match &self.backend {
            Backend::Dir(root) => match tokio::fs::read(root.join(key)).await {
                Ok(b) => Ok(Some(Bytes::from(b))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Backend::Remote { store, prefix } => {
                let got = match store.get(&remote_path(prefix, key)).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                if got.meta.size > MAX_OBJECT_BYTES as u64 {
                    return Err(StoreError::TooLarge);
                }
                Ok(Some(got.bytes().await?))
            }
        }
    }

    /// Removes the object under `key`; absent is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        match &self.backend {
            Backend::Dir(root) => match tokio::fs::remove_file(root.join(key)).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Backend::Remote { store, prefix } => {
                match store.delete(&remote_path(prefix, key)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

impl Store {
    /// The size of the object under `key`, if there is one.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        check_key(key)?;
        match &self.backend {
            Backend::Dir(root) => match tokio::fs::metadata(root.join(key)).await {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Backend::Remote { store, prefix } => {
                match store.head(&remote_path(prefix, key)).await {
                    Ok(meta) => Ok(Some(meta.size)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Bytes `range` of the object under `key`: all of them, or an error
    /// (an object shorter than the range, or gone).
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StoreError> {
        check_key(key)?;
        let want = range.end.saturating_sub(range.start);
        if want > MAX_OBJECT_BYTES as u64 {
            return Err(StoreError::TooLarge);
        }
        let got = match &self.backend {
            Backend::Dir(root) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut f = tokio::fs::File::open(root.join(key)).await?;
                f.seek(io::SeekFrom::Start(range.start)).await?;
                let mut buf = vec![0; want as usize];
                f.read_exact(&mut buf).await?;
                Bytes::from(buf)
            }
            Backend::Remote { store, prefix } => {
                store.get_range(&remote_path(prefix, key), range).await?
            }
        };
        if got.len() as u64 != want {
            return Err(
                io::Error::new(io::ErrorKind::UnexpectedEof, "the object is shorter").into(),
            );
        }
        Ok(got)
    }

    /// The folder a `file://` store keeps its objects in.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Dir(root) => Some(root),
            Backend::Remote { .. } => None,
        }
    }

    /// The names directly under `prefix/` that hold objects (the
    /// "folders"), at most [`MAX_PREFIX_OBJECTS`].
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        check_key(prefix)?;
        match &self.backend {
            Backend::Dir(root) => {
                let mut out = Vec::new();
                let mut dir = match tokio::fs::read_dir(root.join(prefix)).await {
                    Ok(d) => d,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(e.into()),
                };
                while let Some(e) = dir.next_entry().await? {
                    if out.len() >= MAX_PREFIX_OBJECTS {
                        return Err(StoreError::TooMany);
                    }
                    if e.file_type().await?.is_dir() {
                        out.extend(e.file_name().to_str().map(String::from));
                    }
                }
                Ok(out)
            }
            Backend::Remote {
                store,
                prefix: base,
            } => {
                let under = remote_path(base, prefix);
                let listed = store.list_with_delimiter(Some(&under)).await?;
                if listed.common_prefixes.len() > MAX_PREFIX_OBJECTS {
                    return Err(StoreError::TooMany);
                }
                Ok(listed
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(String::from))
                    .collect())
            }
        }
    }

    /// Removes every object under `prefix/`; none is not an error.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        check_key(prefix)?;
        match &self.backend {
            Backend::Dir(root) => match tokio::fs::remove_dir_all(root.join(prefix)).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Backend::Remote {
                store,
                prefix: base,
            } => {
                use futures_util::StreamExt;
                let under = remote_path(base, prefix);
                let mut listed = store.list(Some(&under));
                let mut n = 0;
                while let Some(meta) = listed.next().await {
                    n += 1;
                    if n > MAX_PREFIX_OBJECTS {
                        return Err(StoreError::TooMany);
                    }
                    match store.delete(&meta?.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }
        }
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(StoreError::BadKey(key.chars().take(64).collect()))
    }
}

fn remote_path(prefix: &str, key: &str) -> ObjectPath {
    if prefix.is_empty() {
        ObjectPath::from(key)
    } else {
        ObjectPath::from(format!("{prefix}/{key}"))
    }
}

/// Keys are relative paths of `[a-z0-9._-]` segments, none of them `.`
/// or `..` and none empty: the same key names the same object on any
/// backend, and a file key cannot leave the root.
pub fn valid_key(key: &str) -> bool {
    key.len() <= MAX_KEY
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        })
}

fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().ok_or_else(|| io::Error::other("no parent"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{:016x}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object"),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself survives a crash once the directory is synced.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_under_the_root() {
        for bad in [
            "", "/a", "a/", "a//b", "../a", "a/../b", "./a", "A", "a b", "a\\b", "a\0",
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
        assert!(!valid_key(&"a".repeat(MAX_KEY + 1)));
        assert!(valid_key("avatars/12/3-64.png"));
    }

    #[test]
    fn urls() {
        assert_eq!(
            StoreUrl::parse("file:///srv/onair").unwrap(),
            StoreUrl::Dir("/srv/onair".into())
        );
        let StoreUrl::S3(s3) =
            StoreUrl::parse("s3://pics/site-a?endpoint=http%3A%2F%2F10.0.0.5:9000&region=garage")
                .unwrap()
        else {
            panic!("s3");
        };
        assert_eq!(s3.bucket, "pics");
        assert_eq!(s3.prefix, "site-a");
        assert_eq!(s3.endpoint.as_deref(), Some("http://10.0.0.5:9000"));
        assert_eq!(s3.region.as_deref(), Some("garage"));
        assert!(!s3.virtual_hosted, "path-style on a self-hosted endpoint");
        let StoreUrl::S3(aws) = StoreUrl::parse("s3://my-bucket").unwrap() else {
            panic!("s3");
        };
        assert!(aws.virtual_hosted && aws.endpoint.is_none());
        for bad in [
            "",
            "/srv",
            "file://",
            "s3://",
            "s3://UPPER",
            "s3://ok-bucket?endpoint=ftp://x",
            "s3://ok-bucket?region=",
            "s3://ok-bucket?secret=x",
            "s3://ok-bucket?addressing=sideways",
            "s3://ok-bucket/../up",
            "s3://ok-bucket?endpoint=%zz",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn put_get_replace_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::dir(dir.path());
        assert!(store.get("x/a.bin").await.unwrap().is_none());
        store
            .put("x/a.bin", Bytes::from_static(b"one"))
            .await
            .unwrap();
        store
            .put("x/a.bin", Bytes::from_static(b"two"))
            .await
            .unwrap();
        assert_eq!(store.get("x/a.bin").await.unwrap().unwrap(), "two");
        // Nothing but the object is left in its directory.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("x"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.bin"]);
        store.delete("x/a.bin").await.unwrap();
        store.delete("x/a.bin").await.unwrap();
        assert!(store.get("x/a.bin").await.unwrap().is_none());
        assert!(matches!(
            store.put("../evil", Bytes::new()).await,
            Err(StoreError::BadKey(_))
        ));
    }
}
