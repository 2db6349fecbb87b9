//! Lowering the merged policy to the compiled IR: the destination table with conflicts and carve-outs resolved, classes, sources, windows, limits, responses, crypto and the source map.

use super::*;
use crate::diag::Code;

impl Cx<'_> {
    pub(super) fn lower(
        &mut self,
        ast: &ast::File,
        m: &Merged,
        r: &Resolved,
    ) -> ir::CompiledPolicy {
        let tenant = ast.header.node.name.node.clone();
        let default = |scope: &str, fallback: ir::Verdict| {
            m.defaults.get(scope).map_or(fallback, |d| d.value.1)
        };
        // Entries before conflict resolution: (prefix, window) → candidates.
        #[derive(Clone)]
        struct Cand {
            action: ir::Verdict,
            rule: String,
            window: Option<ir::WindowCondition>,
            precedence: usize,
            specificity: u8,
            file: FileId,
            span: Span,
        }
        let mut cands: BTreeMap<(String, Option<ir::WindowCondition>), Vec<Cand>> = BTreeMap::new();
        let mut add =
            |prefix: String, c: Cand| cands.entry((prefix, c.window.clone())).or_default().push(c);
        let intl = default("dst:international", ir::Verdict::Deny);
        let national = default("dst:national", ir::Verdict::Allow);
        let none = Span::default();
        let root_file = FileId::default();
        add(
            String::new(),
            Cand {
                action: intl,
                rule: "dst:international".into(),
                window: None,
                precedence: 0,
                specificity: 0,
                file: root_file,
                span: none,
            },
        );
        // Carve-outs: prefixes under a rule's prefixes that belong to another
        // country (e.g. Guernsey's +44 1481 under GB's +44); the rule must not
        // decide there. Resolved below, once the whole table is known.
        let mut carve_outs: Vec<(String, String)> = r
            .home
            .carve_outs
            .iter()
            .map(|c| (c.clone(), "dst:national".to_string()))
            .collect();
        for p in &r.home.prefixes {
            let p = p.clone();
            add(
                p,
                Cand {
                    action: national,
                    rule: "dst:national".into(),
                    window: None,
                    precedence: 0,
                    specificity: 0,
                    file: root_file,
                    span: none,
                },
            );
        }
        for (key, d) in &m.dests {
            let prefixes = match &d.value.target {
                Target::Prefix(p) => vec![p.clone()],
                Target::Country(c) => {
                    carve_outs.extend(c.carve_outs.iter().map(|co| (co.clone(), key.clone())));
                    c.prefixes.clone()
                }
                Target::Class(c) => c.prefixes.clone(),
            };
            for p in prefixes {
                add(
                    p,
                    Cand {
                        action: d.value.action,
                        rule: key.clone(),
                        window: d.value.window.as_ref().map(|w| w.0.clone()),
                        precedence: d.origin.precedence + 1,
                        specificity: d.value.target.specificity(),
                        file: d.origin.file,
                        span: d.origin.span,
                    },
                );
            }
        }
        // One entry per (prefix, window): the latest file wins; within a file a
        // differing action is a conflict, an equal one goes to the more specific rule.
        let mut entries: Vec<(String, Cand)> = Vec::new();
        let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
        for ((prefix, _), mut list) in cands {
            list.sort_by(|a, b| {
                (b.precedence, b.specificity)
                    .cmp(&(a.precedence, a.specificity))
                    .then(a.span.start.cmp(&b.span.start))
            });
            let Some(best) = list.first().cloned() else {
                continue;
            };
            if let Some(next) = list.get(1) {
                self.runner_up.insert(
                    (prefix.clone(), next.window.clone()),
                    ir::DestinationRule {
                        prefix: prefix.clone(),
                        action: next.action,
                        rule: next.rule.clone(),
                        window: next.window.clone(),
                    },
                );
            }
            for other in list.iter().skip(1).filter(|o| o.specificity > 0) {
                self.displaced
                    .entry(other.rule.clone())
                    .or_default()
                    .insert(best.rule.clone());
            }
            for other in list
                .iter()
                .skip(1)
                .filter(|o| o.precedence == best.precedence && o.specificity > 0)
            {
                if other.action != best.action
                    && reported.insert((best.rule.clone(), other.rule.clone()))
                {
                    let (first, second) = if best.span.start <= other.span.start {
                        (&best, other)
                    } else {
                        (other, &best)
                    };
                    self.diags.push(
                        Diagnostic::error(
                            Code::DestinationsConflict,
                            second.file,
                            second.span,
                            format!(
                                "`{}` and `{}` give opposite actions for calls to +{prefix}",
                                first.rule, second.rule
                            ),
                        )
                        .with_label("conflicts with the earlier rule")
                        .with_related(first.span, "the earlier rule")
                        .with_help("make one rule more specific (a longer prefix wins), or remove one of them"),
                    );
                }
            }
            entries.push((prefix, best));
        }
        // Evaluation order within a prefix: rules with a window first (latest
        // file first, then as written), the unconditional entry last.
        entries.sort_by(|(pa, a), (pb, b)| {
            pa.cmp(pb)
                .then(a.window.is_none().cmp(&b.window.is_none()))
                .then(b.precedence.cmp(&a.precedence))
                .then(a.file.cmp(&b.file))
                .then(a.span.start.cmp(&b.span.start))
        });
        let mut table: BTreeMap<String, Vec<ir::DestinationRule>> = BTreeMap::new();
        for (prefix, c) in entries {
            table
                .entry(prefix.clone())
                .or_default()
                .push(ir::DestinationRule {
                    prefix,
                    action: c.action,
                    rule: c.rule,
                    window: c.window,
                });
        }
        // A carve-out of rule R at prefix P decides as if R did not cover P:
        // P gets copies of the entries of the enclosing prefixes (longest
        // first, leaving out R's own) down to the first unconditional one,
        // after any entry other rules put at P themselves.
        carve_outs.sort();
        carve_outs.dedup();
        for (prefix, owner) in carve_outs {
            if table
                .get(&prefix)
                .is_some_and(|es| es.iter().any(|e| e.window.is_none()))
            {
                continue;
            }
            let mut copies = Vec::new();
            'up: for len in (0..prefix.len()).rev() {
                for e in table.get(&prefix[..len]).into_iter().flatten() {
                    if e.rule == owner {
                        continue;
                    }
                    copies.push(ir::DestinationRule {
                        prefix: prefix.clone(),
                        ..e.clone()
                    });
                    if e.window.is_none() {
                        break 'up;
                    }
                }
            }
            table.entry(prefix).or_default().extend(copies);
        }
        let destinations: Vec<ir::DestinationRule> = table.into_values().flatten().collect();

        // Classes: national prefixes and the number classes limits and responses name.
        let mut named: BTreeSet<String> = BTreeSet::new();
        for l in m.limits.values() {
            if let Some((c, _)) = &l.value.class {
                named.insert(c.clone());
            }
        }
        for rs in m.responses.values() {
            if let ir::ResponseTrigger::Breach { class: Some(c), .. } = &rs.value.trigger {
                named.insert(c.clone());
            }
            if let ir::ResponseAction::BlockClasses { classes } = &rs.value.action {
                named.extend(classes.iter().cloned());
            }
        }
        let mut classes: Vec<ir::ClassPrefix> = disjoint(&r.home.prefixes, &r.home.carve_outs)
            .into_iter()
            .map(|prefix| ir::ClassPrefix {
                prefix,
                class: "national".into(),
            })
            .collect();
        for name in &named {
            if let Some(c) = numbering::class(name) {
                classes.extend(c.prefixes.iter().map(|p| ir::ClassPrefix {
                    prefix: p.clone(),
                    class: c.name.into(),
                }));
            }
        }
        classes.sort();
        classes.dedup();

        // Sources.
        let mut networks: Vec<(IpNet, ir::SourceNetwork)> = Vec::new();
        let mut geo: Option<ir::GeoPolicy> = None;
        for (key, d) in &m.sources {
            match &d.value {
                SourceRule::Network { net, action } => networks.push((
                    *net,
                    ir::SourceNetwork {
                        cidr: net.to_string(),
                        action: *action,
                        trunk: None,
                        rule: key.clone(),
                    },
                )),
                SourceRule::Trunk { name, nets } => networks.extend(nets.iter().map(|net| {
                    (
                        *net,
                        ir::SourceNetwork {
                            cidr: net.to_string(),
                            action: ir::Verdict::Allow,
                            trunk: Some(name.clone()),
                            rule: key.clone(),
                        },
                    )
                })),
                SourceRule::Geo { country, mode } => {
                    let g = geo.get_or_insert_with(|| ir::GeoPolicy {
                        mode: *mode,
                        countries: Vec::new(),
                        rule: "src:geo".into(),
                    });
                    g.countries.push((*country).to_string());
                }
            }
        }
        networks.sort_by(|a, b| net_order(&a.0, &b.0));
        if let Some(g) = &mut geo {
            g.countries.sort();
        }

        let mut limits: Vec<ir::Limit> = m
            .limits
            .iter()
            .map(|(key, d)| ir::Limit {
                metric: d.value.metric,
                class: d.value.class.as_ref().map(|c| c.0.clone()),
                warning: d.value.warning,
                critical: d.value.critical,
                rule: key.clone(),
            })
            .collect();
        limits.sort_by(|a, b| (a.metric, &a.class).cmp(&(b.metric, &b.class)));
        let responses = m
            .responses
            .iter()
            .map(|(key, d)| ir::Response {
                trigger: d.value.trigger.clone(),
                action: d.value.action.clone(),
                hold_seconds: d.value.hold_seconds,
                until_acknowledged: d.value.until_acknowledged,
                rule: key.clone(),
            })
            .collect();
        let req = |k: &str| m.crypto.get(k).is_some_and(|d| d.value.required);
        let crypto = ir::CryptoPolicy {
            require_tls: req("crypto:tls"),
            require_srtp: req("crypto:srtp"),
            require_client_certificate: req("crypto:client-certificate"),
        };

        // Source map: every declaration, plus the geo policy's first statement.
        let origins = m.all_origins();
        let places = self.places(origins.iter().map(|(_, o)| *o));
        let mut rules: Vec<ir::RuleSource> = origins
            .iter()
            .zip(places)
            .map(|((id, o), place)| self.rule_source(id, o, place))
            .collect();
        if let Some(first_geo) = m
            .sources
            .values()
            .filter(|d| matches!(d.value, SourceRule::Geo { .. }))
            .max_by_key(|d| d.origin.precedence)
        {
            // the geo policy as a whole: point at its statement, not one country
            let whole = Origin {
                span: first_geo.origin.stmt,
                ..first_geo.origin.clone()
            };
            let place = self.ws.sources.get(whole.file).line_col(whole.span.start);
            rules.push(self.rule_source("src:geo", &whole, place));
        }
        rules.sort_by(|a, b| a.id.cmp(&b.id));

        let mut emergency: Vec<String> = numbering::emergency_numbers(r.home.iso)
            .into_iter()
            .map(String::from)
            .collect();
        emergency.sort();
        emergency.dedup();

        ir::CompiledPolicy {
            tenant,
            home_country: r.home.iso.to_string(),
            numbering_plan: numbering::data_source().to_string(),
            emergency_numbers: emergency,
            destinations,
            classes,
            sources: ir::SourcePolicy {
                networks: networks.into_iter().map(|(_, n)| n).collect(),
                geo,
            },
            windows: r.windows.clone(),
            limits,
            responses,
            crypto,
            rules,
        }
    }

    /// Line and column of each origin's item, in the order given (looked up
    /// file by file, in offset order: see [`SourceFile::line_cols`]).
    ///
    /// [`SourceFile::line_cols`]: crate::source::SourceFile::line_cols
    fn places<'o>(&self, origins: impl Iterator<Item = &'o Origin>) -> Vec<(usize, usize)> {
        // per file: the origins' indices and offsets
        let mut by_file: BTreeMap<FileId, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        let mut n = 0;
        for (i, o) in origins.enumerate() {
            let (at, offsets) = by_file.entry(o.file).or_default();
            at.push(i);
            offsets.push(o.span.start);
            n = i + 1;
        }
        let mut out = vec![(1, 1); n];
        for (file, (at, offsets)) in by_file {
            let found = self.ws.sources.get(file).line_cols(&offsets);
            for (i, place) in at.into_iter().zip(found) {
                out[i] = place;
            }
        }
        out
    }

    /// The source-map entry of a rule; `(line, column)` of `o.span.start`.
    pub(super) fn rule_source(
        &self,
        id: &str,
        o: &Origin,
        (line, column): (usize, usize),
    ) -> ir::RuleSource {
        let file = self.ws.sources.get(o.file);
        let written = file.text.get(o.stmt.start..o.stmt.end).unwrap_or_default();
        // the statement on one line, words separated by one space
        let mut text = String::with_capacity(written.len());
        for word in written.split_whitespace() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(word);
        }
        ir::RuleSource {
            id: id.to_string(),
            file: file.name.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            text,
        }
    }
}
