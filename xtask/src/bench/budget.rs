//! The figures of `cargo xtask bench` as rows, their JSON file (`target/bench.json`), and the
//! budgets in `bench/budgets.toml` that `cargo xtask bench --check` holds them to.
//!
//! A budget has a `target` (the bar the figure must reach: the issue's, tightened as it is beaten)
//! and, while the figure is still over it, a `ceiling` (today's figure plus a small margin): the
//! check fails when a figure exceeds its ceiling, or its target when it has no ceiling, and lists
//! the rows still over target. Instruction counts under `-icount` are exact, so the check is
//! deterministic.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    /// The figure (for sampled figures, the smallest sample).
    pub value: u64,
    /// The largest sample (the value itself for exact, single figures).
    pub max: u64,
    /// `instructions`, `bytes` or `ticks`.
    pub unit: String,
    /// The system it was measured on (`configs/bench.dts`) or `build`.
    pub system: String,
}

/// A row's budget.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// The bar: must not be exceeded once met (no `ceiling`).
    pub target: Option<u64>,
    /// While over target: today's figure plus a small margin, so a regression fails now.
    pub ceiling: Option<u64>,
}

/// Parses the budgets file: `[row]` sections with `target = N` and `ceiling = N` (underscores
/// allowed in numbers), `#` comments. Every row needs a target; a ceiling must not be below it.
pub fn parse_budgets(text: &str) -> Result<BTreeMap<String, Budget>, String> {
    let mut budgets: BTreeMap<String, Budget> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let at = || format!("line {}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            if budgets.insert(name.clone(), Budget::default()).is_some() {
                return Err(format!("{}: [{name}] appears twice", at()));
            }
            current = Some(name);
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{}: expected `[row]` or `key = number`, found `{line}`", at()));
        };
        let Some(row) = current.as_ref() else {
            return Err(format!("{}: `{}` outside a [row] section", at(), key.trim()));
        };
        let value: u64 = value
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{}: `{}` is not a whole number", at(), value.trim()))?;
        let budget = budgets.get_mut(row).expect("inserted with its section");
        match key.trim() {
            "target" => budget.target = Some(value),
            "ceiling" => budget.ceiling = Some(value),
            other => return Err(format!("{}: unknown key `{other}` (target, ceiling)", at())),
        }
    }
    for (name, b) in &budgets {
        match (b.target, b.ceiling) {
            (None, _) => return Err(format!("[{name}] has no target")),
            (Some(t), Some(c)) if c < t => {
                return Err(format!("[{name}]: ceiling {c} is below target {t} (drop the ceiling)"))
            }
            _ => {}
        }
    }
    Ok(budgets)
}

/// What comparing the figures with the budgets found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Rows over their ceiling (or over their target when they have no ceiling), and budgeted
    /// rows with no figure: the check fails.
    pub failures: Vec<String>,
    /// Rows within their ceiling but still over target.
    pub over_target: Vec<String>,
    /// Rows that now meet a target they have a ceiling for: the ceiling can go.
    pub tighten: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Compares `rows` with `budgets`: each budget applies to its row and to the same row measured
/// on the busy system (`NAME_busy`), if there is one and has no budget of its own; a ceiling is
/// worth dropping only once both meet the target.
pub fn check(rows: &[Row], budgets: &BTreeMap<String, Budget>) -> Verdict {
    let mut verdict = Verdict::default();
    for (budgeted, budget) in budgets {
        if !rows.iter().any(|r| &r.name == budgeted) {
            verdict.failures.push(format!("{budgeted}: no figure (the benchmark no longer measures it?)"));
            continue;
        }
        // The same figure on the busy system has the same budget, unless it has its own (a figure
        // the busy system measures differently, such as one QEMU's machine-wide count inflates).
        let busy = format!("{budgeted}{BUSY}");
        let busy = if budgets.contains_key(&busy) { String::new() } else { busy };
        let mut all_met = true;
        for row in rows.iter().filter(|r| &r.name == budgeted || r.name == busy) {
            all_met &= row.value <= budget.target.unwrap_or(u64::MAX);
            check_row(row, budget, &mut verdict);
        }
        if let (Some(ceiling), Some(target), true) = (budget.ceiling, budget.target, all_met) {
            verdict
                .tighten
                .push(format!("{budgeted}: meets its target {target}: drop its ceiling {ceiling}"));
        }
    }
    verdict
}

/// Suffix of the figures measured on the busy system (`configs/bench-busy.dts`).
pub const BUSY: &str = "_busy";

fn check_row(row: &Row, budget: &Budget, verdict: &mut Verdict) {
    let name = &row.name;
    let (value, unit) = (row.value, &row.unit);
    let target = budget.target.unwrap_or(u64::MAX);
    match budget.ceiling {
        Some(ceiling) if value > ceiling => verdict.failures.push(format!(
            "{name}: {value} {unit} exceeds its regression ceiling {ceiling} (target {target})"
        )),
        None if value > target => {
            verdict.failures.push(format!("{name}: {value} {unit} exceeds its budget {target}"))
        }
        Some(ceiling) if value > target => verdict.over_target.push(format!(
            "{name}: {value} {unit}, target {target} ({} over; ceiling {ceiling})",
            value - target
        )),
        _ => {}
    }
}

