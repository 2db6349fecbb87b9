//! When a compiled window is open. Windows are weekly periods in local time of
//! an IANA zone; an instant is converted to that zone (with its daylight-saving
//! rules, from the tz database jiff bundles) before the days and times are
//! compared, so a window stays right across DST changes.

use jiff::Timestamp;
use jiff::civil::Weekday as CivilDay;
use jiff::tz::TimeZone;
use tollgate_ir::{TimeWindow, Weekday};

/// The window's zone is not in the tz database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone `{0}`")]
pub struct UnknownZone(pub String);

/// Whether `window` is open at `at`.
pub fn is_open(window: &TimeWindow, at: Timestamp) -> Result<bool, UnknownZone> {
    let tz = TimeZone::get(&window.zone).map_err(|_| UnknownZone(window.zone.clone()))?;
    Ok(is_open_in(window, at, &tz))
}

/// Whether `window` is open at `at`, its zone already resolved to `tz`.
pub fn is_open_in(window: &TimeWindow, at: Timestamp, tz: &TimeZone) -> bool {
    let local = at.to_zoned(tz.clone());
    let day = weekday(local.weekday());
    let yesterday = weekday(local.weekday().previous());
    let minute =
        u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
    window.spans.iter().any(|s| {
        if s.start_minute < s.end_minute {
            s.days.contains(&day) && (s.start_minute..s.end_minute).contains(&minute)
        } else {
            // past midnight: the evening of a listed day, or the morning after one
            (s.days.contains(&day) && minute >= s.start_minute)
                || (s.days.contains(&yesterday) && minute < s.end_minute)
        }
    })
}

fn weekday(d: CivilDay) -> Weekday {
    match d {
        CivilDay::Monday => Weekday::Mon,
        CivilDay::Tuesday => Weekday::Tue,
        CivilDay::Wednesday => Weekday::Wed,
        CivilDay::Thursday => Weekday::Thu,
        CivilDay::Friday => Weekday::Fri,
        CivilDay::Saturday => Weekday::Sat,
        CivilDay::Sunday => Weekday::Sun,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_ir::WeeklySpan;

    fn window(zone: &str, days: &[Weekday], start: u16, end: u16) -> TimeWindow {
        TimeWindow {
            name: "w".into(),
            zone: zone.into(),
            spans: vec![WeeklySpan {
                days: days.to_vec(),
                start_minute: start,
                end_minute: end,
            }],
            rule: "window:w".into(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("valid RFC 3339")
    }

    const WEEKDAYS: [Weekday; 5] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ];

    #[test]
    fn office_hours_follow_new_york_daylight_saving() {
        let office = window("America/New_York", &WEEKDAYS, 8 * 60, 18 * 60);
        // Winter (EST, UTC-5): 08:00 local is 13:00 UTC.
        assert!(!is_open(&office, at("2026-01-14T12:59:00Z")).unwrap());
        assert!(is_open(&office, at("2026-01-14T13:00:00Z")).unwrap());
        // Summer (EDT, UTC-4): 08:00 local is 12:00 UTC.
        assert!(is_open(&office, at("2026-07-15T12:00:00Z")).unwrap());
        assert!(!is_open(&office, at("2026-07-15T22:00:00Z")).unwrap());
        // Monday after spring-forward (2026-03-08): already EDT.
        assert!(is_open(&office, at("2026-03-09T12:30:00Z")).unwrap());
        // Friday before fall-back (2026-11-01): still EDT; the Monday after: EST.
        assert!(is_open(&office, at("2026-10-30T12:30:00Z")).unwrap());
        assert!(!is_open(&office, at("2026-11-02T12:30:00Z")).unwrap());
        assert!(is_open(&office, at("2026-11-02T13:30:00Z")).unwrap());
    }

    #[test]
    fn the_repeated_hour_of_fall_back_is_inside_a_window_both_times() {
        // 2026-11-01 01:00-02:00 happens twice in New York (EDT then EST).
        let w = window("America/New_York", &[Weekday::Sun], 60, 120);
        assert!(is_open(&w, at("2026-11-01T05:30:00Z")).unwrap()); // 01:30 EDT
        assert!(is_open(&w, at("2026-11-01T06:30:00Z")).unwrap()); // 01:30 EST
        assert!(!is_open(&w, at("2026-11-01T07:30:00Z")).unwrap()); // 02:30 EST
    }

    #[test]
    fn a_period_past_midnight_belongs_to_the_day_it_starts() {
        let night = window("Europe/London", &WEEKDAYS, 22 * 60, 6 * 60);
        assert!(is_open(&night, at("2026-01-16T23:00:00Z")).unwrap()); // Fri 23:00
        assert!(is_open(&night, at("2026-01-17T05:59:00Z")).unwrap()); // Sat 05:59, from Friday
        assert!(!is_open(&night, at("2026-01-18T05:00:00Z")).unwrap()); // Sun 05:00: Saturday not listed
        assert!(!is_open(&night, at("2026-01-12T05:00:00Z")).unwrap()); // Mon 05:00: Sunday not listed
        assert!(is_open(&night, at("2026-01-13T05:00:00Z")).unwrap()); // Tue 05:00, from Monday
    }

    #[test]
    fn whole_days_and_unknown_zones() {
        let weekend = window("Europe/Berlin", &[Weekday::Sat, Weekday::Sun], 0, 1440);
        assert!(is_open(&weekend, at("2026-01-17T00:30:00Z")).unwrap()); // Sat 01:30 CET
        assert!(is_open(&weekend, at("2026-01-18T22:59:00Z")).unwrap()); // Sun 23:59 CET
        assert!(!is_open(&weekend, at("2026-01-18T23:00:00Z")).unwrap()); // Mon 00:00 CET
        let bad = window("Mars/Olympus", &WEEKDAYS, 0, 60);
        assert_eq!(
            is_open(&bad, at("2026-01-18T23:00:00Z")),
            Err(UnknownZone("Mars/Olympus".into()))
        );
    }
}
