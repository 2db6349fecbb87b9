//! Window time: the minutes of the week a window is open (in its own local
//! time), and how such sets are written for people.

use std::collections::BTreeMap;
use tollgate_ir::{CompiledPolicy, TimeWindow};

pub(super) const WEEK: usize = 7 * 1440;
const WORDS: usize = WEEK.div_ceil(64);

/// A set of minutes of the week (Monday 00:00 is minute 0).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Minutes([u64; WORDS]);

impl Minutes {
    pub(super) fn none() -> Self {
        Minutes([0; WORDS])
    }
    pub(super) fn set(&mut self, t: usize) {
        let t = t % WEEK;
        self.0[t / 64] |= 1 << (t % 64);
    }
    pub(super) fn get(&self, t: usize) -> bool {
        self.0[t / 64] & (1 << (t % 64)) != 0
    }
    pub(super) fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub(super) fn minus(&self, other: &Minutes) -> Minutes {
        let mut out = self.clone();
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a &= !b;
        }
        out
    }
    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

pub(super) fn open_minutes(w: &TimeWindow) -> Minutes {
    let mut m = Minutes::none();
    for s in &w.spans {
        for d in &s.days {
            let day = *d as usize * 1440;
            let start = day + usize::from(s.start_minute);
            let end = if s.end_minute > s.start_minute {
                day + usize::from(s.end_minute)
            } else {
                day + 1440 + usize::from(s.end_minute)
            };
            for t in start..end {
                m.set(t);
            }
        }
    }
    m
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn clock(m: usize) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// `2 h`, `1 h 30 min`, `45 min`.
pub(super) fn hours(minutes: usize) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// `mon-fri 18:00-20:00, sat 10:00-12:00`.
pub(super) fn describe_minutes(m: &Minutes) -> String {
    // (start, end) within a day → days
    let mut by_time: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for day in 0..7 {
        let mut t = 0;
        while t < 1440 {
            if m.get(day * 1440 + t) {
                let start = t;
                while t < 1440 && m.get(day * 1440 + t) {
                    t += 1;
                }
                by_time.entry((start, t)).or_default().push(day);
            } else {
                t += 1;
            }
        }
    }
    let mut parts: Vec<(usize, String)> = by_time
        .into_iter()
        .map(|((s, e), days)| {
            (
                days[0],
                format!("{} {}-{}", days_text(&days), clock(s), clock(e)),
            )
        })
        .collect();
    parts.sort();
    parts
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn days_text(days: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &d in days {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == d => *end = d,
            _ => runs.push((d, d)),
        }
    }
    // sun and mon are neighbours: `sat-mon`, not `mon,sat,sun`
    if runs.len() > 1
        && runs.first().is_some_and(|r| r.0 == 0)
        && runs.last().is_some_and(|r| r.1 == 6)
        && let Some((a, _)) = runs.pop()
    {
        runs[0].0 = a;
    }
    runs.iter()
        .map(|&(a, b)| match (b + 7 - a) % 7 {
            0 => DAY_NAMES[a].to_string(),
            1 => format!("{},{}", DAY_NAMES[a], DAY_NAMES[b]),
            _ => format!("{}-{}", DAY_NAMES[a], DAY_NAMES[b]),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Open minutes of every window of a policy, by name.
pub(super) fn window_minutes(p: &CompiledPolicy) -> BTreeMap<&str, Minutes> {
    p.windows
        .iter()
        .map(|w| (w.name.as_str(), open_minutes(w)))
        .collect()
}
