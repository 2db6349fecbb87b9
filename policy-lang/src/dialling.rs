//! Reading a dialled string as an E.164 number, the way libphonenumber reads
//! it for the tenant's home country, or refusing it.
//!
//! libphonenumber is what PBXs, SBCs and carriers use to read dialled
//! numbers; a string Tollgate read differently could reach a number the
//! policy denies (a premium-rate number written with a stray trunk prefix).
//! So every form is either read exactly as libphonenumber reads it, or
//! refused ([`Reading::Unreadable`], rule `dst:unreadable`). The forms and
//! their readings per home country are documented in docs/language.md
//! ("Dialled numbers"); `tests/dialling_differential.rs` checks the claim
//! against the `phonenumber` crate on generated strings.
//!
//! All decisions are longest-prefix lookups in one table, [`rows`], built
//! from the numbering data (`dial-*` records generated from libphonenumber's
//! metadata): the SBC receives the same rows as the mtree `tollgate-dial` and
//! `tollgate.cfg` `route[NORMALIZE]` makes the same lookups, so the evaluator
//! and the SBC read every string alike.
//!
//! ## The table
//! Keys are digit strings in three spaces that cannot collide:
//! - `C` (every calling code libphonenumber knows): `k,<len C>`; `C S` (a
//!   string `S` the national part may begin with that libphonenumber may
//!   take as the code's national prefix): `t,<len C>,<len S>,<modes>`; `C P`
//!   (numbers of `C` may begin with `P`, some home country's national
//!   prefix): `l,<len C>,<len P>,<modes>` (`k` where all are of `C`'s
//!   pattern).
//! - `0 R D` (`R`: the home country as four digits, [`home_key`]; `D`: the
//!   dialled digits without `+`): `n,<modes>` at `0R` itself (no prefix),
//!   `i,<len>,<r|s>` at an international prefix (`r`: refused, `s`: read),
//!   `c,<len C>,<modes>` at the home calling code, `t,<len S>,<modes>` at a
//!   national prefix string.
//! - `00 R S`: `-` at `00R`, `t,<len S>,<e|x>` at every national prefix
//!   string of the home country (whether a number left after a strip begins
//!   with another; `e`: a literal the home reads at some length).
//!
//! `<modes>` has one letter per length of the digits looked at (index 0 to
//! 17; a longer number is refused): `k` read them as they are, `s` strip the
//! prefix, `r` refuse.

use crate::numbering;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Separators a dialled number may contain besides digits and a leading `+`:
/// the visual separators people write (libphonenumber ignores them too).
pub const SEPARATORS: &[char] = &[' ', '-', '.', '(', ')', '/', '[', ']'];

/// How a dialled string is read: the number as a `String` ([`read`]), or
/// as a [`Number`] ([`read_number`], the evaluator's: no allocation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reading<N = String> {
    /// E.164 digits (no `+`).
    Number(N),
    /// Not a telephone number at all (letters, no digits, more than 15
    /// digits, a country code beginning with 0): `dst:invalid`.
    NotANumber(String),
    /// A number, but one that libphonenumber may read otherwise than any
    /// reading Tollgate could be sure of: `dst:unreadable`.
    Unreadable(String),
}

/// Text held inline, without an allocation, up to [`Number::INLINE`]
/// bytes: E.164 digits (at most 15) always fit. Longer text (the digits of
/// a long dialled string, a caller's [`crate::eval::Call::e164`]) is held
/// on the heap. It reads as a `str` (`Deref`, `Display`, serialized as a
/// string), and compares, orders and hashes as its text.
#[derive(Clone)]
pub struct Number(Text);

#[derive(Clone)]
enum Text {
    /// `bytes[..len]` is the text (whole `str`s are pushed: it is UTF-8).
    Inline {
        len: u8,
        bytes: [u8; Number::INLINE],
    },
    /// More than [`Number::INLINE`] bytes.
    Heap(String),
}

impl Number {
    /// The most bytes held inline.
    pub const INLINE: usize = 22;

    /// An empty text.
    pub const fn empty() -> Number {
        Number(Text::Inline {
            len: 0,
            bytes: [0; Number::INLINE],
        })
    }

    /// `text` as a number.
    pub fn new(text: &str) -> Number {
        let mut n = Number::empty();
        n.push_str(text);
        n
    }

    /// `a` followed by `b`.
    pub fn concat(a: &str, b: &str) -> Number {
        let mut n = Number::new(a);
        n.push_str(b);
        n
    }

