//! A file's text as miette reads it for a snippet, with its line breaks
//! indexed once.
//!
//! miette's own `SourceCode` for text scans from the start of the file to
//! every span it draws: rendering the warnings of a file of n lines cost O(n)
//! per label, O(n²) for a file with a warning on every other line (a
//! carrier's deny list). [`IndexedSource`] finds the span's line by binary
//! search and lets miette read only from just before the snippet: the same
//! snippet, line and column.
//!
//! One figure differs on purpose. miette's handler draws two labels in one
//! snippet, with every line between them, when `line() + line_count()` of the
//! first reaches the second's line, and miette's reader gives as `line_count`
//! every line break from the start of the file to the snippet's end (its own
//! documentation says: the lines the snippet covers). So in a long file two
//! labels 5,000 lines apart were drawn as one snippet of 5,000 lines, and the
//! output of `check` grew with the square of the file. Here `line_count` is
//! miette's figure capped at the snippet's own lines plus [`MERGE_GAP`]:
//! labels whose snippets are at most that many lines apart are still joined,
//! exactly as before (every policy of a few dozen lines renders as it did),
//! labels farther apart get a snippet each.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub(crate) struct IndexedSource {
    text: Arc<str>,
    /// The offset where every line starts, `0` first, as miette breaks lines:
    /// after `\n`, after `\r\n` and after a `\r` not followed by `\n`.
    line_starts: Arc<[usize]>,
}

/// At most this many lines between two labels' snippets are drawn to join
/// them into one (see the module documentation).
pub(crate) const MERGE_GAP: usize = 10;

impl IndexedSource {
    pub(crate) fn new(text: Arc<str>) -> Self {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        for (i, b) in bytes.iter().enumerate() {
            match b {
                b'\n' => line_starts.push(i + 1),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => line_starts.push(i + 1),
                _ => {}
            }
        }
        IndexedSource {
            text,
            line_starts: line_starts.into(),
        }
    }

    /// The 0-based line of a byte offset, as miette counts lines: a line
    /// break belongs to the line it ends.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1)
    }
}

impl SourceCode for IndexedSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        // miette's reader puts a line break on the span's line when it ends
        // before the span's first byte: the span's line is the number of line
        // starts at or before it, less the `0` of the first line.
        let line = self.line_of(span.offset());
        // miette's reader, given the text from a line start, gives the same
        // snippet shifted, provided the text begins before the snippet's first
        // line and before the line break ending the line above the span (where
        // it takes an empty span at a line start to end): one line earlier.
        let from_line = line.saturating_sub(context_lines_before).saturating_sub(1);
        let from = self.line_starts.get(from_line).copied().unwrap_or(0);
        let rest = self.text.as_bytes().get(from..).unwrap_or_default();
        let shifted = SourceSpan::new((span.offset() - from).into(), span.len());
        let inner = <[u8] as SourceCode>::read_span(
            rest,
            &shifted,
            context_lines_before,
            context_lines_after,
        )?;
        let covered = SourceSpan::new((inner.span().offset() + from).into(), inner.span().len());
        let last = covered.offset() + covered.len().saturating_sub(1);
        let shown = self.line_of(last) + 1 - self.line_of(covered.offset());
        Ok(Box::new(MietteSpanContents::new(
            inner.data(),
            covered,
            inner.line() + from_line,
            inner.column(),
            (inner.line_count() + from_line).min(shown + MERGE_GAP),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every span of a few awkward texts reads the same as through miette's
    /// own reader of the whole text, `line_count` capped (spans starting past
    /// the end make miette's reader panic; diagnostics never point there).
    #[test]
    fn reads_what_miette_reads() {
        let mut texts: Vec<String> = [
            "",
            "one line",
            "a\nbb\n\nccc\n",
            "a\r\nbb\r\n\r\nccc",
            "x\ry\r\rz\n\r\nw",
            "é\nñ ü\n  deny prefix +44\n}\n",
        ]
        .map(String::from)
        .into();
        // and texts of up to 14 pieces drawn from line breaks and characters
        let pieces = ["a", "\n", "\r", "\r\n", "é", " ", "\n\n"];
        let mut seed = 7u64;
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..seed % 15 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                text.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            texts.push(text);
        }
        for text in &texts {
            let text = text.as_str();
            let indexed = IndexedSource::new(text.into());
            for start in 0..=text.len() {
                for len in 0..=(text.len() + 1 - start).min(6) {
                    for (before, after) in [(0, 0), (1, 1), (2, 0), (0, 3), (5, 5)] {
                        if !text.is_char_boundary(start) {
                            continue;
                        }
                        let span = SourceSpan::new(start.into(), len);
                        let ours = indexed.read_span(&span, before, after);
                        let theirs =
                            <[u8] as SourceCode>::read_span(text.as_bytes(), &span, before, after);
                        match (ours, theirs) {
                            (Ok(a), Ok(b)) => {
                                let what = format!("{text:?} {start}+{len} ({before}, {after})");
                                assert_eq!(a.data(), b.data(), "{what}");
                                assert_eq!(a.span(), b.span(), "{what}");
                                assert_eq!(a.line(), b.line(), "{what}");
                                assert_eq!(a.column(), b.column(), "{what}");
                                let last = b.span().offset() + b.span().len().saturating_sub(1);
                                let shown =
                                    indexed.line_of(last) + 1 - indexed.line_of(b.span().offset());
                                assert_eq!(
                                    a.line_count(),
                                    b.line_count().min(shown + MERGE_GAP),
                                    "{what}"
                                );
                            }
                            (Err(_), Err(_)) => {}
                            (a, b) => panic!(
                                "{text:?} {start}+{len}: ours ok {}, miette's ok {}",
                                a.is_ok(),
                                b.is_ok()
                            ),
                        }
                    }
                }
            }
        }
    }
}
