//! The set of policy files read in one run, addressed by [`FileId`].

use std::sync::Arc;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub usize);

#[derive(Debug)]
pub struct SourceFile {
    /// The name shown in diagnostics and the source map: the path as given.
    pub name: String,
    pub text: Arc<str>,
    /// Byte offset of the start of every line, for positions in O(log n).
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset; an offset past
    /// the end is taken as the end. Same result as [`crate::span::line_col`].
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line.max(1), column)
    }

    /// [`SourceFile::line_col`] of each offset, in the order given. The
    /// offsets are looked up in ascending order, walking the line index once:
    /// a binary search per offset, in the random order of rule ids, missed
    /// the cache on nearly every step for a file of a million lines.
    pub fn line_cols(&self, offsets: &[usize]) -> Vec<(usize, usize)> {
        let mut order: Vec<usize> = (0..offsets.len()).collect();
        order.sort_unstable_by_key(|&i| offsets[i]);
        let mut out = vec![(1, 1); offsets.len()];
        // the index in `line_starts` of the line holding the last offset
        let mut line = 0;
        for i in order {
            let offset = offsets[i].min(self.text.len());
            while self
                .line_starts
                .get(line + 1)
                .is_some_and(|start| *start <= offset)
            {
                line += 1;
            }
            let start = self.line_starts.get(line).copied().unwrap_or(0);
            let column = self
                .text
                .get(start..offset)
                .map_or(1, |s| s.chars().count() + 1);
            out[i] = (line + 1, column);
        }
        out
    }
}

#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Arc<str>>) -> FileId {
        self.files.push(SourceFile::new(name, text));
        FileId(self.files.len() - 1)
    }

    /// The file with this id. Ids come only from [`SourceMap::add`] on this map.
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0]
    }

    pub fn find(&self, name: &str) -> Option<FileId> {
        self.files.iter().position(|f| f.name == name).map(FileId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_cols_agree_with_line_col() {
        let text = "ab\ncdé\n\nf\n";
        let file = SourceFile::new("t", text);
        let offsets = [7, 0, 3, 100, 3, 8, 1, 12, 6, 0];
        let want: Vec<_> = offsets.iter().map(|o| file.line_col(*o)).collect();
        assert_eq!(file.line_cols(&offsets), want);
        assert!(file.line_cols(&[]).is_empty());
    }

    #[test]
    fn line_col_agrees_with_the_scan() {
        let text = "ab\ncdé\n\nf\n";
        let file = SourceFile::new("t", text);
        for offset in 0..=text.len() + 2 {
            if text.is_char_boundary(offset.min(text.len())) {
                assert_eq!(
                    file.line_col(offset),
                    crate::span::line_col(text, offset),
                    "offset {offset}"
                );
            }
        }
    }
}