    /// Appends `text`.
    pub fn push_str(&mut self, text: &str) {
        match &mut self.0 {
            Text::Inline { len, bytes } => {
                let at = usize::from(*len);
                let end = at + text.len();
                match (bytes.get_mut(at..end), u8::try_from(end)) {
                    (Some(to), Ok(end)) => {
                        to.copy_from_slice(text.as_bytes());
                        *len = end;
                    }
                    _ => {
                        let mut heap = String::with_capacity(end);
                        heap.push_str(self.as_str());
                        heap.push_str(text);
                        self.0 = Text::Heap(heap);
                    }
                }
            }
            Text::Heap(heap) => heap.push_str(text),
        }
    }

    /// Whether the text is empty (without reading it as a `str`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The length of the text in bytes (without reading it as a `str`).
    pub fn len(&self) -> usize {
        match &self.0 {
            Text::Inline { len, .. } => usize::from(*len),
            Text::Heap(heap) => heap.len(),
        }
    }

    /// The bytes of the text: what [`Self::as_str`] reads, without the
    /// check that they are UTF-8 (digits, for the evaluator's prefix keys).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Text::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Text::Heap(heap) => heap.as_bytes(),
        }
    }

    /// Appends `c`.
    pub fn push(&mut self, c: char) {
        if let Text::Inline { len, bytes } = &mut self.0
            && c.is_ascii()
            && let Some(at) = bytes.get_mut(usize::from(*len))
        {
            *at = c as u8;
            *len += 1;
            return;
        }
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    /// The text (checked to be UTF-8 on every call: see [`Self::as_bytes`]).
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // only whole strs are pushed, so this is never an error
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Heap(heap) => heap,
        }
    }
}

impl std::ops::Deref for Number {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Number {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Number {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Number {}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Number {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Number {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Number {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Number {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl From<&str> for Number {
    fn from(text: &str) -> Number {
        Number::new(text)
    }
}

impl From<Number> for String {
    fn from(n: Number) -> String {
        match n.0 {
            Text::Heap(heap) => heap,
            Text::Inline { .. } => n.as_str().to_string(),
        }
    }
}

impl serde::Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The four digits of a home country in the table's keys: each letter of
/// the ISO code as 10 (A) to 35 (Z).
pub fn home_key(iso: &str) -> Option<String> {
    let b = iso.as_bytes();
    if b.len() != 2 || !b.iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    Some(format!("{}{}", b[0] - b'A' + 10, b[1] - b'A' + 10))
}

/// One letter per length 0..=17.
fn modes_of(f: impl Fn(usize) -> char) -> String {
    (0..=17).map(f).collect()
}

/// The table (key → value), sorted; the same for every policy of a build.
pub fn rows() -> &'static BTreeMap<String, String> {
    static ROWS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    ROWS.get_or_init(build)
}

fn build() -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    // numbers dialled with a calling code: the code's region's national
    // prefix strings
    for (code, region) in numbering::dial_codes() {
        let Some(r) = numbering::dial_region(region) else {
            continue;
        };
        for (s, modes) in &r.trunk {
            rows.insert(
                format!("{code}{s}"),
                format!("t,{},{},{modes}", code.len(), s.len()),
            );
        }
    }
    // every known calling code: its length (the SBC finds the code by it)
    for code in numbering::dial_codes().keys() {
        rows.entry((*code).to_string())
            .or_insert_with(|| format!("k,{}", code.len()));
    }
    // numbers of the code may begin with some home country's national
    // prefix: read as written even by a tenant of that home
    for (code, p, modes) in numbering::dial_leads() {
        rows.entry(format!("{code}{p}"))
            .or_insert_with(|| format!("l,{},{},{modes}", code.len(), p.len()));
    }
    // national forms of every home country
    for c in numbering::countries() {
        let (Some(r), Some(h)) = (numbering::dial_region(c.iso), home_key(c.iso)) else {
            continue;
        };
        let cc = c.calling_code.as_str();
        let max = r.lengths.iter().copied().max().unwrap_or(0);
        let national = modes_of(|l| if r.lengths.contains(&l) { 'k' } else { 'r' });
        rows.insert(format!("0{h}"), format!("n,{national}"));
        rows.insert(format!("00{h}"), "-".to_string());
        // libphonenumber's order: an international prefix first, then the
        // home calling code, then a national prefix; a longer key must not
        // hide a shorter one that libphonenumber looks at first
        let idd_prefix = |s: &str| r.idd.iter().any(|(i, _)| s.starts_with(i));
        for (i, ok) in &r.idd {
            rows.insert(
                format!("0{h}{i}"),
                format!("i,{},{}", i.len(), if *ok { 's' } else { 'r' }),
            );
        }
        if !idd_prefix(cc) {
            let modes = modes_of(|l| {
                if l > max && l > cc.len() && r.lengths.contains(&(l - cc.len())) {
                    's'
                } else {
                    'r'
                }
            });
            rows.insert(format!("0{h}{cc}"), format!("c,{},{modes}", cc.len()));
        }
        for (s, modes) in &r.trunk {
            // exact: a literal national prefix the home reads at some length
            let exact = if modes.bytes().any(|b| b != b'r') {
                'e'
            } else {
                'x'
            };
            rows.insert(format!("00{h}{s}"), format!("t,{},{exact}", s.len()));
            if !idd_prefix(s) && !s.starts_with(cc) {
                rows.entry(format!("0{h}{s}"))
                    .or_insert_with(|| format!("t,{},{modes}", s.len()));
            }
        }
    }
    rows
}

/// A row's value split at its commas once, when the trie is built: the
/// readings look at its fields and numbers without splitting the text again.
#[derive(Debug)]
struct Row {
    /// The value as in [`rows`].
    text: &'static str,
    /// Fields 0 to 3 (`""` where the value has fewer).
    fields: [&'static str; 4],
    /// The same fields as numbers (`usize::MAX` where not one).
    nums: [usize; 4],
}

impl Row {
    fn new(text: &'static str) -> Row {
        let mut fields = [""; 4];
        for (f, v) in fields.iter_mut().zip(text.split(',')) {
            *f = v;
        }
        Row {
            text,
            fields,
            nums: fields.map(|f| f.parse().unwrap_or(usize::MAX)),
        }
    }