/// The JSON file: `{"rows": [{"name": ..., "value": ..., "max": ..., "unit": ..., "system": ...}]}`.
pub fn to_json(rows: &[Row], machine: &str) -> String {
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"machine\": {},", quote(machine));
    out.push_str("  \"rows\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "    {{\"name\": {}, \"value\": {}, \"max\": {}, \"unit\": {}, \"system\": {}}}",
            quote(&r.name),
            r.value,
            r.max,
            quote(&r.unit),
            quote(&r.system)
        );
        out.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ]\n}\n");
    out
}

fn quote(s: &str) -> String {
    let mut q = String::from('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A JSON value (what [`parse_json`] needs: no floats).
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(u64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("byte {}: {what}", self.at)
    }

    fn skip_space(&mut self) {
        while self.text.get(self.at).is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_space();
        if self.text.get(self.at) == Some(&c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", c as char)))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_space();
        match self.text.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut fields = Vec::new();
                self.skip_space();
                if self.text.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(Json::Object(fields));
                }
                loop {
                    self.skip_space();
                    let Json::String(key) = self.value()? else { return Err(self.error("expected a key")) };
                    self.expect(b':')?;
                    fields.push((key, self.value()?));
                    self.skip_space();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Json::Object(fields));
                        }
                        _ => return Err(self.error("expected `,` or `}`")),
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.skip_space();
                if self.text.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.skip_space();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(self.error("expected `,` or `]`")),
                    }
                }
            }
            Some(b'"') => {
                self.at += 1;
                let mut s = String::new();
                loop {
                    let Some(&c) = self.text.get(self.at) else {
                        return Err(self.error("unterminated string"));
                    };
                    self.at += 1;
                    match c {
                        b'"' => return Ok(Json::String(s)),
                        b'\\' => {
                            let Some(&e) = self.text.get(self.at) else {
                                return Err(self.error("bad escape"));
                            };
                            self.at += 1;
                            match e {
                                b'n' => s.push('\n'),
                                b't' => s.push('\t'),
                                b'u' => {
                                    let hex =
                                        self.text.get(self.at..self.at + 4).ok_or(self.error("bad \\u"))?;
                                    let code =
                                        u32::from_str_radix(std::str::from_utf8(hex).unwrap_or("x"), 16)
                                            .map_err(|_| self.error("bad \\u"))?;
                                    s.push(char::from_u32(code).unwrap_or('?'));
                                    self.at += 4;
                                }
                                other => s.push(other as char),
                            }
                        }
                        _ => {
                            // Multi-byte UTF-8 goes through byte by byte.
                            let start = self.at - 1;
                            let len = match c {
                                0..=0x7f => 1,
                                0xc0..=0xdf => 2,
                                0xe0..=0xef => 3,
                                _ => 4,
                            };
                            let bytes = self.text.get(start..start + len).ok_or(self.error("bad UTF-8"))?;
                            s.push_str(std::str::from_utf8(bytes).map_err(|_| self.error("bad UTF-8"))?);
                            self.at = start + len;
                        }
                    }
                }
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.at;
                while self.text.get(self.at).is_some_and(|c| c.is_ascii_digit()) {
                    self.at += 1;
                }
                let digits = std::str::from_utf8(&self.text[start..self.at]).unwrap_or("");
                digits.parse().map(Json::Number).map_err(|_| self.error("number too large"))
            }
            _ => {
                for (word, value) in
                    [("true", Json::Bool(true)), ("false", Json::Bool(false)), ("null", Json::Null)]
                {
                    if self.text[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(value);
                    }
                }
                Err(self.error("expected a value"))
            }
        }
    }
}

