//! The Tollgate policy language.
//!
//! Stages, each with one idea: text → [`ast`] (the parser, with spans and
//! comments) → checked and merged policy → [`tollgate_ir::CompiledPolicy`]
//! (the IR the operator enforces). [`diag`] carries every problem found on
//! the way, with its file and span.

pub mod analysis;
pub mod ast;
pub mod check;
pub mod diag;
pub mod dialling;
pub mod diff;
pub mod eval;
pub mod explain;
pub mod fmt;
pub mod load;
pub mod numbering;
pub mod parse;
pub mod replay;
pub mod scenario;
pub mod source;
pub mod span;
pub mod window;