    /// Field `i` of the value (counted from 0), `""` if it has fewer.
    fn field(&self, i: usize) -> &'static str {
        match self.fields.get(i) {
            Some(f) => f,
            None => self.text.split(',').nth(i).unwrap_or(""),
        }
    }

    /// Field `i` as a number, `usize::MAX` if it is not one.
    fn num(&self, i: usize) -> usize {
        match self.nums.get(i) {
            Some(n) => *n,
            None => self.field(i).parse().unwrap_or(usize::MAX),
        }
    }

    /// Whether the value is of kind `kind` (its first letter).
    fn is(&self, kind: char) -> bool {
        self.text.starts_with(kind)
    }
}

/// [`rows`] as a digit trie, for [`longest`]: one walk over the key instead
/// of a sorted-map probe per length. Node 0 is the root; `next[n][d]` is the
/// child of node `n` for digit `d` (0: none), `value[n]` the row whose key
/// ends at `n`, as an index into `rows` (0: none; `rows[0]` is the row
/// `n,` a national reading falls back to).
struct Trie {
    next: Vec<[u32; 10]>,
    value: Vec<u32>,
    rows: Vec<Row>,
}

fn trie() -> &'static Trie {
    static TRIE: OnceLock<Trie> = OnceLock::new();
    TRIE.get_or_init(|| {
        let mut t = Trie {
            next: vec![[0; 10]],
            value: vec![0],
            rows: vec![Row::new("n,")],
        };
        // every key is a digit string (the module's doc; a test checks it)
        for (key, value) in rows() {
            let mut n = 0;
            for b in key.bytes() {
                let d = usize::from(b.wrapping_sub(b'0')).min(9);
                if t.next[n][d] == 0 {
                    t.next[n][d] = u32::try_from(t.next.len()).unwrap_or(u32::MAX);
                    t.next.push([0; 10]);
                    t.value.push(0);
                }
                n = t.next[n][d] as usize;
            }
            t.value[n] = u32::try_from(t.rows.len()).unwrap_or(u32::MAX);
            t.rows.push(Row::new(value.as_str()));
        }
        t
    })
}

/// The value of the longest key that `key` begins with.
fn longest(key: &str) -> Option<&'static Row> {
    longest_of(&[key])
}

/// [`longest`] of the concatenation of `parts`, without building it.
fn longest_of(parts: &[&str]) -> Option<&'static Row> {
    parts.iter().fold(Walk::ROOT, |w, part| w.on(part)).row()
}

/// A walk down the trie over some digits, which more digits continue: the
/// node reached, the last row passed (index into `rows`, 0: none) and
/// whether the walk has stopped (no child for a digit, or not a digit).
/// A home country keeps its walks over `0 R` and `00 R`, the start of its
/// keys, so that a reading walks only over the dialled digits.
#[derive(Clone, Copy, Debug)]
struct Walk {
    node: usize,
    best: u32,
    stopped: bool,
}

impl Walk {
    const ROOT: Walk = Walk {
        node: 0,
        best: 0,
        stopped: false,
    };

