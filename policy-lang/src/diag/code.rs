//! The catalogue of diagnostic codes: every code a diagnostic can carry, with
//! its stable text (`syntax::unknown-statement`, shown as
//! `tollgate::syntax::unknown-statement`). Every code has a case file under
//! `tests/cases/` (checked by `tests/diagnostics.rs`).

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $text:literal, )*) => {
        /// A stable diagnostic code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            /// Every code, in catalogue order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as written in output, e.g. `syntax::unknown-statement`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    // ---- syntax (the parser)
    /// The file does not start with `tenant NAME` / `base NAME`.
    SyntaxMissingHeader = "syntax::missing-header",
    /// A second `tenant` / `base` line.
    SyntaxDuplicateHeader = "syntax::duplicate-header",
    /// A line starts with a word that starts no statement here.
    SyntaxUnknownStatement = "syntax::unknown-statement",
    /// A word in a keyword position is not one of the keywords allowed there.
    SyntaxUnknownKeyword = "syntax::unknown-keyword",
    /// Something required is missing (`:`, `{`, a name, a value, …).
    SyntaxExpected = "syntax::expected",
    /// Text after a complete statement.
    SyntaxTrailingInput = "syntax::trailing-input",
    /// A section has no closing `}`.
    SyntaxUnclosedBlock = "syntax::unclosed-block",
    /// A `}` with no open section.
    SyntaxUnexpectedClose = "syntax::unexpected-close",
    /// A tenant/base/window/trunk name is not `[a-z][a-z0-9-]*` (≤ 63).
    SyntaxBadName = "syntax::bad-name",
    /// A prefix that is not `+` followed by digit groups.
    SyntaxBadPrefix = "syntax::bad-prefix",
    /// A time that is not `HH:MM`.
    SyntaxBadTime = "syntax::bad-time",
    /// A day that is not `mon` … `sun`.
    SyntaxBadDay = "syntax::bad-day",
    /// A duration that is not `<n><unit>…` with units `d h m s`, largest first.
    SyntaxBadDuration = "syntax::bad-duration",
    /// A count with letters in it (`10x`).
    SyntaxBadNumber = "syntax::bad-number",
    /// A count or duration too large for 64 bits.
    SyntaxNumberOverflow = "syntax::number-overflow",
    /// A `"` without its closing `"` on the same line.
    SyntaxUnterminatedString = "syntax::unterminated-string",
    /// A `rate` level without `/min`.
    SyntaxMissingRateUnit = "syntax::missing-rate-unit",
    /// `/min` on a `concurrent` level.
    SyntaxUnexpectedRateUnit = "syntax::unexpected-rate-unit",
    /// A rate unit other than `/min`.
    SyntaxBadRateUnit = "syntax::bad-rate-unit",
    /// `warning` or `critical` given twice in one limit.
    SyntaxDuplicateLevel = "syntax::duplicate-level",

    // ---- policy, imports, home, zone, windows
    /// A tenant or base name that is not a Kubernetes DNS label.
    PolicyBadName = "policy::bad-name",
    /// A statement that may appear once (`home`, `zone`) given twice.
    PolicyDuplicate = "policy::duplicate",
    /// An imported file cannot be read.
    ImportNotFound = "import::not-found",
    /// An import that (indirectly) imports the importing file.
    ImportCycle = "import::cycle",
    /// An import of a tenant policy (only bases can be imported).
    ImportTenant = "import::tenant",
    /// A tenant without a home country.
    HomeMissing = "home::missing",
    /// A home country that is not an ISO 3166-1 alpha-2 code.
    HomeUnknownCountry = "home::unknown-country",
    /// A time zone that is not an IANA zone.
    ZoneUnknown = "zone::unknown",
    /// A window declared twice.
    WindowDuplicate = "window::duplicate",
    /// A window period that starts and ends at the same time.
    WindowNeverOpen = "window::never-open",
    /// An unknown day in a window (after parsing; the parser reports
    /// `syntax::bad-day` first).
    WindowBadDay = "window::bad-day",
    /// An hour or minute out of range (`25:00`, `08:60`).
    WindowBadTime = "window::bad-time",
    /// A window with no zone in a policy with no `zone`.
    WindowNoZone = "window::no-zone",

    // ---- destinations
    /// A destination rule or default declared twice.
    DestinationsDuplicate = "destinations::duplicate",
    /// A country that is not an ISO 3166-1 alpha-2 code with a calling code.
    DestinationsUnknownCountry = "destinations::unknown-country",
    /// `international` or `national` used as a class.
    DestinationsScopeAsClass = "destinations::scope-as-class",
    /// A class that is not a number class.
    DestinationsUnknownClass = "destinations::unknown-class",
    /// A rule that would deny an emergency number.
    DestinationsEmergency = "destinations::emergency",
    /// A prefix that is not E.164: starting with `0`, or too long.
    DestinationsBadPrefix = "destinations::bad-prefix",
    /// Two rules with opposite actions for the same prefix and window.
    DestinationsConflict = "destinations::conflict",
    /// A rule naming a window that is not declared.
    DestinationsUnknownWindow = "destinations::unknown-window",

    // ---- sources
    /// A source rule declared twice.
    SourcesDuplicate = "sources::duplicate",
    /// A country that is not an ISO 3166-1 alpha-2 code.
    SourcesUnknownCountry = "sources::unknown-country",
    /// A text that is not an IP address or network.
    SourcesBadAddress = "sources::bad-address",
    /// A network with host bits set (`10.0.0.1/8`).
    SourcesHostBits = "sources::host-bits",
    /// `allow country` and `deny country` in one policy.
    SourcesMixedGeo = "sources::mixed-geo",
    /// A network named by two source rules.
    SourcesConflict = "sources::conflict",

    // ---- limits
    /// A limit declared twice.
    LimitsDuplicate = "limits::duplicate",
    /// A limit on a class that is not a number class.
    LimitsUnknownClass = "limits::unknown-class",
    /// A limit or maximum duration of zero.
    LimitsZero = "limits::zero",
    /// A warning level not below the critical level.
    LimitsWarningNotBelowCritical = "limits::warning-not-below-critical",
    /// Levels on `duration` or a duration on `concurrent`/`rate` (the parser
    /// reports this shape first).
    LimitsBadValue = "limits::bad-value",

    // ---- responses
    /// A response declared twice.
    ResponsesDuplicate = "responses::duplicate",
    /// A response triggered by `duration`, which has no levels (the parser
    /// reports this shape first).
    ResponsesBadTrigger = "responses::bad-trigger",
    /// A response on a class that is not a number class.
    ResponsesUnknownClass = "responses::unknown-class",
    /// An anomaly kind that does not exist.
    ResponsesUnknownAnomaly = "responses::unknown-anomaly",
    /// A block without `for DURATION` or `until acknowledged` (the parser
    /// reports this shape first).
    ResponsesMissingHold = "responses::missing-hold",
    /// A hold on an `alert` (the parser reports this shape first).
    ResponsesHoldOnAlert = "responses::hold-on-alert",
    /// A block held for zero time.
    ResponsesZeroHold = "responses::zero-hold",
    /// A response on a level no limit declares.
    ResponsesNoSuchLimit = "responses::no-such-limit",

    // ---- crypto
    /// A crypto setting declared twice.
    CryptoDuplicate = "crypto::duplicate",
    /// Client certificates required without TLS.
    CryptoClientCertificateWithoutTls = "crypto::client-certificate-without-tls",

    // ---- analysis (warnings)
    /// A destination rule every prefix of which another rule decides.
    AnalysisNeverDecides = "analysis::never-decides",
    /// A destination rule whose removal changes no decision at any time.
    AnalysisRedundantRule = "analysis::redundant-rule",
    /// A network inside another with the opposite action.
    AnalysisSourceOverlap = "analysis::source-overlap",
    /// A window that is never open (every empty period is already
    /// `window::never-open`).
    AnalysisWindowNeverOpen = "analysis::window-never-open",
    /// A used window open all week.
    AnalysisWindowAlwaysOpen = "analysis::window-always-open",
    /// A window no rule uses.
    AnalysisUnusedWindow = "analysis::unused-window",
    /// A class limit that can never trigger.
    AnalysisLimitNeverTriggers = "analysis::limit-never-triggers",
    /// Premium-rate or shared-cost prefixes left open.
    AnalysisPremiumOpen = "analysis::premium-open",
    /// A declaration that repeats what an imported file declares.
    AnalysisOverrideChangesNothing = "analysis::override-changes-nothing",
}

impl Code {
    /// For a code that no policy text can produce because an earlier stage
    /// rejects every input that would reach it: the code reported instead.
    /// Its case file in `tests/cases/precluded/` shows that input.
    pub const fn precluded_by(self) -> Option<Code> {
        match self {
            Code::WindowBadDay => Some(Code::SyntaxBadDay),
            Code::LimitsBadValue => Some(Code::SyntaxBadDuration),
            Code::ResponsesBadTrigger => Some(Code::SyntaxUnknownKeyword),
            Code::ResponsesMissingHold => Some(Code::SyntaxExpected),
            Code::ResponsesHoldOnAlert => Some(Code::SyntaxTrailingInput),
            Code::AnalysisWindowNeverOpen => Some(Code::WindowNeverOpen),
            _ => None,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::str::FromStr for Code {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::Code;
    use std::collections::HashSet;

    #[test]
    fn codes_are_distinct_and_read_back() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "`{c}` twice");
            assert_eq!(c.as_str().parse::<Code>(), Ok(*c));
            assert!(
                c.precluded_by()
                    .is_none_or(|by| by.precluded_by().is_none())
            );
        }
    }
}
