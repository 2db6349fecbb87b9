//! Writing a [`Bundle`] into an SBC data directory.
//!
//! db_text re-reads a table only when the file's mtime (whole seconds) has
//! changed since it was loaded, so every file written gets an mtime of
//! `max(now, previous mtime + 1 s)`: two writes in the same second are still
//! seen as two. Files are written atomically (temp file in the same
//! directory, fsync, rename), so the SBC never reads half a table.

use super::Bundle;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Writes every file of `bundle` whose content differs from what `dir`
/// holds (unchanged files are not touched, so their mtime stays). Returns the
/// names of the files written, in name order. Files in `dir` that the bundle
/// does not name are left alone.
pub fn write_bundle(dir: &Path, bundle: &Bundle, now: SystemTime) -> io::Result<Vec<String>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, content) in &bundle.files {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad file name `{name}`"),
            ));
        }
        let path = dir.join(name);
        let previous = match fs::metadata(&path) {
            Ok(m) => {
                if m.len() == content.len() as u64 && fs::read(&path)? == content.as_bytes() {
                    continue;
                }
                Some(m.modified()?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        write_file(&path, content.as_bytes(), next_mtime(previous, now))?;
        written.push(name.clone());
    }
    if !written.is_empty() {
        // make the renames durable
        File::open(dir)?.sync_all()?;
    }
    Ok(written)
}

/// `max(now, previous + 1 s)` in whole seconds.
pub fn next_mtime(previous: Option<SystemTime>, now: SystemTime) -> SystemTime {
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let now_s = secs(now);
    let t = match previous {
        Some(p) => now_s.max(secs(p) + 1),
        None => now_s,
    };
    UNIX_EPOCH + Duration::from_secs(t)
}

/// Temp file next to `path`, content, mtime, fsync, rename.
fn write_file(path: &Path, content: &[u8], mtime: SystemTime) -> io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(content)?;
        f.set_modified(mtime)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tollgate-write-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn bundle(files: &[(&str, &str)]) -> Bundle {
        Bundle::new(
            files
                .iter()
                .map(|(n, c)| (n.to_string(), c.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn mtime_moves_forward_by_a_second_within_one_second() {
        let dir = tempdir("mtime");
        let now = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let w = write_bundle(&dir, &bundle(&[("a", "1\n"), ("b", "x\n")]), now).unwrap();
        assert_eq!(w, ["a", "b"]);
        let m1 = fs::metadata(dir.join("a")).unwrap().modified().unwrap();
        assert_eq!(m1, now);
        // same second, new content: mtime + 1 s; unchanged file untouched
        let w = write_bundle(&dir, &bundle(&[("a", "2\n"), ("b", "x\n")]), now).unwrap();
        assert_eq!(w, ["a"]);
        let m2 = fs::metadata(dir.join("a")).unwrap().modified().unwrap();
        assert_eq!(m2, now + Duration::from_secs(1));
        assert_eq!(
            fs::metadata(dir.join("b")).unwrap().modified().unwrap(),
            now
        );
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "2\n");
        // later: the clock wins
        let later = now + Duration::from_secs(60);
        write_bundle(&dir, &bundle(&[("a", "3\n")]), later).unwrap();
        assert_eq!(
            fs::metadata(dir.join("a")).unwrap().modified().unwrap(),
            later
        );
        // no temp files left
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_names_are_refused() {
        let dir = tempdir("names");
        let now = SystemTime::now();
        assert!(write_bundle(&dir, &bundle(&[("../x", "")]), now).is_err());
        assert!(write_bundle(&dir, &bundle(&[(".hidden", "")]), now).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