    /// The walk continued over `digits`.
    fn on(mut self, digits: &str) -> Walk {
        if self.stopped {
            return self;
        }
        let t = trie();
        for b in digits.bytes() {
            let d = usize::from(b.wrapping_sub(b'0'));
            // no child: 0, or no entry for a byte that is not a digit
            match t.next.get(self.node).and_then(|next| next.get(d)) {
                Some(0) | None => {
                    self.stopped = true;
                    break;
                }
                Some(child) => self.node = *child as usize,
            }
            if let Some(v) = t.value.get(self.node).filter(|v| **v != 0) {
                self.best = *v;
            }
        }
        self
    }

    /// The row of the longest key walked over.
    fn row(self) -> Option<&'static Row> {
        match self.best {
            0 => None,
            i => trie().rows.get(i as usize),
        }
    }
}

/// The row a national reading without a row of its own falls back to (`n,`).
fn no_row() -> &'static Row {
    &trie().rows[0]
}

fn mode(modes: &str, len: usize) -> char {
    modes.as_bytes().get(len).map_or('r', |b| char::from(*b))
}

/// A home country the table has national forms for: its calling code, and
/// the trie walked over `0 R` and `00 R` (`R` its [`home_key`]).
struct Home {
    cc: &'static str,
    zero: Walk,
    zero_zero: Walk,
}

impl Home {
    /// [`longest`] of `0 R d`.
    fn national_row(&self, d: &str) -> Option<&'static Row> {
        self.zero.on(d).row()
    }

    /// [`longest`] of `00 R s`.
    fn trunk_row(&self, s: &str) -> Option<&'static Row> {
        self.zero_zero.on(s).row()
    }
}

/// The home country `iso` (two upper-case letters), from a table built once
/// and indexed by the letters: no search per reading.
fn home_of(iso: &str) -> Option<&'static Home> {
    static HOMES: OnceLock<Vec<Option<Home>>> = OnceLock::new();
    let index = |b: &[u8]| usize::from(b[0] - b'A') * 26 + usize::from(b[1] - b'A');
    let homes = HOMES.get_or_init(|| {
        let mut homes: Vec<Option<Home>> = (0..26 * 26).map(|_| None).collect();
        for c in numbering::countries() {
            if let Some(h) = home_key(c.iso).filter(|h| rows().contains_key(&format!("0{h}"))) {
                homes[index(c.iso.as_bytes())] = Some(Home {
                    cc: c.calling_code.as_str(),
                    zero: Walk::ROOT.on("0").on(&h),
                    zero_zero: Walk::ROOT.on("00").on(&h),
                });
            }
        }
        homes
    });
    // what home_key accepts, without building the key
    let b = iso.as_bytes();
    if b.len() != 2 || !b.iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    homes.get(index(b))?.as_ref()
}

/// A reason for refusing a reading, written only when `explain` is true.
macro_rules! why {
    ($explain:expr, $($text:tt)+) => {
        if $explain {
            format!($($text)+)
        } else {
            String::new()
        }
    };
}

/// Reads `dialed` for a tenant whose home country is `home` (ISO code).
pub fn read(dialed: &str, home: &str) -> Reading {
    match read_number(dialed, home, true) {
        Reading::Number(n) => Reading::Number(n.into()),
        Reading::NotANumber(why) => Reading::NotANumber(why),
        Reading::Unreadable(why) => Reading::Unreadable(why),
    }
}

