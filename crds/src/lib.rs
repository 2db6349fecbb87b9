//! Tollgate's custom resources and the compiled-policy IR they carry.

pub mod policy;
