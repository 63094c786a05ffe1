//! Field checks that collect every refusal of a request, so the client sees all at once.

use super::problem::{ApiError, FieldError};

#[derive(Default)]
pub struct Checks {
    errors: Vec<FieldError>,
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

    /// Text of `min..=max` characters, not blank, without control characters.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min || n > max || (min > 0 && value.trim().is_empty()) {
            self.fail(field, format!("must be {min} to {max} characters"));
        } else if value.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
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
}
