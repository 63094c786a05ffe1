//! Phone numbers go out through trunks: which trunk takes a number, and what it becomes on the
//! way (the trunk's rewrite rules, like a PBX dial plan).

use crate::secrets::Sealer;
use conclave_store::model::{RewriteRule, Trunk};

/// Trunks as stored, with their passwords opened for use (a password that does not open is
/// dropped: the gateway will refuse us, and the log says why).
pub fn unsealed(mut trunks: Vec<Trunk>, sealer: &Sealer) -> Vec<Trunk> {
    for trunk in &mut trunks {
        if let Some(sealed) = trunk.password.take() {
            trunk.password = sealer.open(&sealed);
            if trunk.password.is_none() {
                tracing::warn!(
                    trunk = trunk.name,
                    "the trunk's password does not open with this data directory's key"
                );
            }
        }
    }
    trunks
}

/// A number as people write it ("+86 10-6552 9988", "(030) 1234") reduced to what a gateway
/// dials: an optional leading `+`, then digits, `*` and `#`. `None` when it is not a number.
pub fn dialable(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            '0'..='9' | '*' | '#' => out.push(c),
            '+' if i == 0 => out.push(c),
            ' ' | '-' | '(' | ')' | '.' => {}
            _ => return None,
        }
    }
    let digits = out.trim_start_matches('+');
    (!digits.is_empty() && digits.len() <= 32).then_some(out)
}

/// Compiles a rule's pattern, anchored to the whole number, with a small size limit (rules
/// come from administrators, but a pattern must not be able to eat the server's memory).
pub fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 16)
        .build()
        .map_err(|e| e.to_string())
}

/// What `rule` makes of `number`, when it matches.
fn apply(rule: &RewriteRule, number: &str) -> Option<String> {
    let re = compile(&rule.pattern).ok()?;
    let caps = re.captures(number)?;
    let mut out = String::new();
    caps.expand(&rule.replace, &mut out);
    Some(out)
}

/// The trunk that takes `number` and the number to send it: enabled trunks by priority, then
/// name; a trunk without rules takes every number unchanged, one with rules only what a rule
/// matches.
pub fn route<'a>(trunks: &'a [Trunk], number: &str) -> Option<(&'a Trunk, String)> {
    let mut candidates: Vec<&Trunk> = trunks.iter().filter(|t| t.settings.enabled).collect();
    candidates.sort_by(|a, b| (a.settings.priority, &a.name).cmp(&(b.settings.priority, &b.name)));
    candidates.into_iter().find_map(|trunk| {
        if trunk.settings.rewrite.is_empty() {
            return Some((trunk, number.to_owned()));
        }
        trunk
            .settings
            .rewrite
            .iter()
            .find_map(|rule| apply(rule, number))
            .map(|dialled| (trunk, dialled))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_store::model::TrunkSettings;

    fn trunk(name: &str, priority: i32, rules: &[(&str, &str)]) -> Trunk {
        let settings: TrunkSettings =
            serde_json::from_value(serde_json::json!({ "host": "gw.example.com" })).unwrap();
        Trunk {
            id: name.into(),
            tenant_id: "t".into(),
            name: name.into(),
            settings: TrunkSettings {
                priority,
                rewrite: rules
                    .iter()
                    .map(|(p, r)| RewriteRule {
                        pattern: (*p).into(),
                        replace: (*r).into(),
                    })
                    .collect(),
                ..settings
            },
            password: None,
            has_password: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn numbers_are_reduced_to_what_a_gateway_dials() {
        assert_eq!(
            dialable("+86 10-6552 9988").as_deref(),
            Some("+861065529988")
        );
        assert_eq!(dialable("(030) 1234").as_deref(), Some("0301234"));
        assert_eq!(dialable("*86#").as_deref(), Some("*86#"));
        assert_eq!(dialable("1+2"), None);
        assert_eq!(dialable("sip:evil@x"), None);
        assert_eq!(dialable("+"), None);
        assert_eq!(dialable(&"1".repeat(33)), None);
    }

    #[test]
    fn first_matching_trunk_by_priority_rewrites_the_number() {
        let trunks = vec![
            trunk(
                "mobile",
                1,
                &[(r"1\d{10}", "+86$0"), (r"\+86(1\d{10})", "+86$1")],
            ),
            trunk("local", 2, &[(r"0(\d+)", "+8610$1")]),
            trunk("fallback", 9, &[]),
        ];
        let (t, n) = route(&trunks, "13800138000").unwrap();
        assert_eq!((t.name.as_str(), n.as_str()), ("mobile", "+8613800138000"));
        let (t, n) = route(&trunks, "065529988").unwrap();
        assert_eq!((t.name.as_str(), n.as_str()), ("local", "+861065529988"));
        let (t, n) = route(&trunks, "+4930123").unwrap();
        assert_eq!((t.name.as_str(), n.as_str()), ("fallback", "+4930123"));
        // Rules match the whole number, not a part of it.
        let strict = vec![trunk("strict", 0, &[(r"\d{4}", "$0")])];
        assert!(route(&strict, "123456").is_none());
        assert_eq!(route(&strict, "1234").unwrap().1, "1234");
    }

    #[test]
    fn disabled_trunks_take_nothing() {
        let mut t = trunk("off", 0, &[]);
        t.settings.enabled = false;
        assert!(route(&[t], "123").is_none());
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(compile("(").is_err());
        assert!(compile(r"\d{1000}{1000}").is_err());
        assert!(compile(r"0(\d+)").is_ok());
    }
}
