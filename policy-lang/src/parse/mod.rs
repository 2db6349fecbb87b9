//! The parser: policy text → [`ast::File`] plus every syntax error found.
//!
//! The language is line-oriented (one statement per line, sections delimited by
//! `keyword {` and a line holding `}`), so the parser works in two layers:
//!
//! 1. a line layer splits the text into lines, separates each line's content
//!    from its `# comment`, and drives recovery: a bad statement is reported
//!    and skipped, the next line is parsed afresh; a section that is never
//!    closed is reported at its keyword and closed where the next top-level
//!    statement starts; a stray `}` is reported and ignored;
//! 2. a statement layer, written with `nom` over `nom_locate` spans (so every
//!    value keeps its byte offsets), parses the content of one line.
//!
//! The modules follow the layers: `lines` splits the text into lines and
//! comments, `sections` is the line layer; `tokens` holds the statement
//! layer's error type and token parsers, `values` the values several
//! statements share, and `top_level`, `destinations`, `sources`,
//! `limits`, `responses` and `crypto` the statements of each place.
//!
//! The parser never panics and keeps going after errors, so one run reports
//! every syntax error of the file. Values whose validity is semantic (hours,
//! minutes, countries, zones, classes, addresses) are kept as written.
//!
//! Layout normalisation (so that `parse(format(x)) == parse(x)`): the header
//! and the first statement of a section never have `blank_before`; a top-level
//! section, and the item after one, always have it; blank lines between a
//! statement's leading comments and the statement are not recorded; a comment
//! on a section's closing `}` line becomes the last of the section's
//! `end_comments`; a comment on the opening line is the section's `trailing`.
//!
//! # Diagnostic codes
//!
//! | code | meaning |
//! |------|---------|
//! | `syntax::missing-header` | the file does not start with `tenant NAME` / `base NAME` |
//! | `syntax::duplicate-header` | a second `tenant` / `base` line |
//! | `syntax::unknown-statement` | a line starts with a word that starts no statement here |
//! | `syntax::unknown-keyword` | a word in a keyword position is not one of the keywords allowed there |
//! | `syntax::expected` | something required is missing (`:`, `{`, a name, a value, …) |
//! | `syntax::trailing-input` | text after a complete statement |
//! | `syntax::unclosed-block` | a section has no closing `}` |
//! | `syntax::unexpected-close` | a `}` with no open section |
//! | `syntax::bad-name` | a tenant/base/window/trunk name is not `[a-z][a-z0-9-]*` (≤ 63) |
//! | `syntax::bad-prefix` | a prefix that is not `+` followed by digit groups |
//! | `syntax::bad-time` | a time that is not `HH:MM` |
//! | `syntax::bad-day` | a day that is not `mon` … `sun` |
//! | `syntax::bad-duration` | a duration that is not `<n><unit>…` with units `d h m s`, largest first |
//! | `syntax::bad-number` | a count with letters in it (`10x`) |
//! | `syntax::number-overflow` | a count or duration too large for 64 bits |
//! | `syntax::unterminated-string` | a `"` without its closing `"` on the same line |
//! | `syntax::missing-rate-unit` | a `rate` level without `/min` |
//! | `syntax::unexpected-rate-unit` | `/min` on a `concurrent` level |
//! | `syntax::bad-rate-unit` | a rate unit other than `/min` |
//! | `syntax::duplicate-level` | `warning` or `critical` given twice in one limit |

mod crypto;
mod destinations;
mod limits;
mod lines;
mod responses;
mod sections;
mod sources;
mod tokens;
mod top_level;
mod values;

use crate::ast::File;
use crate::diag::Diagnostic;
use crate::source::FileId;
use lines::split_lines;
use sections::{Parser, Pending};

/// Parses one policy file. Returns the tree whenever the header parsed
/// (statements with errors are left out of it) and every syntax error found.
pub fn parse(text: &str, file: FileId) -> (Option<File>, Vec<Diagnostic>) {
    let lines = split_lines(text);
    let mut p = Parser {
        file,
        diags: Vec::new(),
        pending: Pending::default(),
        text_len: text.len(),
    };
    let result = p.file(&lines);
    (result, p.diags)
}

#[cfg(test)]
mod tests;
