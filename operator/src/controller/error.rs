//! The controller's errors.

/// Errors of a reconcile or an alert action.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Cleanup could not remove the tenant from some agents yet.
    #[error("cleanup: {0}")]
    Cleanup(String),
    /// The object lacks a namespace or name, or refers to what is not
    /// there (a Secret without the key).
    #[error("invalid object: {0}")]
    Invalid(String),
    /// Reading an object failed (the alert sink's reads: which one in
    /// `what`).
    #[error("reading {what}: {source}")]
    Read {
        /// `TollPolicy <ns>/<name>`, `SbcFleet`, `PolicyRevision <name>`.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A release could not lift its blocks on every target of the fleet
    /// (retried with backoff; the entries and the annotation stay).
    #[error("cleanup: lifting blocks failed on {0} targets")]
    LiftFailed(usize),
    /// An alert reached a replica that is not the leader (the webhook
    /// answers 503 before it asks; this is the race after).
    #[error("not the leader")]
    NotLeader,
}

impl Error {
    /// `Error::Read` of `what`.
    pub fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Self::Read { what, source }
    }
}

/// Why a revision's compiled policy is not at hand (a rollback to a
/// revision whose PolicyRevision is gone): the target's outcome is
/// `Rejected/RevisionMissing` with this message.
#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    /// No PolicyRevision of that name and hash.
    #[error("PolicyRevision {name} (revision {number}) is missing")]
    Missing {
        /// The PolicyRevision's name.
        name: String,
        /// The revision number.
        number: i64,
    },
    /// Its PolicyChunks are missing, wrong, or could not be read.
    #[error("PolicyRevision {name}: {source}")]
    Content {
        /// The PolicyRevision's name.
        name: String,
        /// What is wrong.
        #[source]
        source: super::content::ContentError,
    },
    /// Reading it failed.
    #[error("reading PolicyRevision {name}: {source}")]
    Read {
        /// The PolicyRevision's name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}
