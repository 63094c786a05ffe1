#![no_main]
//! SCIM filter parser (RFC 7644 §3.4.2.2) and attribute paths: never panics, whatever the
//! text; a parsed filter evaluates against a resource without panicking, and so does its
//! negation (`not (…)`), which matches exactly when the filter does not.
use conclave_directory_formats::scim_filter::{Path, parse};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn resource() -> &'static serde_json::Value {
    static R: OnceLock<serde_json::Value> = OnceLock::new();
    R.get_or_init(|| {
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "01a2", "userName": "bjensen@example.com", "displayName": "Barbara Jensen",
            "active": true, "title": "Guide",
            "name": { "formatted": "Barbara Jensen" },
            "emails": [{ "value": "bjensen@example.com", "type": "work", "primary": true }],
            "phoneNumbers": [{ "value": "+8613800138000", "type": "mobile" }],
            "members": [{ "value": "01a3", "display": "x" }],
            "meta": { "created": "2026-12-02T17:25:16Z", "lastModified": "2026-12-02T17:25:16Z" },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Sales/North" },
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Path::parse(&text);
    if let Ok(filter) = parse(&text) {
        let matched = filter.matches(resource());
        if let Ok(negated) = parse(&format!("not ({text})")) {
            assert_eq!(negated.matches(resource()), !matched, "{text}");
        }
    }
});
