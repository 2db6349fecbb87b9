//! The agent's error answers: [`ApiError`] (what went wrong, its message),
//! [`ErrorKind`] (its HTTP status, both ways) and [`ErrorBody`] (the JSON).

use serde::{Deserialize, Serialize};

/// The `error` of every 422: the agent changed nothing.
pub const REJECTED: &str = "rejected; the previous state stays in force";

/// An error the agent answers with. The message ([`std::fmt::Display`]) is
/// the answer's `error`; [`ApiError::Rejected`]'s reasons are its
/// `reasons`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (400).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body could not be read (400).
    #[error("reading the body: {0}")]
    ReadingBody(String),
    /// A revision or commit body without a string `revision` (400).
    #[error("`revision` (a string) is required")]
    MissingRevision,
    /// A revision body without `policy` (400).
    #[error("`policy` is required")]
    MissingPolicy,
    /// A block body without a string `key` (400).
    #[error("`key` (tenant or tenant::class) is required")]
    MissingBlockKey,
    /// A block body whose `expires` is not an integer (400).
    #[error("`expires` must be epoch seconds (0 = until lifted)")]
    BadExpires,
    /// The tenant segment of the path is not a tenant name (400).
    #[error("bad tenant name in the path")]
    BadTenant,
    /// A batch body without a `changes` list (400).
    #[error("`changes` (a list) is required")]
    MissingChanges,
    /// A batch body that changes a tenant twice (400).
    #[error("tenant `{0}` is changed twice in the batch")]
    DuplicateTenant(String),
    /// `GET /v1/state` with a query other than `tenant=NAME` (400).
    #[error("the only query of /v1/state is tenant=<tenant name>")]
    BadStateQuery,
    /// No or a wrong bearer token (401).
    #[error("unauthorized")]
    Unauthorized,
    /// No such tenant or block (404).
    #[error("{0}")]
    NotFound(String),
    /// An unknown path (404).
    #[error("no such endpoint")]
    NoSuchEndpoint,
    /// A known path, another method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A commit of a revision that is not staged (409).
    #[error("{0}")]
    Conflict(String),
    /// A body over the limit, in bytes (413).
    #[error("request body over {0} bytes")]
    TooLarge(usize),
    /// Refused before the live SBC was touched; the reasons (422).
    #[error("{REJECTED}")]
    Rejected(Vec<String>),
    /// Failed after the swap; the previous state was restored (500).
    #[error("{0}")]
    Failed(String),
}

/// The kinds of error answer, each with its HTTP status: the one mapping of
/// errors to statuses, for the server ([`ApiError::kind`]) and the client
/// ([`ErrorKind::from_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400.
    BadRequest,
    /// 401.
    Unauthorized,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 409.
    Conflict,
    /// 413.
    TooLarge,
    /// 422.
    Rejected,
    /// 500.
    Failed,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Conflict,
        ErrorKind::TooLarge,
        ErrorKind::Rejected,
        ErrorKind::Failed,
    ];

    /// The HTTP status.
    pub const fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::Rejected => 422,
            ErrorKind::Failed => 500,
        }
    }

    /// The kind of an error answer's status; `None` for a status the agent
    /// never answers an error with (e.g. a proxy's 502).
    pub fn from_status(status: u16) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.status() == status)
    }
}

impl ApiError {
    /// Its kind (and so its HTTP status).
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::ReadingBody(_)
            | ApiError::MissingRevision
            | ApiError::MissingPolicy
            | ApiError::MissingBlockKey
            | ApiError::BadExpires
            | ApiError::BadTenant
            | ApiError::MissingChanges
            | ApiError::DuplicateTenant(_)
            | ApiError::BadStateQuery => ErrorKind::BadRequest,
            ApiError::Unauthorized => ErrorKind::Unauthorized,
            ApiError::NotFound(_) | ApiError::NoSuchEndpoint => ErrorKind::NotFound,
            ApiError::MethodNotAllowed => ErrorKind::MethodNotAllowed,
            ApiError::Conflict(_) => ErrorKind::Conflict,
            ApiError::TooLarge(_) => ErrorKind::TooLarge,
            ApiError::Rejected(_) => ErrorKind::Rejected,
            ApiError::Failed(_) => ErrorKind::Failed,
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        self.kind().status()
    }

    /// The answer's body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: Some(self.to_string()),
            reasons: match self {
                ApiError::Rejected(r) => Some(r.clone()),
                _ => None,
            },
        }
    }

    /// A 422 for one reason.
    pub fn rejected(reason: impl Into<String>) -> ApiError {
        ApiError::Rejected(vec![reason.into()])
    }
}

/// An error answer: `{"error": "..."}`, and `"reasons": [...]` for a 422.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    /// What went wrong (`None` only when reading a foreign answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why a revision or block was refused (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
}

impl ErrorBody {
    /// The message of an answer's body, for a client: `error` and the
    /// `reasons`, joined by `; `; a body that is not an error answer's JSON
    /// as it is (lossy UTF-8).
    pub fn message_of(body: &[u8]) -> String {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => b.message(),
            Err(_) => String::from_utf8_lossy(body).into_owned(),
        }
    }

    /// `error` and the `reasons`, joined by `; `.
    pub fn message(&self) -> String {
        self.error
            .iter()
            .chain(self.reasons.iter().flatten())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl From<&ApiError> for ErrorBody {
    fn from(e: &ApiError) -> Self {
        e.body()
    }
}
