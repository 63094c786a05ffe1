//! SCIM filters (RFC 7644 §3.4.2.2): `userName eq "bjensen"`, `emails[type eq "work"]`,
//! `title pr and (displayName sw "B" or not (active eq false))`. A small recursive-descent
//! parser (bounded length and nesting) and an evaluator over a resource's JSON form, so every
//! attribute a resource shows can be filtered on, with SCIM's case-insensitive string
//! comparison.

use serde_json::Value;

/// The longest filter accepted (characters).
pub const MAX_LEN: usize = 2_000;
/// The deepest nesting of parentheses, `not` and value paths.
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(Path),
    Compare(Path, Op, Value),
    /// `attr[filter]` (optionally `.sub` after the bracket is not part of a filter).
    Has(Path, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// An attribute path: an optional schema URN, the attribute, and a sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub schema: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl Path {
    /// Parses `name`, `name.sub` or `urn:…:name[.sub]`.
    pub fn parse(text: &str) -> Option<Path> {
        let (schema, rest) = if text.to_ascii_lowercase().starts_with("urn:") {
            let i = text.rfind(':')?;
            (Some(text[..i].to_owned()), &text[i + 1..])
        } else {
            (None, text)
        };
        let (attr, sub) = match rest.split_once('.') {
            Some((a, s)) => (a, Some(s.to_owned())),
            None => (rest, None),
        };
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if !ok(attr) || sub.as_deref().is_some_and(|s| !ok(s)) {
            return None;
        }
        Some(Path {
            schema,
            attr: attr.to_owned(),
            sub,
        })
    }
}

/// Looks a key up in an object, case-insensitively (SCIM attribute names are).
pub fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let map = v.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The values a path reaches in a resource (multi-valued attributes flattened).
fn reach<'a>(root: &'a Value, path: &Path) -> Vec<&'a Value> {
    let base = match &path.schema {
        Some(schema) => match get_ci(root, schema) {
            Some(ext) => ext,
            // `urn:…:User:userName`: the core schema's attribute named by its URN.
            None if schema
                .to_ascii_lowercase()
                .starts_with("urn:ietf:params:scim:schemas:core:") =>
            {
                root
            }
            None => return Vec::new(),
        },
        None => root,
    };
    let mut out: Vec<&Value> = Vec::new();
    let Some(v) = get_ci(base, &path.attr) else {
        return out;
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for item in items {
        match &path.sub {
            Some(sub) => {
                if let Some(s) = get_ci(item, sub) {
                    out.push(s);
                }
            }
            // A complex multi-valued attribute compares by its `value`.
            None => match item {
                Value::Object(_) => {
                    if let Some(s) = get_ci(item, "value") {
                        out.push(s);
                    }
                }
                other => out.push(other),
            },
        }
    }
    out
}

fn compare(have: &Value, op: Op, want: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (have, want) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = (a.to_lowercase(), b.to_lowercase());
            match op {
                Op::Co => return a.contains(&b),
                Op::Sw => return a.starts_with(&b),
                Op::Ew => return a.ends_with(&b),
                _ => a.cmp(&b),
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
                return false;
            };
            match a.partial_cmp(&b) {
                Some(o) => o,
                None => return false,
            }
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            Op::Eq => return a == b,
            Op::Ne => return a != b,
            _ => return false,
        },
        (a, Value::Null) => {
            return match op {
                Op::Eq => a.is_null(),
                Op::Ne => !a.is_null(),
                _ => false,
            };
        }
        _ => return op == Op::Ne,
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

impl Filter {
    /// Does the resource (its JSON form) match?
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::Present(path) => reach(resource, path).iter().any(|v| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => true,
            }),
            Filter::Compare(path, op, want) => {
                let have = reach(resource, path);
                if have.is_empty() {
                    return *op == Op::Ne || (*op == Op::Eq && want.is_null());
                }
                if *op == Op::Ne {
                    have.iter().all(|v| compare(v, Op::Ne, want))
                } else {
                    have.iter().any(|v| compare(v, *op, want))
                }
            }
            Filter::Has(path, inner) => {
                let base = match &path.schema {
                    Some(s) => get_ci(resource, s),
                    None => Some(resource),
                };
                match base.and_then(|b| get_ci(b, &path.attr)) {
                    Some(Value::Array(items)) => items.iter().any(|i| inner.matches(i)),
                    Some(item @ Value::Object(_)) => inner.matches(item),
                    _ => false,
                }
            }
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(a) => !a.matches(resource),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

