//! Reading policy files and following their imports.
//!
//! A [`Workspace`] reads each file once, parses it, and remembers the tree and
//! the syntax diagnostics. Paths are shown relative to the workspace root, so
//! diagnostics and the compiled source map name files the way a Git repo does.

use crate::ast;
use crate::diag::Diagnostic;
use crate::parse;
use crate::source::{FileId, SourceMap};
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Where file contents come from: the disk, or memory (tests, editors).
pub trait FileSystem {
    fn read(&self, path: &Path) -> io::Result<String>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskFs;

impl FileSystem for DiskFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Files held in memory, by normalized path.
#[derive(Debug, Default, Clone)]
pub struct MemoryFs {
    files: BTreeMap<PathBuf, String>,
}

impl MemoryFs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, path: impl AsRef<Path>, text: impl Into<String>) -> Self {
        self.files.insert(normalize(path.as_ref()), text.into());
        self
    }
}

impl FileSystem for MemoryFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(&normalize(path))
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
    }
}

/// One parsed file.
#[derive(Debug)]
pub struct Parsed {
    pub id: FileId,
    /// Normalized path (used to resolve its imports).
    pub path: PathBuf,
    /// Shared: checking a tenant reads its files' trees without copying them.
    pub ast: Option<Arc<ast::File>>,
    /// Syntax errors of this file.
    pub diagnostics: Vec<Diagnostic>,
}

/// The files of one run.
pub struct Workspace {
    pub sources: SourceMap,
    fs: Box<dyn FileSystem>,
    root: PathBuf,
    parsed: Vec<Parsed>,
    by_path: BTreeMap<PathBuf, FileId>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("root", &self.root)
            .field("files", &self.parsed.len())
            .finish()
    }
}

impl Workspace {
    /// A workspace on the disk; file names are shown relative to `root`.
    pub fn on_disk(root: impl AsRef<Path>) -> Self {
        Self::new(DiskFs, root)
    }

    pub fn new(fs: impl FileSystem + 'static, root: impl AsRef<Path>) -> Self {
        Workspace {
            sources: SourceMap::new(),
            fs: Box::new(fs),
            root: normalize(root.as_ref()),
            parsed: Vec::new(),
            by_path: BTreeMap::new(),
        }
    }

    /// Reads and parses `path` (once; later calls return the same id).
    pub fn load(&mut self, path: &Path) -> io::Result<FileId> {
        let path = normalize(path);
        if let Some(id) = self.by_path.get(&path) {
            return Ok(*id);
        }
        let text = self.fs.read(&path)?;
        let name = self.display_name(&path);
        let id = self.sources.add(name, text.as_str());
        let (ast, diagnostics) = parse::parse(&text, id);
        self.parsed.push(Parsed {
            id,
            path: path.clone(),
            ast: ast.map(Arc::new),
            diagnostics,
        });
        self.by_path.insert(path, id);
        Ok(id)
    }

    pub fn parsed(&self, id: FileId) -> &Parsed {
        &self.parsed[id.0]
    }

    /// The path an import in file `from` refers to.
    pub fn resolve_import(&self, from: FileId, import: &str) -> PathBuf {
        let base = self
            .parsed(from)
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        normalize(&base.join(import))
    }

    fn display_name(&self, path: &Path) -> String {
        let shown = path.strip_prefix(&self.root).unwrap_or(path);
        shown.to_string_lossy().into_owned()
    }
}

/// Lexical normalization: removes `.` and folds `..` without touching the disk
/// (so symlinks do not change how files are named).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(
            normalize(Path::new("a/./b/../c.tgp")),
            PathBuf::from("a/c.tgp")
        );
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
    }

    #[test]
    fn memory_fs_reads_normalized_paths() {
        let fs = MemoryFs::new().with("a/b.tgp", "base b\n");
        assert_eq!(
            fs.read(Path::new("a/./b.tgp")).ok().as_deref(),
            Some("base b\n")
        );
        assert!(fs.read(Path::new("a/c.tgp")).is_err());
    }
}
