//! A finished recording as one MP4 file (`/vod/ID/download.mp4`).
//!
//! A recording is an fMP4 init segment followed by fragments (ISO/IEC
//! 14496-12 8.8: a `moov` with `mvex`, then `moof`+`mdat` pairs). Writing
//! the init segment and then every segment file in playlist order gives a
//! valid fragmented MP4: the segmenter writes one continuous output
//! timeline (see [`super::segmenter`]), so the fragments' decode times keep
//! increasing across segment files. Nothing is rewritten or copied: the
//! file is the concatenation of files already on disk, described here by
//! name and size so the HTTP side can stream any byte range of it.
//!
//! **Several init segments.** When the publisher changes its codec
//! configuration mid-broadcast (a new SPS, another audio config, a track
//! that appears), the recording goes on under a new init segment
//! (`EXT-X-MAP`). One MP4 track cannot switch to another init's sample
//! description without rewriting every fragment, so such a recording is
//! split into *sections*, one per run of segments under the same init:
//! section 1 is the default download, the others are offered by number.
//! Each section is a complete, playable MP4 on its own. A gap left by a
//! paused recording (`EXT-X-DISCONTINUITY` under the same init) is not a
//! new section: it is a hole in the timeline, which players skip over.

use super::recorder::Recordings;
use super::request::{parse_file, File};
use crate::db::BroadcastRow;
use std::path::PathBuf;

/// Why a recording cannot be exported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    #[error("this broadcast was not recorded")]
    NotRecorded,
    #[error("the recording has no segments")]
    Empty,
    #[error("the recording has {0} section(s)")]
    NoSuchSection(usize),
    #[error("the recording's playlist names a segment before any init segment")]
    Corrupt,
    #[error("a file of the recording is missing: {0}")]
    Missing(String),
    /// Neither this node nor the object store could be read.
    #[error("the recording cannot be read right now: {0}")]
    Unreadable(String),
}

/// The files of one section, in order: the init segment, then its
/// segments. Names are rebuilt from parsed numbers, never taken as written.
pub fn sections(playlist: &str) -> Result<Vec<Vec<File>>, ExportError> {
    let mut out: Vec<Vec<File>> = Vec::new();
    let mut current: Option<u32> = None;
    for line in playlist.lines().map(str::trim) {
        if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            let uri = attrs
                .split(',')
                .find_map(|a| a.trim().strip_prefix("URI="))
                .map(|u| u.trim_matches('"'));
            let Some(File::Init(n)) = uri.and_then(parse_file) else {
                return Err(ExportError::Corrupt);
            };
            if current != Some(n) {
                current = Some(n);
                out.push(vec![File::Init(n)]);
            }
        } else if !line.is_empty() && !line.starts_with('#') {
            let Some(seg @ File::Segment(_)) = parse_file(line) else {
                return Err(ExportError::Corrupt);
            };
            match out.last_mut() {
                Some(section) => section.push(seg),
                None => return Err(ExportError::Corrupt),
            }
        }
    }
    // An init written before the broadcast ended, with no segment after it.
    out.retain(|s| s.len() > 1);
    Ok(out)
}

/// Where a file of an export is read from.
#[derive(Debug, Clone)]
pub enum Source {
    /// This node's copy.
    Disk(PathBuf),
    /// The object store's, under this key (a node that did not record it).
    Stored(String),
}

/// Files sized at once from the object store: each is one HEAD request.
const CONCURRENT_SIZINGS: usize = 16;

/// One section of a recording: the files and their sizes.
#[derive(Debug, Clone)]
pub struct Export {
    pub files: Vec<(Source, u64)>,
    /// Where [`Source::Stored`] files are.
    pub store: Option<crate::store::Store>,
    pub total: u64,
    /// 1-based, of `sections`.
    pub section: usize,
    pub sections: usize,
}

