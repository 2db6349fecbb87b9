//! YAML reading and writing: the one place `serde_yaml` is used (it is frozen
//! upstream, so it stays behind this module).

pub use serde_yaml::Error;

/// Renders a value (a compiled policy, a resource) as one YAML document,
/// without a leading `---`. Deterministic for the same value.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_yaml::to_string(value)
}

/// Reads a YAML document.
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_yaml::from_str(text)
}
