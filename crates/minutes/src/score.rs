//! How close a transcript is to what was said: word error rate (English) and character
//! error rate (Chinese), both as edit distance over the reference's length, after case
//! and punctuation are set aside.

/// Word error rate of `hypothesis` against `reference`, in 0.0 (all right) and up.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r = words(reference);
    let h = words(hypothesis);
    rate(&r, &h)
}

/// Character error rate (for Chinese: each character is a word).
pub fn char_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let keep = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    rate(&keep(reference), &keep(hypothesis))
}

/// Edits between two sequences and the reference's length.
pub fn edits<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> usize {
    let mut previous: Vec<usize> = (0..=hypothesis.len()).collect();
    let mut current = vec![0; hypothesis.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        current[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let substitution = previous[j] + usize::from(r != h);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[hypothesis.len()]
}

fn rate<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> f64 {
    if reference.is_empty() {
        return if hypothesis.is_empty() { 0.0 } else { 1.0 };
    }
    edits(reference, hypothesis) as f64 / reference.len() as f64
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_edits_over_the_reference() {
        assert_eq!(
            word_error_rate("The budget is approved.", "the budget is approved"),
            0.0
        );
        assert_eq!(word_error_rate("a b c d", "a x c"), 0.5);
        assert_eq!(char_error_rate("我们明天开会。", "我们明天开会"), 0.0);
        assert!((char_error_rate("我们明天开会", "我明天开会了") - 2.0 / 6.0).abs() < 1e-9);
        assert_eq!(word_error_rate("", ""), 0.0);
        assert_eq!(word_error_rate("", "noise"), 1.0);
    }
}