impl Recordings {
    /// Section `section` (1-based) of broadcast `row`'s recording, with
    /// every file's size as it is now. Only for finished recordings: the
    /// caller checks, as a live one still grows.
    pub async fn export(&self, row: &BroadcastRow, section: usize) -> Result<Export, ExportError> {
        let dir = self.dir(row.id);
        let on_disk = dir.join("index.m3u8").exists();
        let text = self
            .read(row.id, "index.m3u8")
            .await
            .map_err(|e| ExportError::Unreadable(e.to_string()))?
            .ok_or(ExportError::NotRecorded)?;
        let all = sections(&String::from_utf8_lossy(&text))?;
        if all.is_empty() {
            return Err(ExportError::Empty);
        }
        let count = all.len();
        let chosen = section
            .checked_sub(1)
            .and_then(|i| all.into_iter().nth(i))
            .ok_or(ExportError::NoSuchSection(count))?;
        let files = match (on_disk, self.archive()) {
            (false, Some(store)) => sized_in_store(store, row.id, chosen).await?,
            _ => sized_on_disk(dir, chosen).await?,
        };
        let total = files.iter().map(|f| f.1).sum();
        Ok(Export {
            files,
            store: self.archive().cloned(),
            total,
            section,
            sections: count,
        })
    }
}

async fn sized_on_disk(dir: PathBuf, chosen: Vec<File>) -> Result<Vec<(Source, u64)>, ExportError> {
    tokio::task::spawn_blocking(move || {
        let mut files = Vec::with_capacity(chosen.len());
        for f in chosen {
            let path = dir.join(f.name());
            let len = std::fs::metadata(&path)
                .map_err(|_| ExportError::Missing(f.name()))?
                .len();
            files.push((Source::Disk(path), len));
        }
        Ok(files)
    })
    .await
    .map_err(|_| ExportError::Missing("(stat task failed)".into()))?
}

async fn sized_in_store(
    store: &crate::store::Store,
    id: i64,
    chosen: Vec<File>,
) -> Result<Vec<(Source, u64)>, ExportError> {
    use futures_util::{StreamExt, TryStreamExt};
    futures_util::stream::iter(chosen)
        .map(|f| async move {
            let key = super::archive::key(id, &f.name());
            match store.size(&key).await {
                Ok(Some(len)) => Ok((Source::Stored(key), len)),
                Ok(None) => Err(ExportError::Missing(f.name())),
                Err(e) => Err(ExportError::Unreadable(e.to_string())),
            }
        })
        .buffered(CONCURRENT_SIZINGS)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n";

    #[test]
    fn one_init_is_one_section() {
        let p = format!(
            "{HEAD}#EXT-X-MAP:URI=\"init0.mp4\"\n#EXTINF:2.00000,\ns0.m4s\n#EXTINF:2.00000,\ns1.m4s\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:1.50000,\ns4.m4s\n#EXT-X-ENDLIST\n"
        );
        assert_eq!(
            sections(&p).unwrap(),
            vec![vec![
                File::Init(0),
                File::Segment(0),
                File::Segment(1),
                File::Segment(4)
            ]]
        );
    }

    #[test]
    fn a_new_init_starts_a_section() {
        let p = format!(
            "{HEAD}#EXT-X-MAP:URI=\"init0.mp4\"\n#EXTINF:2.0,\ns0.m4s\n#EXT-X-DISCONTINUITY\n\
             #EXT-X-MAP:URI=\"init1.mp4\"\n#EXTINF:2.0,\ns1.m4s\n#EXTINF:2.0,\ns2.m4s\n\
             #EXT-X-MAP:URI=\"init2.mp4\"\n#EXT-X-ENDLIST\n"
        );
        assert_eq!(
            sections(&p).unwrap(),
            vec![
                vec![File::Init(0), File::Segment(0)],
                vec![File::Init(1), File::Segment(1), File::Segment(2)],
            ]
        );
    }

    #[test]
    fn names_outside_the_scheme_are_refused() {
        for bad in [
            format!("{HEAD}#EXT-X-MAP:URI=\"init0.mp4\"\n../../etc/passwd\n"),
            format!("{HEAD}#EXT-X-MAP:URI=\"/etc/passwd\"\ns0.m4s\n"),
            format!("{HEAD}#EXT-X-MAP:URI=\"init0.mp4\"\ninit1.mp4\n"),
            format!("{HEAD}s0.m4s\n"),
        ] {
            assert_eq!(sections(&bad), Err(ExportError::Corrupt), "{bad}");
        }
    }

    #[test]
    fn nothing_recorded_is_no_section() {
        assert!(sections(HEAD).unwrap().is_empty());
        let p = format!("{HEAD}#EXT-X-MAP:URI=\"init0.mp4\"\n#EXT-X-ENDLIST\n");
        assert!(sections(&p).unwrap().is_empty());
    }
}