/// [`read`], the number as a [`Number`]: a reading of a number allocates
/// nothing. The reasons for refusing are written only if `explain` (else
/// they are empty: the evaluator shows them only in a trace).
pub fn read_number(dialed: &str, home: &str, explain: bool) -> Reading<Number> {
    // `+` and digits only (the usual form): the digits are the rest
    let bare = dialed.strip_prefix('+').unwrap_or(dialed);
    if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit()) {
        return read_digits(bare, bare.len() < dialed.len(), home, explain);
    }
    let mut number = Number::empty();
    let mut plus = false;
    for ch in dialed.chars() {
        match ch {
            '0'..='9' => number.push(ch),
            '+' if !plus && number.is_empty() => plus = true,
            '+' => {
                return Reading::NotANumber(why!(
                    explain,
                    "`+` may only stand before the first digit"
                ));
            }
            c if SEPARATORS.contains(&c) => {}
            c => {
                return Reading::NotANumber(why!(
                    explain,
                    "{c:?} is not a digit, `+` or a separator ({})",
                    SEPARATORS.iter().collect::<String>()
                ));
            }
        }
    }
    if number.is_empty() {
        return Reading::NotANumber(why!(explain, "it has no digits"));
    }
    read_digits(number.as_str(), plus, home, explain)
}

/// [`read_number`] of the digits of the dialled string (at least one),
/// `plus` if a `+` stood before them.
fn read_digits(digits: &str, plus: bool, home: &str, explain: bool) -> Reading<Number> {
    let Some(h) = home_of(home) else {
        return if plus {
            international(digits, None, home, explain)
        } else {
            Reading::Unreadable(why!(
                explain,
                "no dialling data for the home country `{home}`: write the number as +<country code> <number>"
            ))
        };
    };
    let result = if plus {
        if let Some(v) = h.national_row(digits).filter(|v| v.is('i')) {
            let i = &digits[..v.num(1).min(digits.len())];
            return Reading::Unreadable(why!(
                explain,
                "`+` followed by {i}, the international prefix of {home}: libphonenumber strips both; write +<country code> <number>"
            ));
        }
        international(digits, Some(h), home, explain)
    } else {
        national(digits, h, home, explain)
    };
    match result {
        Reading::Number(n) if n.len() > 15 => Reading::NotANumber(why!(
            explain,
            "+{n} has {} digits; E.164 numbers have at most 15",
            n.len()
        )),
        r => r,
    }
}

fn national(d: &str, h: &Home, home: &str, explain: bool) -> Reading<Number> {
    let cc = h.cc;
    let v = h.national_row(d).unwrap_or_else(no_row);
    let len = d.len();
    let lengths = || {
        numbering::dial_region(home)
            .map(|r| {
                r.lengths
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            })
            .unwrap_or_default()
    };
    match v.field(0) {
        "i" => {
            let n = v.num(1).min(d.len());
            let (i, rest) = d.split_at(n);
            if v.field(2) != "s" {
                return Reading::Unreadable(why!(
                    explain,
                    "{i} may be read as more than one international prefix of {home}"
                ));
            }
            if rest.is_empty() {
                return Reading::NotANumber(why!(
                    explain,
                    "nothing follows the international prefix {i}"
                ));
            }
            if rest.starts_with('0') {
                return Reading::Unreadable(why!(
                    explain,
                    "0 after the international prefix {i}: no country code begins with 0, and libphonenumber then reads the whole as a national number"
                ));
            }
            international(rest, Some(h), home, explain)
        }
        "c" => {
            let n = v.num(1).min(d.len());
            if mode(v.field(2), len) != 's' {
                return Reading::Unreadable(why!(
                    explain,
                    "{d} begins with {home}'s calling code {cc} without `+` or an international prefix, and is not too long to be a national number: libphonenumber may read it either way; write +{cc} ... or the national form"
                ));
            }
            let rest = &d[n..];
            strip_checked(rest, h, home, explain, || format!("the calling code {cc}"))
        }
        "t" => {
            let n = v.num(1).min(d.len());
            let s = &d[..n];
            match mode(v.field(2), len) {
                'k' => Reading::Number(Number::concat(cc, d)),
                's' => strip_checked(&d[n..], h, home, explain, || {
                    format!("the national prefix {s}")
                }),
                _ => Reading::Unreadable(why!(
                    explain,
                    "{d} begins with {s}, which libphonenumber may read as {home}'s national (trunk) prefix or a carrier code or as part of the number ({len} digits); write +{cc} ... instead"
                )),
            }
        }
        _ => {
            if mode(v.field(1), len) == 'k' {
                Reading::Number(Number::concat(cc, d))
            } else {
                Reading::Unreadable(why!(
                    explain,
                    "{d} has {len} digits; national numbers of {home} have {} (a local number without its area code is not read)",
                    lengths()
                ))
            }
        }
    }
}

