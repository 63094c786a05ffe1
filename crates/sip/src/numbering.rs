//! Number handling for trunks: cleaning dialed strings and rewrite rules (strip a prefix,
//! prepend another) applied before a number is sent to a gateway.
//!
//! A rule's `pattern` matches digit by digit: a digit or `+`/`*`/`#` matches itself, `X`
//! any digit, `Z` 1–9, `N` 2–9, `[1-5]` a range; a trailing `.` matches one or more
//! further characters, and without it the length must match exactly. Example: pattern
//! `0ZXXXXXXXX`, strip 1, prepend `+33` turns `0612345678` into `+33612345678`.

/// One rewrite rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteRule {
    pub pattern: String,
    /// Characters removed from the front after a match.
    pub strip: usize,
    /// Prepended after stripping.
    pub prepend: String,
}

impl RewriteRule {
    pub fn new(pattern: &str, strip: usize, prepend: &str) -> RewriteRule {
        RewriteRule {
            pattern: pattern.to_string(),
            strip,
            prepend: prepend.to_string(),
        }
    }

    /// Whether `number` matches the pattern.
    pub fn matches(&self, number: &str) -> bool {
        let n: Vec<char> = number.chars().collect();
        let p: Vec<char> = self.pattern.chars().collect();
        let mut i = 0; // index in n
        let mut j = 0; // index in p
        while j < p.len() {
            let pc = p[j];
            if pc == '.' && j + 1 == p.len() {
                return i < n.len();
            }
            let Some(&c) = n.get(i) else {
                return false;
            };
            let ok = match pc {
                'X' | 'x' => c.is_ascii_digit(),
                'Z' | 'z' => matches!(c, '1'..='9'),
                'N' | 'n' => matches!(c, '2'..='9'),
                '[' => {
                    let Some(end) = p[j..].iter().position(|&x| x == ']') else {
                        return false;
                    };
                    let set = &p[j + 1..j + end];
                    j += end;
                    class_contains(set, c)
                }
                other => other == c,
            };
            if !ok {
                return false;
            }
            i += 1;
            j += 1;
        }
        i == n.len()
    }

    /// Applies the rule if it matches.
    pub fn apply(&self, number: &str) -> Option<String> {
        if !self.matches(number) {
            return None;
        }
        let rest: String = number.chars().skip(self.strip).collect();
        Some(format!("{}{rest}", self.prepend))
    }
}

fn class_contains(set: &[char], c: char) -> bool {
    let mut k = 0;
    while k < set.len() {
        if k + 2 < set.len() && set[k + 1] == '-' {
            if (set[k]..=set[k + 2]).contains(&c) {
                return true;
            }
            k += 3;
        } else {
            if set[k] == c {
                return true;
            }
            k += 1;
        }
    }
    false
}

/// Applies the first matching rule; `None` if no rule matches (the number is not
/// allowed on this trunk). An empty rule list passes numbers through unchanged.
pub fn rewrite(number: &str, rules: &[RewriteRule]) -> Option<String> {
    if rules.is_empty() {
        return Some(number.to_string());
    }
    rules.iter().find_map(|r| r.apply(number))
}

/// Cleans a dialed string: removes visual separators (space, `-`, `.`, `(`, `)`) and
/// `%`-escapes of them; keeps digits, `+` (leading only), `*`, `#`. `None` if anything
/// else remains or the result is empty.
pub fn clean_dialed(s: &str) -> Option<String> {
    let s = s.replace("%20", "").replace("%2B", "+").replace("%2b", "+");
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '0'..='9' | '*' | '#' => out.push(c),
            '+' if i == 0 => out.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    (!out.is_empty() && out != "+").then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let r = RewriteRule::new("0ZXXXXXXXX", 1, "+33");
        assert_eq!(r.apply("0612345678").as_deref(), Some("+33612345678"));
        assert_eq!(r.apply("0012345678"), None, "Z excludes 0");
        assert_eq!(r.apply("061234567"), None, "length");
        let intl = RewriteRule::new("00.", 2, "+");
        assert_eq!(intl.apply("0049301234").as_deref(), Some("+49301234"));
        assert_eq!(intl.apply("00"), None, ". needs one more");
        let class = RewriteRule::new("[1-3,7]XX", 0, "");
        assert!(class.matches("155"));
        assert!(class.matches("700"));
        assert!(!class.matches("455"));
        assert!(!RewriteRule::new("[12", 0, "").matches("1"));
        let rules = vec![r.clone(), intl.clone(), RewriteRule::new("+.", 0, "")];
        assert_eq!(rewrite("+4930", &rules).as_deref(), Some("+4930"));
        assert_eq!(rewrite("1234", &rules), None);
        assert_eq!(rewrite("1234", &[]).as_deref(), Some("1234"));
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean_dialed("+33 (0)6-12.34").as_deref(), Some("+33061234"));
        assert_eq!(clean_dialed("%2B4930%201234").as_deref(), Some("+49301234"));
        assert_eq!(clean_dialed("*72#").as_deref(), Some("*72#"));
        assert_eq!(clean_dialed("12+3"), None);
        assert_eq!(clean_dialed("alice"), None);
        assert_eq!(clean_dialed(""), None);
    }
}