/// Reads the rows of a JSON file [`to_json`] wrote.
pub fn from_json(text: &str) -> Result<Vec<Row>, String> {
    let mut p = Parser { text: text.as_bytes(), at: 0 };
    let doc = p.value()?;
    p.skip_space();
    if p.at != text.len() {
        return Err(p.error("trailing text"));
    }
    let Some(Json::Array(rows)) = doc.get("rows") else { return Err("no \"rows\" array".into()) };
    rows.iter()
        .map(|r| {
            let text = |k: &str| match r.get(k) {
                Some(Json::String(s)) => Ok(s.clone()),
                _ => Err(format!("a row without a string \"{k}\"")),
            };
            let number = |k: &str| match r.get(k) {
                Some(Json::Number(n)) => Ok(*n),
                _ => Err(format!("a row without a number \"{k}\"")),
            };
            let value = number("value")?;
            Ok(Row {
                name: text("name")?,
                value,
                max: number("max").unwrap_or(value),
                unit: text("unit")?,
                system: text("system").unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, value: u64) -> Row {
        Row {
            name: name.into(),
            value,
            max: value,
            unit: "instructions".into(),
            system: "configs/bench.dts".into(),
        }
    }

    const BUDGETS: &str = "
# comment
[met]
target = 100

[over]          # still over its target
target = 100
ceiling = 340

[size]
target = 65_536
ceiling = 230_000
";

    #[test]
    fn budgets_parse() {
        let b = parse_budgets(BUDGETS).unwrap();
        assert_eq!(b["met"], Budget { target: Some(100), ceiling: None });
        assert_eq!(b["over"], Budget { target: Some(100), ceiling: Some(340) });
        assert_eq!(b["size"], Budget { target: Some(65_536), ceiling: Some(230_000) });
    }

    #[test]
    fn bad_budgets_are_refused_with_the_line() {
        assert!(parse_budgets("target = 1").unwrap_err().contains("outside a [row]"));
        assert!(parse_budgets("[a]\ntarget = x").unwrap_err().contains("line 2"));
        assert!(parse_budgets("[a]\nlimit = 1").unwrap_err().contains("unknown key"));
        assert!(parse_budgets("[a]\nceiling = 1").unwrap_err().contains("no target"));
        assert!(parse_budgets("[a]\ntarget = 5\nceiling = 4").unwrap_err().contains("below target"));
        assert!(parse_budgets("[a]\ntarget = 5\n[a]\ntarget = 5").unwrap_err().contains("twice"));
    }

    #[test]
    fn the_check_names_the_row_over_budget() {
        let b = parse_budgets(BUDGETS).unwrap();
        let within = [row("met", 100), row("over", 340), row("size", 219_000)];
        let v = check(&within, &b);
        assert!(v.passed(), "{v:?}");
        assert_eq!(v.over_target.len(), 2);
        assert!(v.over_target[0].starts_with("over: 340 instructions, target 100 (240 over"));

        let v = check(&[row("met", 101), row("over", 200), row("size", 1)], &b);
        assert_eq!(v.failures, ["met: 101 instructions exceeds its budget 100"]);
        assert_eq!(v.tighten, ["size: meets its target 65536: drop its ceiling 230000"]);

        let v = check(&[row("met", 1), row("over", 341), row("size", 1)], &b);
        assert_eq!(v.failures, ["over: 341 instructions exceeds its regression ceiling 340 (target 100)"]);

        let v = check(&[row("met", 1), row("size", 1)], &b);
        assert!(!v.passed());
        assert!(v.failures[0].starts_with("over: no figure"));
        // The busy system's figure has the same budget.
        let v = check(&[row("met", 1), row("met_busy", 120), row("over", 1), row("size", 1)], &b);
        assert_eq!(v.failures, ["met_busy: 120 instructions exceeds its budget 100"]);
        // A ceiling held for the busy system's figure is not worth dropping while that is over.
        let v = check(&[row("met", 1), row("over", 90), row("over_busy", 300), row("size", 100_000)], &b);
        assert!(v.passed(), "{v:?}");
        assert_eq!(v.over_target.len(), 2, "{v:?}");
        assert!(v.tighten.is_empty(), "{v:?}");
        let v = check(&[row("met", 1), row("over", 90), row("over_busy", 99), row("size", 100_000)], &b);
        assert_eq!(v.tighten, ["over: meets its target 100: drop its ceiling 340"]);
        // A busy system's figure with a budget of its own is held to that one only.
        let own = parse_budgets(&format!("{BUDGETS}\n[met_busy]\ntarget = 400\n")).unwrap();
        let v = check(&[row("met", 1), row("met_busy", 400), row("over", 1), row("size", 1)], &own);
        assert!(v.passed() && v.over_target.is_empty(), "{v:?}");
        let v = check(&[row("met", 1), row("met_busy", 401), row("over", 1), row("size", 1)], &own);
        assert_eq!(v.failures, ["met_busy: 401 instructions exceeds its budget 400"]);
        // Rows without a budget are figures only.
        assert!(check(&[row("met", 1), row("over", 1), row("size", 1), row("other", 1 << 40)], &b).passed());
    }

    #[test]
    fn json_round_trips() {
        let rows =
            vec![row("hvc_psci_version", 323), Row { max: 9, unit: "ticks".into(), ..row("a \"b\"\n", 7) }];
        let text = to_json(&rows, "qemu-system-aarch64 -icount shift=0,sleep=off");
        assert_eq!(from_json(&text).unwrap(), rows);
        assert!(from_json("{\"rows\": [{\"name\": \"x\"}]}").unwrap_err().contains("value"));
        assert!(from_json("{\"rows\": []} x").unwrap_err().contains("trailing"));
        assert_eq!(from_json("{\"other\": [true, null, {}], \"rows\": []}").unwrap(), []);
    }
}
