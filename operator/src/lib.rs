//! The Tollgate operator: it will reconcile `TollPolicy` resources onto SBC
//! fleets (see `docs/` and ARCHITECTURE.md). This crate holds no controller
//! yet; it exists so the workspace layout and the dependency direction
//! (operator → crds, never the reverse) are fixed from the start.
