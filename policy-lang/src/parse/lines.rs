//! Lines: the text split into lines, each line's statement content separated
//! from its `# comment` (kept as trivia for the formatter).

use super::tokens::{In, is_word_char};
use crate::ast::Comment;
use crate::span::Span;
use nom::Input;

#[derive(Debug)]
pub(super) struct Line<'a> {
    /// The statement text, without indentation, comment and trailing blanks.
    pub(super) content: In<'a>,
    pub(super) comment: Option<Comment>,
}

impl Line<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.content.fragment().is_empty()
    }
    pub(super) fn first_word(&self) -> &str {
        let f = *self.content.fragment();
        let n = f.find(|c: char| !is_word_char(c)).unwrap_or(f.len());
        f.get(..n).unwrap_or("")
    }
    pub(super) fn starts_with(&self, c: char) -> bool {
        self.content.fragment().starts_with(c)
    }
    pub(super) fn ends_with(&self, c: char) -> bool {
        self.content.fragment().ends_with(c)
    }
}

pub(super) fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut rest = In::new(text);
    loop {
        let frag = *rest.fragment();
        let (line, next) = match frag.find('\n') {
            Some(n) => (rest.take(n), Some(rest.take_from(n + 1))),
            None => (rest, None),
        };
        lines.push(split_line(line));
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    lines
}

fn split_line(line: In<'_>) -> Line<'_> {
    let frag = *line.fragment();
    let mut in_string = false;
    let mut hash = None;
    for (i, c) in frag.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => {
                hash = Some(i);
                break;
            }
            _ => {}
        }
    }
    let (content, comment) = match hash {
        Some(h) => {
            let after = line.take_from(h + 1);
            let text = after.fragment().trim_end();
            let start = line.location_offset() + h;
            let comment = Comment {
                text: text.to_string(),
                span: Span::new(start, start + 1 + text.len()),
            };
            (line.take(h), Some(comment))
        }
        None => (line, None),
    };
    let f = *content.fragment();
    let lead = f.len() - f.trim_start().len();
    let content = content.take_from(lead);
    let content = content.take(content.fragment().trim_end().len());
    Line { content, comment }
}
