//! Diagnostics: every problem found in a policy, with the file, the span, a
//! message, help and a stable code. Rendering to text goes through miette (the
//! caller picks the handler); [`Diagnostic::to_json`] feeds CI tools.
//!
//! Messages follow one style: lowercase, no trailing period, user input in
//! backticks, what to do in `help`.

mod code;
mod snippet;

pub use code::Code;

use crate::source::{FileId, SourceMap};
use crate::span::Span;
use serde::Serialize;
use snippet::IndexedSource;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// An underlined part of the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code, e.g. `syntax::unknown-statement`, `destinations::unknown-country`.
    pub code: Code,
    pub severity: Severity,
    pub file: FileId,
    pub message: String,
    /// The primary label: where the problem is.
    pub label: Label,
    /// Other places involved (e.g. the earlier rule a duplicate conflicts with), in the same file.
    pub related: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            file,
            message: message.into(),
            label: Label {
                span,
                message: None,
            },
            related: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, file: FileId, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(code, file, span, message)
        }
    }

    pub fn with_label(mut self, message: impl Into<String>) -> Self {
        self.label.message = Some(message.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_related(mut self, span: Span, message: impl Into<String>) -> Self {
        self.related.push(Label {
            span,
            message: Some(message.into()),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// A miette report of this diagnostic with its source attached, for rendering.
    pub fn report(&self, sources: &SourceMap) -> miette::Report {
        let file = sources.get(self.file);
        self.report_in(&file.name, IndexedSource::new(file.text.clone()))
    }

    /// [`Diagnostic::report`] with the file's text already indexed.
    fn report_in(&self, name: &str, source: IndexedSource) -> miette::Report {
        let source = miette::NamedSource::new(name, source);
        miette::Report::new(Rendered(self.clone())).with_source_code(source)
    }

    /// A JSON object for `--format json`: positions are 1-based lines and columns.
    pub fn to_json(&self, sources: &SourceMap) -> serde_json::Value {
        let file = sources.get(self.file);
        let pos = |offset: usize| {
            let (line, column) = file.line_col(offset);
            serde_json::json!({ "line": line, "column": column, "offset": offset })
        };
        let label = |l: &Label| serde_json::json!({ "start": pos(l.span.start), "end": pos(l.span.end), "message": l.message });
        serde_json::json!({
            "file": file.name,
            "severity": self.severity,
            "code": self.code.as_str(),
            "message": self.message,
            "help": self.help,
            "line": file.line_col(self.label.span.start).0,
            "column": file.line_col(self.label.span.start).1,
            "label": label(&self.label),
            "related": self.related.iter().map(label).collect::<Vec<_>>(),
        })
    }

    /// `file:line:column` of the primary label.
    pub fn location(&self, sources: &SourceMap) -> String {
        let file = sources.get(self.file);
        let (line, column) = file.line_col(self.label.span.start);
        format!("{}:{line}:{column}", file.name)
    }
}

/// Adapter giving miette what it needs (the source is attached by the report).
#[derive(Debug)]
struct Rendered(Diagnostic);

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(format!("tollgate::{}", self.0.code)))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.0.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let primary = std::iter::once(miette::LabeledSpan::new_primary_with_span(
            self.0.label.message.clone(),
            self.0.label.span,
        ));
        let related = self
            .0
            .related
            .iter()
            .map(|l| miette::LabeledSpan::new_with_span(l.message.clone(), l.span));
        Some(Box::new(primary.chain(related)))
    }
}

/// The closest candidate to `word` by edit distance, if close enough to be a
/// plausible misspelling ("did you mean").
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_l = word.to_ascii_lowercase();
    let limit = match word.chars().count() {
        0..=2 => 1,
        3..=5 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word_l, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent swaps).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// "did you mean `x`?" help text, if there is a close candidate.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    suggest(word, candidates).map(|s| format!("did you mean `{s}`?"))
}

/// Renders diagnostics for people: `file:line:column`, then the message, the
/// underlined source and the help (miette's graphical handler).
#[cfg(feature = "render")]
pub fn render(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    use miette::{GraphicalReportHandler, GraphicalTheme};
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_width(100);
    // each file's lines indexed once, not once per diagnostic
    let mut indexed: std::collections::HashMap<FileId, IndexedSource> = Default::default();
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.location(sources));
        out.push('\n');
        let file = sources.get(d.file);
        let source = indexed
            .entry(d.file)
            .or_insert_with(|| IndexedSource::new(file.text.clone()))
            .clone();
        let report = d.report_in(&file.name, source);
        if handler.render_report(&mut out, report.as_ref()).is_err() {
            out.push_str(&d.message);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("destinations", "destinations"), 0);
        assert_eq!(edit_distance("destnations", "destinations"), 1);
        assert_eq!(edit_distance("sourecs", "sources"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn suggests_only_close_words() {
        let words = ["destinations", "sources", "limits"];
        assert_eq!(suggest("destnations", words), Some("destinations"));
        assert_eq!(suggest("LIMITS", words), Some("limits"));
        assert_eq!(suggest("banana", words), None);
    }
}