/// Parses a filter; the error says what is wrong and where.
pub fn parse(text: &str) -> Result<Filter, String> {
    if text.chars().count() > MAX_LEN {
        return Err(format!("the filter is longer than {MAX_LEN} characters"));
    }
    let mut p = Parser {
        text,
        at: 0,
        depth: 0,
    };
    let f = p.or()?;
    p.space();
    if p.at < text.len() {
        return Err(format!("unexpected {:?} at {}", p.rest_snippet(), p.at));
    }
    Ok(f)
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }
    fn rest_snippet(&self) -> String {
        self.rest().chars().take(20).collect()
    }
    fn space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.at = self.text.len() - trimmed.len();
    }
    /// A bare word (attribute path or operator), up to a space, bracket or parenthesis.
    fn word(&mut self) -> &str {
        self.space();
        let rest = self.rest();
        let end = rest
            .find(|c: char| c.is_whitespace() || "()[]\"".contains(c))
            .unwrap_or(rest.len());
        let start = self.at;
        self.at += end;
        &self.text[start..self.at]
    }
    fn peek_keyword(&mut self, kw: &str) -> bool {
        self.space();
        let rest = self.rest();
        rest.len() >= kw.len()
            && rest.is_char_boundary(kw.len())
            && rest[..kw.len()].eq_ignore_ascii_case(kw)
            && rest[kw.len()..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == '(')
    }
    fn eat(&mut self, c: char) -> bool {
        self.space();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(format!("the filter nests deeper than {MAX_DEPTH}"))
        } else {
            Ok(())
        }
    }
    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.peek_keyword("or") {
            self.at += 2;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.at += 3;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_keyword("not") {
            self.at += 3;
            self.enter()?;
            if !self.eat('(') {
                return Err(format!("expected ( after not at {}", self.at));
            }
            let inner = self.or()?;
            if !self.eat(')') {
                return Err(format!("expected ) at {}", self.at));
            }
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.eat('(') {
            self.enter()?;
            let inner = self.or()?;
            if !self.eat(')') {
                return Err(format!("expected ) at {}", self.at));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        let start = self.at;
        let word = self.word().to_owned();
        let path = Path::parse(&word)
            .ok_or_else(|| format!("expected an attribute at {start}, found {word:?}"))?;
        if self.eat('[') {
            self.enter()?;
            let inner = self.or()?;
            if !self.eat(']') {
                return Err(format!("expected ] at {}", self.at));
            }
            self.depth -= 1;
            return Ok(Filter::Has(path, Box::new(inner)));
        }
        let op_at = self.at;
        let op = self.word().to_ascii_lowercase();
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(format!("unknown operator {other:?} at {op_at}")),
        };
        let value = self.value()?;
        Ok(Filter::Compare(path, op, value))
    }
    fn value(&mut self) -> Result<Value, String> {
        self.space();
        if self.rest().starts_with('"') {
            // A JSON string: find its closing quote, minding escapes.
            let bytes = self.rest().as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => break,
                    _ => i += 1,
                }
            }
            if i >= bytes.len() {
                return Err(format!("unterminated string at {}", self.at));
            }
            let literal = &self.rest()[..=i];
            let v: Value = serde_json::from_str(literal)
                .map_err(|e| format!("bad string at {}: {e}", self.at))?;
            self.at += i + 1;
            return Ok(v);
        }
        let at = self.at;
        let word = self.word();
        match word.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            "null" => Ok(Value::Null),
            _ => word
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("expected a value at {at}, found {word:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "userName": "bjensen@example.com",
            "displayName": "Barbara Jensen",
            "title": "Tour Guide",
            "active": true,
            "emails": [{ "value": "bjensen@example.com", "type": "work", "primary": true }],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Sales/North" },
        })
    }

    #[test]
    fn matches_the_common_forms() {
        let u = user();
        for (f, want) in [
            (r#"userName eq "BJensen@example.com""#, true),
            (r#"userName eq "other""#, false),
            (r#"displayName co "jen""#, true),
            (r#"displayName sw "Bar" and title pr"#, true),
            (r#"displayName sw "X" or active eq true"#, true),
            (r#"not (active eq true)"#, false),
            (
                r#"emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (r#"emails.value ew ".com""#, true),
            (r#"emails eq "bjensen@example.com""#, true),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "sales/north""#,
                true,
            ),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#,
                true,
            ),
            (r#"nickName pr"#, false),
            (r#"(title eq "Tour Guide") and (userName ne "x")"#, true),
        ] {
            let parsed = parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(parsed.matches(&u), want, "{f}");
        }
    }

    #[test]
    fn refuses_garbage() {
        for f in [
            "",
            "userName",
            "userName zz \"x\"",
            "userName eq",
            "userName eq \"x",
            "(userName eq \"x\"",
            "emails[type eq \"x\"",
            "not userName eq \"x\"",
            "userName eq \"x\" extra",
            "a.b.c eq 1",
        ] {
            assert!(parse(f).is_err(), "{f:?} must be refused");
        }
        let deep = format!("{}a pr{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).is_err());
        assert!(parse(&"a pr or ".repeat(400)).is_err());
    }
}
