//! Digests of files and directories: what a stage's code, inputs and outputs are, by content.

use std::fs;
use std::io;
use std::path::Path;

/// Names never part of a directory's digest: version control and Python's byte code change
/// without the code changing.
const IGNORED: [&str; 2] = [".git", "__pycache__"];

/// `b3:` and the hex blake3 of `bytes`.
pub fn of_bytes(bytes: &[u8]) -> String {
    format!("b3:{}", blake3::hash(bytes).to_hex())
}

/// The digest of a file's bytes, or of a directory: the sorted lines `path\tsize\tdigest` of
/// every file under it (paths relative to it, `/`-separated), so that a file's name and place
/// count as well as its bytes, and its time does not.
pub fn of_path(path: &Path) -> io::Result<String> {
    let meta = fs::metadata(path)?;
    if meta.is_dir() {
        let mut lines = Vec::new();
        manifest(path, "", &mut lines)?;
        lines.sort();
        Ok(of_bytes(lines.join("\n").as_bytes()))
    } else {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(fs::File::open(path)?)?;
        Ok(format!("b3:{}", hasher.finalize().to_hex()))
    }
}

/// Each file under `dir` (by its path relative to it) with its size and digest.
pub fn files(dir: &Path) -> io::Result<std::collections::BTreeMap<String, String>> {
    let mut lines = Vec::new();
    manifest(dir, "", &mut lines)?;
    Ok(lines
        .into_iter()
        .filter_map(|line| {
            let (path, rest) = line.split_once('\t')?;
            Some((path.to_owned(), rest.to_owned()))
        })
        .collect())
}

/// The bytes of every file under `dir`.
pub fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size_of(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

fn manifest(dir: &Path, prefix: &str, lines: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if IGNORED.contains(&name.as_str()) || name.ends_with(".pyc") {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let path = entry.path();
        if fs::metadata(&path)?.is_dir() {
            manifest(&path, &format!("{rel}/"), lines)?;
        } else {
            let size = fs::metadata(&path)?.len();
            lines.push(format!("{rel}\t{size}\t{}", of_path(&path)?));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_digest_follows_names_and_bytes_not_times() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/a.txt"), "one").unwrap();
        let first = of_path(dir.path()).unwrap();
        fs::write(dir.path().join("sub/a.txt"), "one").unwrap();
        fs::create_dir(dir.path().join("__pycache__")).unwrap();
        fs::write(dir.path().join("__pycache__/x.pyc"), "junk").unwrap();
        assert_eq!(of_path(dir.path()).unwrap(), first, "rewritten, same bytes");
        fs::write(dir.path().join("sub/a.txt"), "two").unwrap();
        assert_ne!(of_path(dir.path()).unwrap(), first, "other bytes");
        fs::write(dir.path().join("sub/a.txt"), "one").unwrap();
        fs::rename(dir.path().join("sub/a.txt"), dir.path().join("sub/b.txt")).unwrap();
        assert_ne!(of_path(dir.path()).unwrap(), first, "another name");
    }
}
