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

    pub fn password(&mut self, field: &str, value: &str) {
        let n = value.chars().count();
        if !(8..=256).contains(&n) {
            self.fail(field, "must be 8 to 256 characters");
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
