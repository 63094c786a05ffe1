//! Field checks that collect every refusal of a request, so the client sees all at once.

use super::problem::{ApiError, FieldError};

#[derive(Default)]
pub struct Checks {
    errors: Vec<FieldError>,
}

/// Characters no name or text field may hold: C0 and C1 controls (NUL included, which
/// PostgreSQL cannot store), the bidirectional embeddings, overrides, isolates and marks that
/// make a name display as something else ("Trojan Source"), the line and paragraph separators,
/// and the byte-order mark. Joiners (U+200C, U+200D) stay: scripts and emoji need them.
pub fn is_forbidden_in_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'                 // ARABIC LETTER MARK
            | '\u{200E}' | '\u{200F}'  // LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
            | '\u{202A}'..='\u{202E}'  // embeddings, pop, overrides
            | '\u{2066}'..='\u{2069}'  // isolates
            | '\u{2028}' | '\u{2029}'  // line / paragraph separator
            | '\u{FEFF}' // byte-order mark
        )
}

/// Base words of the most common passwords: a password that is one of these with only digits
/// and symbols around it ("Password123!", "qwerty-2024") is among the first guesses.
const COMMON_PASSWORD_WORDS: &[&str] = &[
    "password",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "pass",
    "qwerty",
    "qwertyuiop",
    "qwertz",
    "azerty",
    "asdf",
    "asdfgh",
    "asdfghjkl",
    "zxcvbnm",
    "qazwsx",
    "qazwsxedc",
    "1qaz2wsx",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "q1w2e3r4",
    "abc",
    "abcd",
    "abcdef",
    "abcdefg",
    "abcdefgh",
    "abcdefghij",
    "iloveyou",
    "letmein",
    "welcome",
    "admin",
    "administrator",
    "root",
    "login",
    "changeme",
    "secret",
    "default",
    "guest",
    "user",
    "test",
    "monkey",
    "dragon",
    "master",
    "football",
    "baseball",
    "soccer",
    "superman",
    "batman",
    "sunshine",
    "princess",
    "shadow",
    "michael",
    "jennifer",
    "hello",
    "freedom",
    "whatever",
    "trustno",
    "starwars",
    "pokemon",
    "computer",
    "internet",
    "samsung",
    "google",
    "conclave",
    "conference",
    "meeting",
    "phone",
    "woaini",
    "aini",
    "zhang",
    "wang",
    "li",
    "liu",
    "chen",
];

/// Why a password is too weak, or None. At least 10 characters (at most 256); at least two
/// of lower-case, upper-case, digits and other characters unless it is a passphrase of 16 or
/// more; at least 5 different characters; not a common password (a common word with only
/// digits and symbols around it, or digits and symbols alone); not the login name, e-mail,
/// or extension (again with only digits and symbols around it).
pub fn password_weakness(value: &str, identity: &[&str]) -> Option<String> {
    let n = value.chars().count();
    if !(10..=256).contains(&n) {
        return Some("must be 10 to 256 characters".into());
    }
    if value.chars().any(is_forbidden_in_text) {
        return Some("must not contain control characters".into());
    }
    let classes = [
        value.chars().any(|c| c.is_lowercase()),
        value.chars().any(|c| c.is_uppercase()),
        value.chars().any(|c| c.is_ascii_digit()),
        value.chars().any(|c| {
            !c.is_alphanumeric() || (c.is_alphabetic() && !c.is_lowercase() && !c.is_uppercase())
        }),
    ]
    .iter()
    .filter(|&&present| present)
    .count();
    if classes < 2 && n < 16 {
        return Some(
            "must mix at least two of lower-case, upper-case, digits and other characters \
             (or be a passphrase of 16 characters or more)"
                .into(),
        );
    }
    let mut distinct: Vec<char> = value.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Some("must have at least 5 different characters".into());
    }
    let lower = value.to_lowercase();
    // What is left when the digits and symbols around the first and last letter are removed.
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    if core.is_empty() || COMMON_PASSWORD_WORDS.contains(&core) || is_sequence(&lower) {
        return Some("is too common: it is among the first passwords a guesser tries".into());
    }
    for id in identity.iter().map(|id| id.trim().to_lowercase()) {
        let local = id.split('@').next().unwrap_or(&id).to_owned();
        if id.is_empty() {
            continue;
        }
        let same =
            |candidate: &str| candidate == id || (local.chars().count() >= 3 && candidate == local);
        if same(&lower) || same(core) {
            return Some("must not be the login name, e-mail address or extension".into());
        }
    }
    None
}