/// The national number left after stripping `what`: refused when it begins
/// with a national prefix string again (the `phonenumber` crate strips a
/// second one, libphonenumber does not).
fn strip_checked(
    rest: &str,
    h: &Home,
    home: &str,
    explain: bool,
    what: impl Fn() -> String,
) -> Reading<Number> {
    let cc = h.cc;
    if h.trunk_row(rest).is_some_and(|v| v.is('t')) {
        return Reading::Unreadable(why!(
            explain,
            "after {}, {rest} begins with a national prefix of {home} again: libphonenumber implementations differ on it",
            what()
        ));
    }
    Reading::Number(Number::concat(cc, rest))
}

/// An E.164 number as written after `+` or an international prefix; the
/// calling code's national prefix, written in it (`+44 (0) 20 ...`), is read
/// as libphonenumber reads it.
///
/// A national prefix of the HOME country written in a number of another
/// code (`+1 0 900...` by a tenant at home in a `0` country) is read by the
/// phonenumber crate as that prefix (`+1 900...`) and by libphonenumber as
/// part of the number: refused, unless the code itself handles that prefix
/// alike or its numbers may begin with it (`l` rows: `+39 06...` is Rome).
fn international(e: &str, h: Option<&Home>, home: &str, explain: bool) -> Reading<Number> {
    if e.starts_with('0') {
        return Reading::NotANumber(why!(explain, "a country code never begins with 0"));
    }
    // the longest row: `k` at a known calling code, `t`/`l` below it
    let v = longest(e);
    let kind = v.map_or("", |v| v.field(0));
    let ccl = if matches!(kind, "t" | "l" | "k") {
        v.map_or(0, |v| v.num(1))
    } else {
        0
    };
    let sl = if matches!(kind, "t" | "l") {
        v.map_or(0, |v| v.num(2))
    } else {
        0
    };
    if let Some(h) = h
        && ccl > 0
        && let Some(cc) = e.get(..ccl)
    {
        let national = &e[cc.len()..];
        if let Some(hv) = h.trunk_row(national).filter(|w| w.is('t')) {
            let hl = hv.num(1);
            // the code's row for the same string: it strips or keeps it
            // (`t`), or its numbers so written are all of its pattern (`l`)
            let same = sl == hl
                && (kind == "t" || mode(v.map_or("", |v| v.field(3)), national.len()) == 'k');
            // ... and the rest does not begin with it again (the crate strips
            // a second one)
            let again = national
                .get(hl..)
                .and_then(|r| h.trunk_row(r))
                .is_some_and(|w| w.is('t'));
            if hv.field(2) != "e" || !same || again {
                return Reading::Unreadable(why!(
                    explain,
                    "+{cc} {national} begins with {}, the national prefix of {home}: libphonenumber implementations differ on whether it is part of the number; write +{cc} without it",
                    &national[..hl.min(national.len())]
                ));
            }
        }
    }
    let Some(v) = v.filter(|v| v.is('t')) else {
        return Reading::Number(Number::new(e));
    };
    let (Some(cc), Some(s)) = (e.get(..ccl), e.get(ccl..ccl.saturating_add(sl))) else {
        return Reading::Number(Number::new(e));
    };
    let national = &e[ccl..];
    match mode(v.field(3), national.len()) {
        'k' => Reading::Number(Number::new(e)),
        's' => {
            let rest = &national[sl..];
            if longest_of(&[cc, rest]).is_some_and(|w| w.is('t')) {
                return Reading::Unreadable(why!(
                    explain,
                    "after the national prefix {s}, +{cc} {rest} begins with a national prefix again: libphonenumber implementations differ on it"
                ));
            }
            Reading::Number(Number::concat(cc, rest))
        }
        _ => Reading::Unreadable(why!(
            explain,
            "+{cc} {national}: {s} may be read as the national (trunk) prefix or a carrier code of +{cc} or as part of the number ({} digits); libphonenumber's reading depends on the whole number",
            national.len()
        )),
    }
}

#[cfg(test)]
#[allow(clippy::panic, reason = "test assertions")]
mod tests {
    use super::*;

