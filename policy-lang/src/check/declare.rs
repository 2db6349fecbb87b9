//! Checking one file: every statement is validated where it was written and becomes a keyed declaration.

use super::*;
use crate::diag::Code;

impl Cx<'_> {
    pub(super) fn declarations(
        &mut self,
        file: FileId,
        precedence: usize,
        ast: &ast::File,
    ) -> Decls {
        let mut d = Decls::default();
        let origin = |span: Span, stmt: Span| Origin {
            file,
            span,
            stmt,
            precedence,
        };
        self.check_name(file, &ast.header.node.name, "policy");
        for item in &ast.items {
            let stmt_span = item.span;
            match &item.node {
                ast::Item::Import(_) => {}
                ast::Item::Home(code) => {
                    d.home_written = true;
                    if let Some(c) = self.country(file, code, Code::HomeUnknownCountry) {
                        if let Some(prev) = &d.home {
                            self.duplicate(file, code.span, prev.origin.span, "`home`");
                        } else {
                            d.home = Some(Decl {
                                key: "home".into(),
                                value: c,
                                origin: origin(code.span, stmt_span),
                            });
                        }
                    }
                }
                ast::Item::Zone(z) => {
                    if self.zone(file, z) {
                        if let Some(prev) = &d.zone {
                            self.duplicate(file, z.span, prev.origin.span, "`zone`");
                        } else {
                            d.zone = Some(Decl {
                                key: "zone".into(),
                                value: z.node.clone(),
                                origin: origin(z.span, stmt_span),
                            });
                        }
                    }
                }
                ast::Item::Window(w) => {
                    if let Some(value) = self.window(file, w) {
                        d.windows.push(Decl {
                            key: format!("window:{}", w.name.node),
                            value,
                            origin: origin(w.name.span, stmt_span),
                        });
                    }
                }
                ast::Item::Destinations(b) => {
                    for s in &b.stmts {
                        self.dest_stmt(file, s, &mut d, &origin);
                    }
                }
                ast::Item::Sources(b) => {
                    for s in &b.stmts {
                        self.source_stmt(file, s, &mut d, &origin);
                    }
                }
                ast::Item::Limits(b) => {
                    for s in &b.stmts {
                        if let Some((key, value, span)) = self.limit_stmt(file, &s.node) {
                            d.limits.push(Decl {
                                key,
                                value,
                                origin: origin(span, s.span),
                            });
                        }
                    }
                }
                ast::Item::Responses(b) => {
                    for s in &b.stmts {
                        if let Some((key, value)) = self.response_stmt(file, &s.node) {
                            d.responses.push(Decl {
                                key,
                                value,
                                origin: origin(s.span, s.span),
                            });
                        }
                    }
                }
                ast::Item::Crypto(b) => {
                    for s in &b.stmts {
                        let key = match s.node.key.node {
                            ast::CryptoKey::Tls => "crypto:tls",
                            ast::CryptoKey::Srtp => "crypto:srtp",
                            ast::CryptoKey::ClientCertificate => "crypto:client-certificate",
                        };
                        let value = CryptoDecl {
                            required: s.node.value.node == ast::Requirement::Required,
                        };
                        d.crypto.push(Decl {
                            key: key.into(),
                            value,
                            origin: origin(s.node.key.span, s.span),
                        });
                    }
                }
            }
        }
        self.no_duplicates(file, &d.defaults, Code::DestinationsDuplicate, "default");
        self.no_duplicates(
            file,
            &d.dests,
            Code::DestinationsDuplicate,
            "destination rule",
        );
        self.no_duplicates(file, &d.windows, Code::WindowDuplicate, "window");
        self.no_duplicates(file, &d.sources, Code::SourcesDuplicate, "source rule");
        self.no_duplicates(file, &d.limits, Code::LimitsDuplicate, "limit");
        self.no_duplicates(file, &d.responses, Code::ResponsesDuplicate, "response");
        self.no_duplicates(file, &d.crypto, Code::CryptoDuplicate, "crypto setting");
        d
    }

    pub(super) fn no_duplicates<T>(
        &mut self,
        file: FileId,
        decls: &[Decl<T>],
        code: Code,
        what: &str,
    ) {
        let mut seen: HashMap<&str, Span> = HashMap::with_capacity(decls.len());
        for d in decls {
            if let Some(first) = seen.get(d.key.as_str()) {
                self.diags.push(
                    Diagnostic::error(code, file, d.origin.span, format!("{what} `{}` is declared twice", d.key))
                        .with_label("declared again here")
                        .with_related(*first, "first declared here")
                        .with_help("remove one of them; to change an imported value, declare it once in this file"),
                );
            } else {
                seen.insert(&d.key, d.origin.span);
            }
        }
    }

    pub(super) fn duplicate(&mut self, file: FileId, span: Span, first: Span, what: &str) {
        self.diags.push(
            Diagnostic::error(
                Code::PolicyDuplicate,
                file,
                span,
                format!("{what} is declared twice"),
            )
            .with_label("declared again here")
            .with_related(first, "first declared here")
            .with_help("keep one of them"),
        );
    }

    /// Points a diagnostic at a second place: a label when it is in the same
    /// file, otherwise its position in the help (labels cannot cross files).
    pub(super) fn also_at(&self, diag: Diagnostic, other: &Origin, what: &str) -> Diagnostic {
        if other.file == diag.file {
            return diag.with_related(other.stmt, what);
        }
        let file = self.ws.sources.get(other.file);
        let (line, column) = file.line_col(other.stmt.start);
        let place = format!("{what}: {}:{line}:{column}", file.name);
        let help = match diag.help.clone() {
            Some(h) => format!("{h} ({place})"),
            None => place,
        };
        diag.with_help(help)
    }

    pub(super) fn check_name(&mut self, file: FileId, name: &ast::Ident, what: &str) {
        if !is_dns_label(&name.node) {
            self.diags.push(
                Diagnostic::error(Code::PolicyBadName, file, name.span, format!("`{}` is not a valid {what} name", name.node))
                    .with_help("names are 1 to 63 characters of lowercase letters, digits and `-`, starting with a letter and not ending with `-` (a Kubernetes DNS label)"),
            );
        }
    }

    pub(super) fn country(
        &mut self,
        file: FileId,
        code: &ast::Ident,
        diag_code: Code,
    ) -> Option<&'static Country> {
        if let Some(c) = numbering::country(&code.node) {
            return Some(c);
        }
        let help = country_help(&code.node);
        self.diags.push(
            Diagnostic::error(
                diag_code,
                file,
                code.span,
                format!("unknown country `{}`", code.node),
            )
            .with_label("not a country code")
            .with_help(help),
        );
        None
    }

    pub(super) fn zone(&mut self, file: FileId, z: &ast::Ident) -> bool {
        if jiff::tz::db().get(&z.node).is_ok() {
            return true;
        }
        let names: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_string())
            .collect();
        let help = did_you_mean(&z.node, names.iter().map(String::as_str))
            .map(|h| {
                format!("{h} zones are IANA names such as `Europe/London` or `America/New_York`")
            })
            .unwrap_or_else(|| {
                "zones are IANA names such as `Europe/London` or `America/New_York`".into()
            });
        self.diags.push(
            Diagnostic::error(
                Code::ZoneUnknown,
                file,
                z.span,
                format!("unknown time zone `{}`", z.node),
            )
            .with_label("not an IANA time zone")
            .with_help(help),
        );
        false
    }

    pub(super) fn window(&mut self, file: FileId, w: &ast::Window) -> Option<WindowDecl> {
        self.check_name(file, &w.name, "window");
        let mut ok = true;
        if let Some(z) = &w.zone {
            ok &= self.zone(file, z);
        }
        let mut spans = Vec::new();
        for s in &w.spans {
            let from = self.day(file, &s.node.from_day);
            let to = match &s.node.to_day {
                Some(d) => self.day(file, d),
                None => from,
            };
            let start = self.clock(file, &s.node.start, false);
            let end = self.clock(file, &s.node.end, true);
            let (Some(from), Some(to), Some(start), Some(end)) = (from, to, start, end) else {
                ok = false;
                continue;
            };
            if start == end {
                self.diags.push(
                    Diagnostic::error(
                        Code::WindowNeverOpen,
                        file,
                        s.span,
                        format!("this period starts and ends at {}, so it is never open", clock_text(start)),
                    )
                    .with_label("empty period")
                    .with_help("for a whole day write `00:00-24:00`; a period that runs past midnight ends earlier than it starts, e.g. `22:00-06:00`"),
                );
                ok = false;
                continue;
            }
            spans.push(ir::WeeklySpan {
                days: day_range(from, to),
                start_minute: start,
                end_minute: end,
            });
        }
        ok.then(|| WindowDecl {
            name_span: w.name.span,
            spans,
            zone: w.zone.as_ref().map(|z| z.node.clone()),
        })
    }

    pub(super) fn day(&mut self, file: FileId, d: &ast::Ident) -> Option<ir::Weekday> {
        let day = match d.node.as_str() {
            "mon" => ir::Weekday::Mon,
            "tue" => ir::Weekday::Tue,
            "wed" => ir::Weekday::Wed,
            "thu" => ir::Weekday::Thu,
            "fri" => ir::Weekday::Fri,
            "sat" => ir::Weekday::Sat,
            "sun" => ir::Weekday::Sun,
            other => {
                let help = did_you_mean(other, DAYS)
                    .unwrap_or_else(|| "days are `mon` `tue` `wed` `thu` `fri` `sat` `sun`".into());
                self.diags.push(
                    Diagnostic::error(
                        Code::WindowBadDay,
                        file,
                        d.span,
                        format!("unknown day `{other}`"),
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        Some(day)
    }

    /// Minutes after midnight; `24:00` only as an end.
    pub(super) fn clock(
        &mut self,
        file: FileId,
        t: &Spanned<ast::ClockTime>,
        is_end: bool,
    ) -> Option<u16> {
        let ast::ClockTime { hour, minute } = t.node;
        let problem = if minute > 59 {
            Some(format!("minute {minute} is out of range"))
        } else if hour > 24 || (hour == 24 && minute > 0) {
            Some(format!("hour {hour} is out of range"))
        } else if hour == 24 && !is_end {
            Some("a period cannot start at 24:00".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            self.diags.push(
                Diagnostic::error(
                    Code::WindowBadTime,
                    file,
                    t.span,
                    format!("invalid time `{hour:02}:{minute:02}`: {p}"),
                )
                .with_help("times are `HH:MM` from `00:00` to `23:59`; `24:00` may end a period"),
            );
            return None;
        }
        u16::try_from(hour * 60 + minute).ok()
    }

    pub(super) fn dest_stmt(
        &mut self,
        file: FileId,
        s: &Stmt<ast::DestStmt>,
        d: &mut Decls,
        origin: &dyn Fn(Span, Span) -> Origin,
    ) {
        match &s.node {
            ast::DestStmt::Default { scope, action } => {
                let key = match scope.node {
                    Scope::International => "dst:international",
                    Scope::National => "dst:national",
                };
                d.defaults.push(Decl {
                    key: key.into(),
                    value: (scope.node, verdict(action.node)),
                    origin: origin(scope.span, s.span),
                });
            }
            ast::DestStmt::Rule {
                action,
                selector,
                window,
            } => {
                let window = window.as_ref().map(|w| {
                    let when = match w.mode.node {
                        ast::WindowMode::During => ir::WindowWhen::During,
                        ast::WindowMode::Outside => ir::WindowWhen::Outside,
                    };
                    (
                        ir::WindowCondition {
                            name: w.name.node.clone(),
                            when,
                        },
                        w.name.span,
                    )
                });
                let suffix = match &window {
                    Some((c, _)) if c.when == ir::WindowWhen::During => format!("@{}", c.name),
                    Some((c, _)) => format!("@outside:{}", c.name),
                    None => String::new(),
                };
                let mut push = |key: String, target: Target, span: Span| {
                    d.dests.push(Decl {
                        key: format!("{key}{suffix}"),
                        value: DestRule {
                            action: verdict(action.node),
                            target,
                            window: window.clone(),
                        },
                        origin: origin(span, s.span),
                    });
                };
                match selector {
                    ast::Selector::Prefix(ps) => {
                        for p in ps {
                            if let Some(digits) = self.prefix(file, p) {
                                push(
                                    format!("dst:prefix:{digits}"),
                                    Target::Prefix(digits),
                                    p.span,
                                );
                            }
                        }
                    }
                    ast::Selector::Country(cs) => {
                        for c in cs {
                            if let Some(country) =
                                self.country(file, c, Code::DestinationsUnknownCountry)
                            {
                                push(
                                    format!("dst:country:{}", country.iso),
                                    Target::Country(country),
                                    c.span,
                                );
                            }
                        }
                    }
                    ast::Selector::Class(cs) => {
                        for c in cs {
                            if c.node == EMERGENCY {
                                self.emergency(file, c.span, action.node);
                                continue;
                            }
                            if SCOPE_CLASSES.contains(&c.node.as_str()) {
                                self.diags.push(
                                    Diagnostic::error(
                                        Code::DestinationsScopeAsClass,
                                        file,
                                        c.span,
                                        format!(
                                            "`{}` is set by a default, not by a class rule",
                                            c.node
                                        ),
                                    )
                                    .with_help(format!(
                                        "write `{}: {}` on a line of its own",
                                        c.node,
                                        if action.node == Action::Allow {
                                            "allow"
                                        } else {
                                            "deny"
                                        }
                                    )),
                                );
                                continue;
                            }
                            if let Some(class) =
                                self.number_class(file, c, Code::DestinationsUnknownClass, false)
                            {
                                push(
                                    format!("dst:class:{}", class.name),
                                    Target::Class(class),
                                    c.span,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    pub(super) fn emergency(&mut self, file: FileId, span: Span, action: Action) {
        let (message, help) = match action {
            Action::Deny => (
                "emergency numbers can never be blocked",
                "calls to emergency services (112, 911 and the home country's numbers) must always connect: regulators require it and lives depend on it; Tollgate lets them through before any rule, limit or response. Remove this rule",
            ),
            Action::Allow => (
                "emergency numbers are always allowed; this rule does nothing",
                "calls to emergency services always connect, whatever the policy says; remove this rule",
            ),
        };
        self.diags.push(
            Diagnostic::error(Code::DestinationsEmergency, file, span, message).with_help(help),
        );
    }

    /// Checks an E.164 prefix; returns its digits.
    pub(super) fn prefix(&mut self, file: FileId, p: &Spanned<ast::Prefix>) -> Option<String> {
        let digits = p.node.digits();
        let problem = if digits.is_empty() {
            Some((
                "a prefix needs at least one digit".to_string(),
                "write the country calling code first, e.g. `+44`".to_string(),
            ))
        } else if digits.starts_with('0') {
            Some((
                format!("`{}` is not an E.164 prefix: no country calling code starts with 0", p.node.text),
                "write the number in international form: `+` then the country calling code, e.g. `+44 20` rather than `+020`".to_string(),
            ))
        } else if digits.len() > MAX_E164_DIGITS {
            Some((
                format!(
                    "prefix `{}` has {} digits, more than the {MAX_E164_DIGITS} an E.164 number can have",
                    p.node.text,
                    digits.len()
                ),
                "shorten the prefix; a full number is at most 15 digits after the `+`".to_string(),
            ))
        } else {
            None
        };
        match problem {
            Some((message, help)) => {
                self.diags.push(
                    Diagnostic::error(Code::DestinationsBadPrefix, file, p.span, message)
                        .with_help(help),
                );
                None
            }
            None => Some(digits),
        }
    }

    /// A number class by name (`scopes` also accepts `international`/`national`).
    pub(super) fn number_class(
        &mut self,
        file: FileId,
        c: &ast::Ident,
        code: Code,
        scopes: bool,
    ) -> Option<&'static NumberClass> {
        if let Some(class) = numbering::class(&c.node) {
            return Some(class);
        }
        let mut names: Vec<&str> = numbering::classes().iter().map(|c| c.name).collect();
        if scopes {
            names.extend(SCOPE_CLASSES);
        }
        let list = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let help = match did_you_mean(&c.node, names.iter().copied()) {
            Some(h) => format!("{h} known classes: {list}"),
            None => format!("known classes: {list}"),
        };
        self.diags.push(
            Diagnostic::error(
                code,
                file,
                c.span,
                format!("unknown destination class `{}`", c.node),
            )
            .with_label("not a class")
            .with_help(help),
        );
        None
    }

    /// A class named by a limit or a response: a number class or a scope.
    pub(super) fn any_class(&mut self, file: FileId, c: &ast::Ident, code: Code) -> Option<String> {
        if c.node == EMERGENCY {
            self.diags.push(
                Diagnostic::error(
                    code,
                    file,
                    c.span,
                    "emergency calls cannot be limited or blocked",
                )
                .with_help("calls to emergency services always connect; name another class"),
            );
            return None;
        }
        if SCOPE_CLASSES.contains(&c.node.as_str()) {
            return Some(c.node.clone());
        }
        self.number_class(file, c, code, true)
            .map(|k| k.name.to_string())
    }

    pub(super) fn source_stmt(
        &mut self,
        file: FileId,
        s: &Stmt<ast::SourceStmt>,
        d: &mut Decls,
        origin: &dyn Fn(Span, Span) -> Origin,
    ) {
        match &s.node {
            ast::SourceStmt::Networks { action, networks } => {
                for n in networks {
                    if let Some(net) = self.network(file, n) {
                        d.sources.push(Decl {
                            key: format!("src:net:{net}"),
                            value: SourceRule::Network {
                                net,
                                action: verdict(action.node),
                            },
                            origin: origin(n.span, s.span),
                        });
                    }
                }
            }
            ast::SourceStmt::Countries { action, countries } => {
                let mode = match action.node {
                    Action::Allow => ir::GeoMode::AllowOnly,
                    Action::Deny => ir::GeoMode::Deny,
                };
                for c in countries {
                    if let Some(country) = self.country(file, c, Code::SourcesUnknownCountry) {
                        d.sources.push(Decl {
                            key: format!("src:geo:{}", country.iso),
                            value: SourceRule::Geo {
                                country: country.iso,
                                mode,
                            },
                            origin: origin(c.span, s.span),
                        });
                    }
                }
            }
            ast::SourceStmt::Trunk { name, networks } => {
                self.check_name(file, name, "trunk");
                let nets: Vec<IpNet> = networks
                    .iter()
                    .filter_map(|n| self.network(file, n))
                    .collect();
                if nets.len() == networks.len() {
                    d.sources.push(Decl {
                        key: format!("src:trunk:{}", name.node),
                        value: SourceRule::Trunk {
                            name: name.node.clone(),
                            nets,
                        },
                        origin: origin(name.span, s.span),
                    });
                }
            }
        }
    }

    /// Parses and checks an address or CIDR as written.
    pub(super) fn network(&mut self, file: FileId, n: &ast::Ident) -> Option<IpNet> {
        let text = n.node.as_str();
        let parsed: Option<IpNet> = match text.split_once('/') {
            Some(_) => text.parse::<IpNet>().ok(),
            None => text.parse::<IpAddr>().ok().map(IpNet::from),
        };
        let Some(net) = parsed else {
            let help = address_help(text);
            self.diags.push(
                Diagnostic::error(
                    Code::SourcesBadAddress,
                    file,
                    n.span,
                    format!("`{text}` is not a valid IP address or network"),
                )
                .with_label("invalid address")
                .with_help(help),
            );
            return None;
        };
        if net.trunc() != net {
            self.diags.push(
                Diagnostic::error(
                    Code::SourcesHostBits,
                    file,
                    n.span,
                    format!(
                        "`{text}` has host bits set beyond its /{} prefix",
                        net.prefix_len()
                    ),
                )
                .with_label("not a network address")
                .with_help(format!(
                    "did you mean `{}`? for the single host write `{}`",
                    net.trunc(),
                    net.addr()
                )),
            );
            return None;
        }
        Some(net)
    }

    pub(super) fn limit_stmt(
        &mut self,
        file: FileId,
        s: &ast::LimitStmt,
    ) -> Option<(String, LimitDecl, Span)> {
        let metric = metric(s.metric.node);
        let class = match &s.class {
            Some(c) => Some((self.any_class(file, c, Code::LimitsUnknownClass)?, c.span)),
            None => None,
        };
        let key = match &class {
            Some((c, _)) => format!("limit:{}:{c}", metric_name(metric)),
            None => format!("limit:{}", metric_name(metric)),
        };
        let value = match (&s.value, metric) {
            (ast::LimitValue::Max(dur), ir::LimitMetric::Duration) => {
                if dur.node.seconds == 0 {
                    self.diags.push(
                        Diagnostic::error(Code::LimitsZero, file, dur.span, "a maximum call duration of zero would end every call")
                            .with_help("give a positive duration such as `2h`; to stop calls to a class, deny it in `destinations`"),
                    );
                    return None;
                }
                LimitDecl {
                    metric,
                    class,
                    warning: None,
                    critical: Some(dur.node.seconds),
                }
            }
            (
                ast::LimitValue::Levels { warning, critical },
                ir::LimitMetric::Concurrent | ir::LimitMetric::Rate,
            ) => {
                for level in [warning, critical].into_iter().flatten() {
                    if level.node == 0 {
                        self.diags.push(
                            Diagnostic::error(Code::LimitsZero, file, level.span, "a limit of zero would block every call it counts")
                                .with_help("give a positive level; to stop calls to a class, deny it in `destinations`"),
                        );
                        return None;
                    }
                }
                if let (Some(w), Some(c)) = (warning, critical)
                    && w.node >= c.node
                {
                    self.diags.push(
                        Diagnostic::error(
                            Code::LimitsWarningNotBelowCritical,
                            file,
                            w.span,
                            format!("warning level {} is not below critical level {}", w.node, c.node),
                        )
                        .with_label("warning")
                        .with_related(c.span, "critical")
                        .with_help("the warning level alerts before calls are rejected at the critical level, so it must be lower"),
                    );
                    return None;
                }
                LimitDecl {
                    metric,
                    class,
                    warning: warning.map(|w| w.node),
                    critical: critical.map(|c| c.node),
                }
            }
            _ => {
                let help = if metric == ir::LimitMetric::Duration {
                    "write a duration, e.g. `duration: 2h`"
                } else {
                    "write levels, e.g. `concurrent: warning 10, critical 20`"
                };
                self.diags.push(
                    Diagnostic::error(
                        Code::LimitsBadValue,
                        file,
                        s.metric.span,
                        format!("wrong kind of value for `{}`", metric_name(metric)),
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        Some((key, value, s.metric.span))
    }

    pub(super) fn response_stmt(
        &mut self,
        file: FileId,
        s: &ast::ResponseStmt,
    ) -> Option<(String, ResponseDecl)> {
        let (trigger, trigger_span, key) = match &s.trigger {
            ast::Trigger::Breach {
                metric: m,
                class,
                level,
            } => {
                let metric = metric(m.node);
                if metric == ir::LimitMetric::Duration {
                    self.diags.push(
                        Diagnostic::error(Code::ResponsesBadTrigger, file, m.span, "`duration` has no warning or critical level to trigger on")
                            .with_help("responses trigger on `concurrent` or `rate` levels, or on an `anomaly`"),
                    );
                    return None;
                }
                let class = match class {
                    Some(c) => Some(self.any_class(file, c, Code::ResponsesUnknownClass)?),
                    None => None,
                };
                let level_name = match level.node {
                    ast::Level::Warning => "warning",
                    ast::Level::Critical => "critical",
                };
                let key = match &class {
                    Some(c) => format!("on:{}:{c}:{level_name}", metric_name(metric)),
                    None => format!("on:{}:{level_name}", metric_name(metric)),
                };
                let span = m.span.join(level.span);
                let level = match level.node {
                    ast::Level::Warning => ir::AlertLevel::Warning,
                    ast::Level::Critical => ir::AlertLevel::Critical,
                };
                (
                    ir::ResponseTrigger::Breach {
                        metric,
                        class,
                        level,
                    },
                    span,
                    key,
                )
            }
            ast::Trigger::Anomaly { kind } => {
                if !ANOMALIES.contains(&kind.node.as_str()) {
                    let list = ANOMALIES.map(|a| format!("`{a}`")).join(", ");
                    let help = match did_you_mean(&kind.node, ANOMALIES) {
                        Some(h) => format!("{h} anomaly kinds: {list}"),
                        None => format!("anomaly kinds: {list}"),
                    };
                    self.diags.push(
                        Diagnostic::error(
                            Code::ResponsesUnknownAnomaly,
                            file,
                            kind.span,
                            format!("unknown anomaly `{}`", kind.node),
                        )
                        .with_help(help),
                    );
                    return None;
                }
                (
                    ir::ResponseTrigger::Anomaly {
                        anomaly: kind.node.clone(),
                    },
                    kind.span,
                    format!("on:anomaly:{}", kind.node),
                )
            }
        };
        let (action, action_span, blocks) = match &s.action {
            ast::ResponseAction::Alert(span) => (ir::ResponseAction::Alert, *span, false),
            ast::ResponseAction::BlockTenant(span) => {
                (ir::ResponseAction::BlockTenant, *span, true)
            }
            ast::ResponseAction::BlockClasses(span, classes) => {
                let mut names = Vec::new();
                for c in classes {
                    names.push(self.any_class(file, c, Code::ResponsesUnknownClass)?);
                }
                names.sort();
                names.dedup();
                (
                    ir::ResponseAction::BlockClasses { classes: names },
                    *span,
                    true,
                )
            }
        };
        let (hold_seconds, until_acknowledged) = match (&s.hold, blocks) {
            (None, true) => {
                self.diags.push(
                    Diagnostic::error(
                        Code::ResponsesMissingHold,
                        file,
                        action_span,
                        "a block must say how long it holds",
                    )
                    .with_help("add `for DURATION` (e.g. `for 1h`) or `until acknowledged`"),
                );
                return None;
            }
            (Some(h), false) => {
                self.diags.push(
                    Diagnostic::error(
                        Code::ResponsesHoldOnAlert,
                        file,
                        h.span,
                        "an alert blocks nothing, so it cannot hold",
                    )
                    .with_help("remove the hold, or block a class or the tenant"),
                );
                return None;
            }
            (None, false) => (None, false),
            (Some(h), true) => {
                match h.node {
                    ast::Hold::For(d) if d.seconds == 0 => {
                        self.diags.push(
                        Diagnostic::error(Code::ResponsesZeroHold, file, h.span, "a block held for zero time does nothing")
                            .with_help("give a positive duration such as `for 30m`, or `until acknowledged`"),
                    );
                        return None;
                    }
                    ast::Hold::For(d) => (Some(d.seconds), false),
                    ast::Hold::UntilAcknowledged => (None, true),
                }
            }
        };
        Some((
            key,
            ResponseDecl {
                trigger,
                trigger_span,
                action,
                hold_seconds,
                until_acknowledged,
            },
        ))
    }
}
