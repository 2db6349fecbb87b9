//! National emergency short numbers per home country.
//!
//! The `phonenumber` crate does not load libphonenumber's
//! `ShortNumberMetadata.xml` (its `DATABASE` embeds only
//! `PhoneNumberMetadata.xml`, and its loader rejects the short-number-only
//! elements such as `shortCode` and `expandedEmergency`), so the numbers are
//! embedded here as facts.
//!
//! Sources:
//! - libphonenumber 9.0.33 `resources/ShortNumberMetadata.xml`, the
//!   `<emergency>` pattern of each territory listed below, expanded to its
//!   numbers (which in turn cites
//!   <https://en.wikipedia.org/wiki/Emergency_telephone_number>);
//! - additions marked in the comments: FR from the French government's list of
//!   emergency numbers (<https://www.service-public.fr>, "numéros d'urgence"):
//!   114 (deaf and hard-of-hearing, SMS/fax), 115 (SAMU social), 119
//!   (endangered children), 191 (aeronautical), 196 (maritime), 197 (terror
//!   and abduction alert); JP 118 (Japan Coast Guard); CN 122 (traffic
//!   police).
//!
//! 112 and 911 are added for every country by `policy-lang` itself (3GPP
//! TS 22.101 §10.1.1: mobile equipment must treat them as emergency numbers
//! everywhere), so they need not be repeated, but are kept where the source
//! lists them.
//!
//! Table checked: 2026-11-24.

/// `(ISO alpha-2, emergency numbers)`, sorted by code.
pub const EMERGENCY: &[(&str, &[&str])] = &[
    ("AE", &["112", "997", "998", "999"]),
    ("AR", &["100", "101", "107", "911"]),
    ("AT", &["112", "122", "133", "144"]),
    ("AU", &["000", "106", "112"]),
    ("BE", &["100", "101", "112"]),
    ("BR", &["112", "128", "190", "192", "193", "911"]),
    ("CA", &["112", "911"]),
    ("CH", &["112", "117", "118", "144"]),
    ("CL", &["131", "132", "133", "911"]),
    // 122: addition (traffic police).
    ("CN", &["110", "119", "120", "122"]),
    ("CO", &["112", "119", "123", "132", "156"]),
    (
        "CZ",
        &[
            "112", "150", "151", "152", "153", "154", "155", "156", "157", "158", "159",
        ],
    ),
    ("DE", &["110", "112"]),
    ("DK", &["112", "114"]),
    ("EG", &["122", "123", "180"]),
    ("ES", &["085", "088", "112"]),
    ("FI", &["112"]),
    // 114, 115, 119, 191, 196, 197: additions (service-public.fr).
    (
        "FR",
        &[
            "112", "114", "115", "119", "15", "17", "18", "191", "196", "197",
        ],
    ),
    ("GB", &["112", "999"]),
    ("GR", &["100", "112", "166", "199"]),
    ("HK", &["112", "992", "999"]),
    ("HU", &["104", "105", "107", "112"]),
    ("ID", &["110", "112", "113", "118", "119"]),
    ("IE", &["112", "999"]),
    ("IL", &["100", "101", "102", "112"]),
    ("IN", &["100", "101", "102", "108", "112", "1298", "2611"]),
    ("IT", &["112", "113", "115", "118"]),
    // 118: addition (Japan Coast Guard).
    ("JP", &["110", "118", "119"]),
    ("KR", &["112", "119"]),
    ("MX", &["060", "065", "066", "068", "080", "911"]),
    ("MY", &["112", "999"]),
    ("NG", &["199"]),
    ("NL", &["112", "911"]),
    ("NO", &["110", "112", "113"]),
    ("NZ", &["111"]),
    ("PH", &["112", "117", "911"]),
    ("PK", &["112", "1122", "115", "15", "16"]),
    ("PL", &["112", "997", "998", "999"]),
    ("PT", &["112", "115"]),
    ("RO", &["112"]),
    ("RU", &["01", "02", "03", "101", "102", "103", "112"]),
    ("SA", &["112", "911", "997", "999"]),
    ("SE", &["112", "90000"]),
    ("SG", &["993", "995", "999"]),
    ("TH", &["1669", "191", "199"]),
    ("TR", &["110", "112", "155"]),
    ("TW", &["110", "112", "119"]),
    ("UA", &["101", "102", "103", "112"]),
    ("US", &["112", "911"]),
    ("VN", &["113", "114", "115"]),
    ("ZA", &["10111", "10177", "112"]),
];