    /// The trie answers what a probe of the sorted table per length does.
    #[test]
    fn longest_is_the_tables_longest_prefix() {
        let rows = rows();
        assert!(
            rows.keys()
                .all(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())),
            "every key is a digit string"
        );
        let by_map = |key: &str| {
            (1..=key.len())
                .rev()
                .find_map(|n| rows.get(key.get(..n)?))
                .map(String::as_str)
        };
        let mut probes = 0;
        for key in rows.keys() {
            for tail in ["", "0", "9", "12", "5550100", "99999999999999", "1x2", "+"] {
                let k = format!("{key}{tail}");
                assert_eq!(longest(&k).map(|r| r.text), by_map(&k), "{k}");
                let (a, b) = k.split_at(key.len() / 2);
                assert_eq!(
                    longest_of(&[a, "", b]).map(|r| r.text),
                    by_map(&k),
                    "{a} {b}"
                );
                assert_eq!(
                    longest(&k[..k.len() - 1]).map(|r| r.text),
                    by_map(&k[..k.len() - 1]),
                    "{k}"
                );
                probes += 2;
            }
        }
        for k in ["", "x", "0", "00", "1", "44", "0161144", "3"] {
            assert_eq!(longest(k).map(|r| r.text), by_map(k), "{k}");
        }
        assert!(probes > 1000);
    }

    /// A home's kept walks continue as walks from the root over `0 R` and
    /// `00 R` do.
    #[test]
    fn home_walks_continue_from_the_root_walks() {
        let mut homes = 0;
        for c in numbering::countries() {
            let (Some(home), Some(h)) = (home_of(c.iso), home_key(c.iso)) else {
                continue;
            };
            homes += 1;
            for d in ["", "0", "00", "011", "44", "1", "4420", "0909", "x1", "9"] {
                let text = |r: Option<&Row>| r.map(|r| r.text);
                assert_eq!(text(home.national_row(d)), text(longest_of(&["0", &h, d])));
                assert_eq!(text(home.trunk_row(d)), text(longest_of(&["00", &h, d])));
            }
        }
        assert!(homes > 200, "{homes}");
    }

    /// A row's parsed fields are those of its text split at its commas.
    #[test]
    fn rows_parse_as_their_text_splits() {
        let texts = rows()
            .values()
            .map(String::as_str)
            .chain(["n,", "", "-", "a,,7"]);
        for text in texts {
            let row = Row::new(text);
            for i in 0..7 {
                let f = text.split(',').nth(i).unwrap_or("");
                assert_eq!(row.field(i), f, "{text} {i}");
                assert_eq!(row.num(i), f.parse().unwrap_or(usize::MAX), "{text} {i}");
            }
            for k in ['t', 'i', 'n', 'k', 'c', 'l', '-'] {
                assert_eq!(row.is(k), text.starts_with(k), "{text} {k}");
            }
        }
    }

    /// A number reads as the text pushed, inline or (past
    /// [`Number::INLINE`] bytes) on the heap, and compares as that text.
    #[test]
    fn numbers_hold_their_text_inline_or_on_the_heap() {
        let long = "1234567890".repeat(5);
        for n in 0..=long.len() {
            let text = &long[..n];
            let mut pushed = Number::empty();
            for c in text.chars() {
                pushed.push(c);
            }
            let (a, b) = text.split_at(n / 3);
            for number in [Number::new(text), Number::concat(a, b), pushed] {
                assert_eq!(number.as_str(), text);
                assert_eq!(number.as_bytes(), text.as_bytes());
                assert_eq!((number.len(), number.is_empty()), (n, n == 0));
                assert_eq!(number, Number::new(text));
                assert_eq!(format!("{number}"), text);
                assert_eq!(format!("{number:?}"), format!("{text:?}"));
                assert_eq!(String::from(number.clone()), text);
                assert_eq!(
                    serde_json::to_string(&number).ok(),
                    serde_json::to_string(text).ok()
                );
                assert_eq!(matches!(number.0, Text::Inline { .. }), n <= Number::INLINE);
            }
        }
        let mut n = Number::new("44");
        n.push_str("ä€");
        n.push('😀');
        assert_eq!(n.as_str(), "44ä€😀");
        assert!(Number::new("12") < Number::new("2"));
        assert_eq!(Number::new("12"), "12");
    }

    #[test]
    fn home_keys_are_four_digits() {
        assert_eq!(home_key("GB").as_deref(), Some("1611"));
        assert_eq!(home_key("AZ").as_deref(), Some("1035"));
        assert_eq!(home_key("gb"), None);
        assert_eq!(home_key("GBR"), None);
    }
}
