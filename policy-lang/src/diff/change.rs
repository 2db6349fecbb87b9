//! The model of a diff: a [`Change`] in an [`Area`] of the policy, with
//! whether it loosens or tightens and the rule ids involved.

/// What part of the policy a change is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    Tenant,
    Home,
    Destinations,
    Sources,
    Windows,
    Limits,
    Responses,
    Crypto,
    Classes,
}

impl Area {
    pub fn name(self) -> &'static str {
        match self {
            Area::Tenant => "tenant",
            Area::Home => "home",
            Area::Destinations => "destinations",
            Area::Sources => "sources",
            Area::Windows => "windows",
            Area::Limits => "limits",
            Area::Responses => "responses",
            Area::Crypto => "crypto",
            Area::Classes => "classes",
        }
    }
}

/// One change, described for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub area: Area,
    pub description: String,
    /// Lets through a call that was rejected before, or weakens detection or response.
    pub loosens: bool,
    /// Rejects a call that was let through before, or strengthens detection or response.
    pub tightens: bool,
    /// The rule ids involved: (old policy's, new policy's).
    pub rules: (Vec<String>, Vec<String>),
}

impl Change {
    pub(super) fn new(area: Area, description: String, loosens: bool, tightens: bool) -> Self {
        Change {
            area,
            description,
            loosens,
            tightens,
            rules: (Vec::new(), Vec::new()),
        }
    }

    pub(super) fn rules(mut self, old: &[&str], new: &[&str]) -> Self {
        let ids = |v: &[&str]| {
            let mut out: Vec<String> = Vec::new();
            for id in v.iter().filter(|s| !s.is_empty()) {
                if !out.iter().any(|o| o == id) {
                    out.push((*id).to_string());
                }
            }
            out
        };
        self.rules = (ids(old), ids(new));
        self
    }

    /// `loosens`, `tightens`, `loosens+tightens` or `neutral`.
    pub fn effect(&self) -> &'static str {
        match (self.loosens, self.tightens) {
            (true, true) => "loosens+tightens",
            (true, false) => "loosens",
            (false, true) => "tightens",
            (false, false) => "neutral",
        }
    }
}
