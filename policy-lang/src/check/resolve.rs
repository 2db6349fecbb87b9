//! Checks of the merged policy as a whole: cross-references, geo mode, networks named twice, limits responses need, crypto, the home country.

use super::*;
use crate::diag::Code;

impl Cx<'_> {
    pub(super) fn cross_check(
        &mut self,
        root: FileId,
        kind: FileKind,
        ast: &ast::File,
        m: &Merged,
    ) -> Option<Resolved> {
        // Window references resolve against the merged windows.
        for d in m.dests.values() {
            if let Some((cond, span)) = &d.value.window
                && !m.windows.contains_key(&format!("window:{}", cond.name))
            {
                let names: Vec<&str> = m
                    .windows
                    .keys()
                    .filter_map(|k| k.strip_prefix("window:"))
                    .collect();
                let help = match did_you_mean(&cond.name, names.iter().copied()) {
                    Some(h) => h,
                    None if names.is_empty() => {
                        "declare it with `window NAME: mon-fri 08:00-18:00`".into()
                    }
                    None => format!(
                        "declared windows: {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.diags.push(
                    Diagnostic::error(
                        Code::DestinationsUnknownWindow,
                        d.origin.file,
                        *span,
                        format!("unknown window `{}`", cond.name),
                    )
                    .with_help(help),
                );
            }
        }
        // Windows need a zone: their own, or the policy's.
        let mut windows = Vec::new();
        for (key, w) in &m.windows {
            let name = key.trim_start_matches("window:").to_string();
            let zone = w
                .value
                .zone
                .clone()
                .or_else(|| m.zone.as_ref().map(|z| z.value.clone()));
            match zone {
                Some(zone) => windows.push(ir::TimeWindow { name, zone, spans: w.value.spans.clone(), rule: key.clone() }),
                None if kind == FileKind::Tenant => self.diags.push(
                    Diagnostic::error(Code::WindowNoZone, w.origin.file, w.value.name_span, format!("window `{name}` has no time zone"))
                        .with_help("end the window with a zone (`... America/New_York`) or declare the policy's zone with `zone America/New_York`"),
                ),
                None => {}
            }
        }
        // Geo-blocking is either a deny list or an allow-only list.
        let mut geo_modes = m.sources.values().filter_map(|d| match d.value {
            SourceRule::Geo { mode, .. } => Some((mode, d)),
            _ => None,
        });
        if let Some((first_mode, first)) = geo_modes.next() {
            for (mode, d) in geo_modes {
                if mode != first_mode {
                    // report at the file applied last, pointing at the other kind
                    let (here, other) = if d.origin.precedence >= first.origin.precedence {
                        (d, first)
                    } else {
                        (first, d)
                    };
                    let diag = Diagnostic::error(
                        Code::SourcesMixedGeo,
                        here.origin.file,
                        here.origin.stmt,
                        "`allow country` and `deny country` cannot be combined",
                    )
                    .with_help("use `deny country ...` to block some countries, or `allow country ...` to accept only the listed ones");
                    let diag = self.also_at(diag, &other.origin, "the other kind");
                    self.diags.push(diag);
                    break;
                }
            }
        }
        // A network is in one rule only.
        let mut nets: HashMap<IpNet, &Decl<SourceRule>> = HashMap::new();
        for d in m.sources.values() {
            let list = match &d.value {
                SourceRule::Network { net, .. } => vec![*net],
                SourceRule::Trunk { nets, .. } => nets.clone(),
                SourceRule::Geo { .. } => continue,
            };
            for net in list {
                if let Some(prev) = nets.insert(net, d) {
                    let (a, b) = if prev.origin.precedence <= d.origin.precedence {
                        (prev, d)
                    } else {
                        (d, prev)
                    };
                    let mut diag = Diagnostic::error(
                        Code::SourcesConflict,
                        b.origin.file,
                        b.origin.span,
                        format!("network `{net}` is named by two source rules"),
                    )
                    .with_help(
                        "a network may appear in one rule only: an allow, a deny, or one trunk",
                    );
                    if a.origin.file == b.origin.file {
                        diag = diag.with_related(a.origin.span, "also named here");
                    }
                    self.diags.push(diag);
                }
            }
        }
        // Responses that trigger on a limit level need that level declared.
        for d in m.responses.values() {
            if let ir::ResponseTrigger::Breach {
                metric,
                class,
                level,
            } = &d.value.trigger
            {
                let key = match class {
                    Some(c) => format!("limit:{}:{c}", metric_name(*metric)),
                    None => format!("limit:{}", metric_name(*metric)),
                };
                let declared = m.limits.get(&key).is_some_and(|l| match level {
                    ir::AlertLevel::Warning => l.value.warning.is_some(),
                    ir::AlertLevel::Critical => l.value.critical.is_some(),
                });
                if !declared {
                    let lvl = if *level == ir::AlertLevel::Warning {
                        "warning"
                    } else {
                        "critical"
                    };
                    let what = key.trim_start_matches("limit:").replace(':', " ");
                    self.diags.push(
                        Diagnostic::error(
                            Code::ResponsesNoSuchLimit,
                            d.origin.file,
                            d.value.trigger_span,
                            format!("no {lvl} level is declared for `{what}`, so this response can never trigger"),
                        )
                        .with_help(format!("declare it in `limits`, e.g. `{what}: {lvl} 10`")),
                    );
                }
            }
        }
        // Client certificates are a TLS feature.
        let required = |k: &str| m.crypto.get(k).is_some_and(|d| d.value.required);
        if required("crypto:client-certificate")
            && !required("crypto:tls")
            && let Some(d) = m.crypto.get("crypto:client-certificate")
        {
            self.diags.push(
                Diagnostic::error(
                    Code::CryptoClientCertificateWithoutTls,
                    d.origin.file,
                    d.origin.span,
                    "client certificates require TLS signalling",
                )
                .with_help("add `tls: required` to the `crypto` section"),
            );
        }
        if kind == FileKind::Base {
            return None;
        }
        let Some(home) = &m.home else {
            if m.home_written {
                return None; // the invalid `home` is already reported
            }
            self.diags.push(
                Diagnostic::error(Code::HomeMissing, root, ast.header.node.name.span, format!("tenant `{}` has no home country", ast.header.node.name.node))
                    .with_help("declare it with `home GB` (ISO 3166-1 alpha-2): it decides which calls are national and which emergency numbers always pass"),
            );
            return None;
        };
        Some(Resolved {
            home: home.value,
            windows,
        })
    }
}
