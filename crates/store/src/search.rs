//! The directory's search key: what `LIKE '%q%'` matches for a person. The name in lower case,
//! its pinyin in full and as initials (张三 → `zhangsan zs`; letters of other words count by
//! their first letter), and every number and address, separated by spaces. Computed by the
//! repositories on every write so a search is one query.

use pinyin::ToPinyin;

/// The key of a person called `name` with these other searchable values (login name, numbers,
/// e-mail).
pub fn search_key(name: &str, others: &[Option<&str>]) -> String {
    let name = name.trim().to_lowercase();
    let mut full = String::new();
    let mut initials = String::new();
    let mut word_start = true;
    let mut has_han = false;
    for ch in name.chars() {
        if let Some(p) = ch.to_pinyin() {
            has_han = true;
            full.push_str(p.plain());
            initials.push_str(p.first_letter());
            word_start = true;
        } else if ch.is_alphanumeric() {
            full.push(ch);
            if word_start {
                initials.push(ch);
            }
            word_start = false;
        } else {
            word_start = true;
        }
    }
    let mut parts = vec![name.clone()];
    if has_han {
        parts.push(full);
        parts.push(initials);
    } else if initials.chars().count() > 1 {
        // "John Smith" is found by "js" too.
        parts.push(initials);
    }
    for other in others.iter().flatten() {
        // As a query is read: a number written `+86 138-0013 8000` is kept as its digits, so
        // it is found however either was typed.
        let other = normalize_query(other);
        if !other.is_empty() {
            parts.push(other);
        }
    }
    parts.join(" ")
}

/// What a search for `q` looks for in the keys: lower case; a number typed with spaces,
/// dashes, dots or brackets (`138-0013 8000`, `+86 (10) 1234`) as its digits alone.
pub fn normalize_query(q: &str) -> String {
    let q = q.trim().to_lowercase();
    let looks_like_number = q.chars().any(|c| c.is_ascii_digit())
        && q.chars()
            .all(|c| c.is_ascii_digit() || " -.()+".contains(c));
    if looks_like_number {
        q.chars().filter(char::is_ascii_digit).collect()
    } else {
        q
    }
}

/// `q` as a LIKE pattern that finds it anywhere, its own `%`, `_` and `\` taken literally
/// (with `ESCAPE '\'`).
pub fn like_pattern(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for ch in q.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_names_have_their_pinyin_and_initials() {
        let key = search_key("张三", &[Some("+8613800138000"), None, Some("1001")]);
        assert_eq!(key, "张三 zhangsan zs 8613800138000 1001");
        assert!(search_key("李小龙 Bruce", &[]).contains("lxlb"));
    }

    #[test]
    fn latin_names_have_initials() {
        assert_eq!(search_key(" John Smith ", &[]), "john smith js");
        assert_eq!(search_key("Alice", &[Some("")]), "alice");
        assert_eq!(
            search_key("Bob", &[Some("+86 138-0013 8000"), Some("Bob@Example.com")]),
            "bob 8613800138000 bob@example.com"
        );
    }

    #[test]
    fn queries_are_normalized_and_escaped() {
        assert_eq!(normalize_query(" ZS "), "zs");
        assert_eq!(normalize_query("+86 138-0013 (8000)"), "8613800138000");
        assert_eq!(normalize_query("a-b"), "a-b");
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