/// Runs of neighbouring characters ("1234567890", "abcdefghijk", "9876543210").
fn is_sequence(value: &str) -> bool {
    let codes: Vec<i64> = value.chars().map(|c| i64::from(u32::from(c))).collect();
    let steps: Vec<i64> = codes.windows(2).map(|w| w[1] - w[0]).collect();
    !steps.is_empty() && steps.iter().all(|&d| d == steps[0] && d.abs() <= 1)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// Text of `min..=max` characters, not blank, without control or bidirectional
    /// formatting characters (see [`is_forbidden_in_text`]).
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min || n > max || (min > 0 && value.trim().is_empty()) {
            self.fail(field, format!("must be {min} to {max} characters"));
        } else {
            self.plain(field, value);
        }
    }

    /// No control or bidirectional formatting characters (see [`is_forbidden_in_text`]).
    pub fn plain(&mut self, field: &str, value: &str) {
        if let Some(c) = value.chars().find(|&c| is_forbidden_in_text(c)) {
            self.fail(
                field,
                format!(
                    "must not contain control or bidirectional formatting characters (found U+{:04X})",
                    u32::from(c)
                ),
            );
        }
    }

    pub fn digits(&mut self, field: &str, value: &str, min: usize, max: usize) {
        if !is_digits(value) || value.len() < min || value.len() > max {
            self.fail(field, format!("must be {min} to {max} digits"));
        }
    }

    /// A phone number: an optional leading +, then 3 to 20 digits.
    pub fn phone(&mut self, field: &str, value: &str) {
        let digits = value.strip_prefix('+').unwrap_or(value);
        if !is_digits(digits) || digits.len() < 3 || digits.len() > 20 {
            self.fail(
                field,
                "must be a phone number: an optional + then 3 to 20 digits",
            );
        }
    }

    pub fn email(&mut self, field: &str, value: &str) {
        let ok = value.len() <= 254
            && !value.contains(char::is_whitespace)
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !ok {
            self.fail(field, "must be an email address such as name@example.com");
        } else {
            self.plain(field, value);
        }
    }

    /// Login names: 2 to 64 of a-z 0-9 . _ - @ (stored lower-case).
    pub fn username(&mut self, field: &str, value: &str) {
        let ok = (2..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b));
        if !ok {
            self.fail(
                field,
                "must be 2 to 64 characters of a-z, 0-9, '.', '_', '-', '@'",
            );
        }
    }

    /// A password (web or SIP) of minimum strength: see [`password_weakness`]. `identity` holds
    /// what a guesser tries first for this account (login name, e-mail, extension).
    pub fn password(&mut self, field: &str, value: &str, identity: &[&str]) {
        if let Some(reason) = password_weakness(value, identity) {
            self.fail(field, reason);
        }
    }

    /// A video layout's name, when one is given.
    pub fn layout(&mut self, field: &str, value: Option<&str>) {
        if let Some(v) = value
            && conclave_conference::layout::LayoutKind::parse(v).is_none()
        {
            self.fail(field, "one of 1, 4, 1+7, 1+21, 2+21");
        }
    }

    pub fn range(&mut self, field: &str, value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.fail(field, format!("must be between {min} and {max}"));
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_refusal() {
        let mut c = Checks::new();
        c.digits("pin", "12a4", 4, 12);
        c.digits("number", "8001", 2, 12);
        c.phone("mobile", "+8613800138000");
        c.phone("landline", "call me");
        c.email("email", "nobody");
        c.username("username", "Bob");
        c.text("name", "   ", 1, 10);
        let err = c.finish().unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["pin", "landline", "email", "username", "name"]);
    }

    #[test]
    fn passwords_of_minimum_strength() {
        let id = ["zhang.wei", "zhang.wei@example.com", "1001"];
        for weak in [
            "short1!",            // too short
            "abcdefghijkl",       // one class, a sequence
            "correcthorse",       // one class, under 16
            "1234567890",         // digits only, a sequence
            "aaaaaaaaaaaaaaaaaa", // one character
            "a1a1a1a1a1a1",       // few different characters
            "Password123!",       // a common word with digits and symbols
            "qwerty-2024!",
            "P@ssw0rd2024",
            "Zhang.Wei2024", // the login name
            "zhang.wei@example.com",
            "!!1001!!1001", // digits and symbols only, no word
        ] {
            assert!(
                password_weakness(weak, &id).is_some(),
                "{weak:?} must be refused"
            );
        }
        for strong in [
            "desk-password",
            "Tr0ub4dor&3x",
            "correct horse battery staple",
            "我的密码是一段很长的句子吧对吧呢",
            "zhang-password",
            "sip-secret-3001",
        ] {
            assert_eq!(
                password_weakness(strong, &id),
                None,
                "{strong:?} must be accepted"
            );
        }
    }

    #[test]
    fn refuses_controls_and_bidi_formatting_in_text() {
        for bad in [
            "nul\u{0}",
            "tab\t",
            "nel\u{85}",
            "rlo\u{202E}gnp.exe",
            "lre\u{202A}",
            "pdf\u{202C}",
            "rli\u{2067}",
            "pdi\u{2069}",
            "rlm\u{200F}",
            "alm\u{061C}",
            "ls\u{2028}",
            "bom\u{FEFF}",
        ] {
            let mut c = Checks::new();
            c.text("name", bad, 1, 100);
            assert!(c.finish().is_err(), "{bad:?} must be refused");
        }
        for good in ["王芳", "José Ñúñez", "مريم", "שלום", "می‌خواهم", "👩‍💻 team"]
        {
            let mut c = Checks::new();
            c.text("name", good, 1, 100);
            assert!(c.finish().is_ok(), "{good:?} must be accepted");
        }
        let mut c = Checks::new();
        c.email("email", "a\u{202E}b@example.com");
        assert!(c.finish().is_err());
    }
}
