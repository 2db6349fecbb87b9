//! Fleet-wide counting's state, as Kamailio holds it in the hash table
//! `tg_fleet` (tollgate.cfg, docs/sbc.md "Fleet-wide limits"): for
//! `/healthz` (`fleet`) and `/metrics` (`tollgate_fleet_*`). Pure; read by
//! `Agent::fleet_figures` (`readback`).

use serde_json::Value;
use tollgate_agent_api::{FleetCounting, FleetMode};

/// The SBC's fleet-wide counting at one read of `tg_fleet`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetFigures {
    /// Mode, members, last change.
    pub counting: FleetCounting,
    /// Calls whose concurrent or rate limits the SBC decided alone.
    pub local: u64,
    /// Calls admitted into slots the SBC held in the store already (spare
    /// slots), without a round trip.
    pub leased: u64,
    /// Times the SBC lost the store.
    pub partitions: u64,
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// `tg_fleet`'s entries → the figures; `None` when the SBC does not count
/// over a fleet (no `mode`). An unknown mode reads as degraded: the SBC is
/// not known to count over the fleet.
pub fn fleet_figures(entries: &[(String, Value)]) -> Option<FleetFigures> {
    let get = |k: &str| entries.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let mode = match get("mode")?.as_str()? {
        "fleet" => FleetMode::Fleet,
        _ => FleetMode::Degraded,
    };
    let num = |k: &str| get(k).and_then(int).unwrap_or(0);
    Some(FleetFigures {
        counting: FleetCounting {
            changed_unix: num("changed"),
            members: u32::try_from(num("members")).unwrap_or(0),
            mode,
        },
        local: u64::try_from(num("local")).unwrap_or(0),
        leased: u64::try_from(num("leased")).unwrap_or(0),
        partitions: u64::try_from(num("partitions")).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn not_configured() {
        assert_eq!(fleet_figures(&[]), None);
        assert_eq!(fleet_figures(&e(&[("members", json!(3))])), None);
    }

    #[test]
    fn fleet_and_degraded() {
        let f = fleet_figures(&e(&[
            ("mode", json!("fleet")),
            ("members", json!(3)),
            ("changed", json!(1_796_600_000)),
            ("local", json!(7)),
            ("leased", json!("12")),
            ("admit", json!("0123abcd")),
        ]))
        .unwrap();
        assert_eq!(f.counting.mode, FleetMode::Fleet);
        assert_eq!(
            (
                f.counting.members,
                f.counting.changed_unix,
                f.local,
                f.leased,
                f.partitions
            ),
            (3, 1_796_600_000, 7, 12, 0)
        );
        let d = fleet_figures(&e(&[("mode", json!("degraded")), ("members", json!("2"))])).unwrap();
        assert_eq!(
            (d.counting.mode, d.counting.members),
            (FleetMode::Degraded, 2)
        );
        // anything but "fleet" is not counting over the fleet
        let odd = fleet_figures(&e(&[("mode", json!("starting"))])).unwrap();
        assert_eq!(odd.counting.mode, FleetMode::Degraded);
        // garbage counts read as 0, never as a panic
        let g = fleet_figures(&e(&[
            ("mode", json!("fleet")),
            ("members", json!(-4)),
            ("local", json!({})),
        ]))
        .unwrap();
        assert_eq!((g.counting.members, g.local), (0, 0));
    }
}
