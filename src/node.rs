//! This server among several sharing one database: its id (`--node-id`,
//! or one made once and kept in the data directory), which its broadcasts
//! carry so that recovery and retention leave other nodes' alone.

use std::io;
use std::path::Path;

/// The file in the data directory that keeps a generated id.
pub const ID_FILE: &str = "node-id";

/// `[a-z0-9._-]`, 1 to 64 bytes: fits a log line, a metric label, a key.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// The id given, else the one in `data_dir` (made on first start: a
/// restart, or a kill -9 and a restart, is the same node again).
pub fn identity(given: Option<&str>, data_dir: &Path) -> io::Result<String> {
    if let Some(id) = given {
        return Ok(id.to_string());
    }
    let file = data_dir.join(ID_FILE);
    match std::fs::read_to_string(&file) {
        Ok(s) if valid_id(s.trim()) => return Ok(s.trim().to_string()),
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} does not hold a node id (1 to 64 of a-z 0-9 . _ -)",
                file.display()
            )))
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    std::fs::create_dir_all(data_dir)?;
    let id = format!("node-{:016x}", rand::random::<u64>());
    let tmp = data_dir.join(format!(".{ID_FILE}.tmp"));
    std::fs::write(&tmp, format!("{id}\n"))?;
    std::fs::rename(&tmp, &file)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = identity(None, dir.path()).unwrap();
        assert!(valid_id(&first), "{first}");
        assert_eq!(identity(None, dir.path()).unwrap(), first);
        assert_eq!(identity(Some("edge-a"), dir.path()).unwrap(), "edge-a");
        std::fs::write(dir.path().join(ID_FILE), "Not Valid\n").unwrap();
        assert!(identity(None, dir.path()).is_err());
        for bad in ["", "A", "a b", "a/b", &"a".repeat(65)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
