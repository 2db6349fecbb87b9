//! Time atoms: which combinations of window states can occur at one instant.
//!
//! Windows are weekly sets of minutes in local time ([`WeekSet`]). The
//! destination analyses need to know which combinations of window states
//! (open or closed) can occur at the same instant; each such combination is a
//! time *atom*, and a set of instants is a bitset over atoms ([`Times`]).
//! Windows in one zone are combined minute by minute over the local week,
//! which is exact. Windows in several zones are combined per period of fixed
//! UTC offsets between 2024 and 2044 (the zones' daylight-saving transitions
//! from the bundled tz database), which is exact for those years.

use super::week::{DAY, WEEK, WeekSet};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::{BTreeSet, HashMap};
use tollgate_ir::{TimeWindow, WindowCondition, WindowWhen};

/// A set of time atoms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Times(pub(super) Vec<u64>);

impl Times {
    pub(super) fn empty(n: usize) -> Self {
        Times(vec![0; n.div_ceil(64).max(1)])
    }

    pub(super) fn full(n: usize) -> Self {
        let mut t = Times(vec![!0; n.div_ceil(64).max(1)]);
        if !n.is_multiple_of(64)
            && let Some(last) = t.0.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        if n == 0 {
            t.0[0] = 0;
        }
        t
    }

    pub(super) fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    pub(super) fn and(&self, o: &Times) -> Times {
        Times(self.0.iter().zip(&o.0).map(|(a, b)| a & b).collect())
    }

    pub(super) fn minus(&self, o: &Times) -> Times {
        Times(self.0.iter().zip(&o.0).map(|(a, b)| a & !b).collect())
    }

    pub(super) fn union_with(&mut self, o: &Times) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

/// First and last instants considered when windows of several zones are combined.
pub(super) const FROM_YEAR_START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
pub(super) const TO_YEAR_START: i64 = 2_335_219_200; // 2044-01-01T00:00:00Z
/// 1970-01-01 was a Thursday: the epoch is 3 days into its week (Monday 00:00 is 0).
pub(super) const EPOCH_WEEK_MINUTE: i64 = 3 * DAY as i64;

/// The time atoms of a policy: which windows can be open together.
pub(super) struct Clock {
    pub(super) atoms: usize,
    /// Window name → the atoms in which it is open.
    pub(super) open: HashMap<String, Times>,
}

impl Clock {
    /// Atoms over the windows in `used` (the others decide nothing).
    pub(super) fn new(windows: &[TimeWindow], used: &BTreeSet<&str>) -> Clock {
        let ws: Vec<(&TimeWindow, WeekSet)> = windows
            .iter()
            .filter(|w| used.contains(w.name.as_str()))
            .map(|w| (w, WeekSet::of_window(w)))
            .collect();
        let states = states(&ws);
        let atoms = states.len();
        let mut open: HashMap<String, Times> = ws
            .iter()
            .map(|(w, _)| (w.name.clone(), Times::empty(atoms)))
            .collect();
        for (i, state) in states.iter().enumerate() {
            for ((w, _), is_open) in ws.iter().zip(state) {
                if *is_open && let Some(t) = open.get_mut(&w.name) {
                    t.insert(i);
                }
            }
        }
        Clock { atoms, open }
    }

    pub(super) fn all(&self) -> Times {
        Times::full(self.atoms)
    }

    /// The atoms in which an entry with this condition applies.
    pub(super) fn when(&self, c: Option<&WindowCondition>) -> Times {
        let Some(c) = c else {
            return self.all();
        };
        let open = self
            .open
            .get(&c.name)
            .cloned()
            .unwrap_or_else(|| Times::empty(self.atoms));
        match c.when {
            WindowWhen::During => open,
            WindowWhen::Outside => self.all().minus(&open),
        }
    }
}

/// The combinations of window states (in the order of `ws`) that occur.
pub(super) fn states(ws: &[(&TimeWindow, WeekSet)]) -> BTreeSet<Vec<bool>> {
    let mut out = BTreeSet::new();
    let zones: BTreeSet<&str> = ws.iter().map(|(w, _)| w.zone.as_str()).collect();
    if zones.len() <= 1 {
        // one zone: local minutes of the week line up for every window
        sweep(ws, &vec![0; ws.len()], 0, WEEK, &mut out);
        return out;
    }
    let tz: HashMap<&str, TimeZone> = zones
        .iter()
        .map(|z| (*z, TimeZone::get(z).unwrap_or(TimeZone::UTC)))
        .collect();
    let start = Timestamp::from_second(FROM_YEAR_START).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut cuts: BTreeSet<i64> = BTreeSet::from([FROM_YEAR_START, TO_YEAR_START]);
    for z in tz.values() {
        for t in z.following(start) {
            let s = t.timestamp().as_second();
            if s >= TO_YEAR_START {
                break;
            }
            cuts.insert(s);
        }
    }
    let cuts: Vec<i64> = cuts.into_iter().collect();
    let mut full_weeks: BTreeSet<Vec<i64>> = BTreeSet::new();
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let at = Timestamp::from_second(a).unwrap_or(start);
        let offsets: Vec<i64> = ws
            .iter()
            .map(|(w, _)| {
                tz.get(w.zone.as_str())
                    .map_or(0, |z| i64::from(z.to_offset(at).seconds()).div_euclid(60))
            })
            .collect();
        let minutes = (b - a + 59) / 60;
        if minutes >= i64::from(WEEK) {
            if full_weeks.insert(offsets.clone()) {
                sweep(ws, &offsets, 0, WEEK, &mut out);
            }
        } else {
            let from = (a.div_euclid(60) + EPOCH_WEEK_MINUTE).rem_euclid(i64::from(WEEK));
            sweep(
                ws,
                &offsets,
                u32::try_from(from).unwrap_or(0),
                u32::try_from(minutes).unwrap_or(0),
                &mut out,
            );
        }
    }
    out
}

/// Adds the window states at UTC minutes `from .. from + len` of the week
/// (wrapping), where window `i` reads local time as UTC plus `offsets[i]`
/// minutes.
pub(super) fn sweep(
    ws: &[(&TimeWindow, WeekSet)],
    offsets: &[i64],
    from: u32,
    len: u32,
    out: &mut BTreeSet<Vec<bool>>,
) {
    let week = i64::from(WEEK);
    let to_u32 = |m: i64| u32::try_from(m.rem_euclid(week)).unwrap_or(0);
    let mut points = vec![from];
    for ((_, set), off) in ws.iter().zip(offsets) {
        for b in set.boundaries() {
            let u = to_u32(i64::from(b) - off);
            if (u + WEEK - from) % WEEK < len {
                points.push(u);
            }
        }
    }
    points.sort_unstable();
    points.dedup();
    for u in points {
        let state = ws
            .iter()
            .zip(offsets)
            .map(|((_, set), off)| set.contains(to_u32(i64::from(u) + off)))
            .collect();
        out.insert(state);
    }
}
