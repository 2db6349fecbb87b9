//! Week sets: the minutes of the week (in local time) a window is open.

use tollgate_ir::{TimeWindow, Weekday};

/// Minutes in a day.
pub const DAY: u32 = 1440;
/// Minutes in a week.
pub const WEEK: u32 = 7 * DAY;

/// A set of minutes of the week (Monday 00:00 is 0): sorted, disjoint,
/// non-adjacent half-open intervals within `0..WEEK`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeekSet {
    spans: Vec<(u32, u32)>,
}

impl WeekSet {
    /// The minutes a window is open, in its local time.
    pub fn of_window(w: &TimeWindow) -> Self {
        let mut raw = Vec::new();
        for s in &w.spans {
            let start = u32::from(s.start_minute).min(DAY);
            let end = u32::from(s.end_minute).min(DAY);
            if start == end {
                continue;
            }
            for d in &s.days {
                let base = day_index(*d) * DAY;
                // past midnight when the end is not after the start
                let stop = if start < end {
                    base + end
                } else {
                    base + DAY + end
                };
                raw.push((base + start, stop));
            }
        }
        Self::from_intervals(raw)
    }

    /// Normalizes intervals `start..end` with `start < WEEK` and `end` at most
    /// a day past the week's end (wrapping into Monday).
    pub fn from_intervals(raw: impl IntoIterator<Item = (u32, u32)>) -> Self {
        let mut v: Vec<(u32, u32)> = Vec::new();
        for (s, e) in raw {
            let (s, e) = (s % WEEK, s % WEEK + e.saturating_sub(s).min(WEEK));
            if s >= e {
                continue;
            }
            if e > WEEK {
                v.push((s, WEEK));
                v.push((0, e - WEEK));
            } else {
                v.push((s, e));
            }
        }
        v.sort_unstable();
        let mut spans: Vec<(u32, u32)> = Vec::new();
        for (s, e) in v {
            match spans.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => spans.push((s, e)),
            }
        }
        WeekSet { spans }
    }

    /// How many minutes of the week are in the set.
    pub fn minutes(&self) -> u32 {
        self.spans.iter().map(|(s, e)| e - s).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.minutes() == WEEK
    }

    /// Whether minute `m` (`0..WEEK`) is in the set.
    pub fn contains(&self, m: u32) -> bool {
        let i = self.spans.partition_point(|&(s, _)| s <= m);
        i > 0 && m < self.spans[i - 1].1
    }

    /// Every minute where membership may change.
    pub(super) fn boundaries(&self) -> impl Iterator<Item = u32> + '_ {
        self.spans.iter().flat_map(|&(s, e)| [s, e % WEEK])
    }
}

fn day_index(d: Weekday) -> u32 {
    match d {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}
