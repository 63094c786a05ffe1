//! PATCH (RFC 7644 §3.5.2) applied to a resource's JSON form: `add`, `replace` and `remove`
//! with or without a `path` (`title`, `name.givenName`, `emails[type eq "work"].value`,
//! `members[value eq "…"]`, `urn:…:User:department`). The result is then read back like a
//! PUT, so PATCH and PUT share one mapping onto the directory. Operation names and `"True"`
//! / `"False"` strings are taken as Entra ID sends them.

use super::filter::{self, Filter, Path};
use super::{MAX_PATCH_OPS, PATCH_OP, ScimError, ScimResult};
use serde_json::{Map, Value};

fn key_ci(map: &Map<String, Value>, key: &str) -> String {
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

fn container<'a>(
    root: &'a mut Value,
    schema: &Option<String>,
) -> ScimResult<&'a mut Map<String, Value>> {
    let obj = root
        .as_object_mut()
        .ok_or_else(|| ScimError::invalid("the resource is not an object"))?;
    match schema {
        Some(s)
            if !s
                .to_ascii_lowercase()
                .starts_with("urn:ietf:params:scim:schemas:core:") =>
        {
            let k = key_ci(obj, s);
            let ext = obj.entry(k).or_insert_with(|| Value::Object(Map::new()));
            if !ext.is_object() {
                *ext = Value::Object(Map::new());
            }
            ext.as_object_mut()
                .ok_or_else(|| ScimError::invalid("bad extension"))
        }
        _ => Ok(obj),
    }
}

/// Parses `attr[filter].sub` / `attr.sub` / `urn:…:attr`.
fn parse_path(path: &str) -> ScimResult<(Path, Option<Filter>, Option<String>)> {
    let bad =
        |e: String| ScimError::new(axum::http::StatusCode::BAD_REQUEST, Some("invalidPath"), e);
    if let Some(open) = path.find('[') {
        let close = path
            .rfind(']')
            .ok_or_else(|| bad(format!("{path:?}: no ]")))?;
        if close < open {
            return Err(bad(format!("{path:?}: bad brackets")));
        }
        let attr =
            Path::parse(&path[..open]).ok_or_else(|| bad(format!("{path:?}: bad attribute")))?;
        let f = filter::parse(&path[open + 1..close]).map_err(bad)?;
        let sub = path[close + 1..].strip_prefix('.').map(str::to_owned);
        Ok((attr, Some(f), sub))
    } else {
        let p =
            Path::parse(path).ok_or_else(|| bad(format!("{path:?} is not an attribute path")))?;
        Ok((p, None, None))
    }
}

fn normalize(v: Value) -> Value {
    match v {
        Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
        other => other,
    }
}

/// Applies a PatchOp request to `resource`.
pub fn apply_patch(resource: &mut Value, request: &Value) -> ScimResult<()> {
    let schemas_ok = request["schemas"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s == PATCH_OP));
    if !schemas_ok {
        return Err(ScimError::new(
            axum::http::StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("a PATCH names the schema {PATCH_OP}"),
        ));
    }
    let ops = super::filter::get_ci(request, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid("Operations is missing"))?;
    if ops.len() > MAX_PATCH_OPS {
        return Err(ScimError::invalid(format!(
            "at most {MAX_PATCH_OPS} operations"
        )));
    }
    for op in ops {
        let name = super::filter::get_ci(op, "op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let path = super::filter::get_ci(op, "path").and_then(Value::as_str);
        let value = super::filter::get_ci(op, "value").cloned().map(normalize);
        match (name.as_str(), path) {
            ("add" | "replace", None) => {
                let Some(Value::Object(map)) = value else {
                    return Err(ScimError::invalid(
                        "an operation without a path takes an object value",
                    ));
                };
                for (k, v) in map {
                    let v = normalize(v);
                    let (p, f, sub) = parse_path(&k)?;
                    set(resource, &p, f.as_ref(), sub.as_deref(), v, name == "add")?;
                }
            }
            ("add" | "replace", Some(path)) => {
                let v = value.ok_or_else(|| ScimError::invalid("add and replace take a value"))?;
                let (p, f, sub) = parse_path(path)?;
                set(resource, &p, f.as_ref(), sub.as_deref(), v, name == "add")?;
            }
            ("remove", Some(path)) => {
                let (p, f, sub) = parse_path(path)?;
                remove(resource, &p, f.as_ref(), sub.as_deref(), value.as_ref())?;
            }
            ("remove", None) => {
                return Err(ScimError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    Some("noTarget"),
                    "remove needs a path",
                ));
            }
            _ => return Err(ScimError::invalid(format!("unknown operation {name:?}"))),
        }
    }
    Ok(())
}

fn set(
    root: &mut Value,
    p: &Path,
    f: Option<&Filter>,
    sub: Option<&str>,
    v: Value,
    add: bool,
) -> ScimResult<()> {
    // An extension object given whole (`{"urn:…:User": {"department": "x"}}`).
    if p.schema.is_none() && p.attr.to_ascii_lowercase().starts_with("urn") {
        return Err(ScimError::invalid("bad path"));
    }
    let map = container(root, &p.schema)?;
    let k = key_ci(map, &p.attr);
    match (f, &p.sub) {
        (Some(f), _) => {
            let list = map.entry(k).or_insert_with(|| Value::Array(Vec::new()));
            if !list.is_array() {
                *list = Value::Array(Vec::new());
            }
            let items = list
                .as_array_mut()
                .ok_or_else(|| ScimError::invalid("bad list"))?;
            let mut hit = false;
            for item in items.iter_mut().filter(|i| f.matches(i)) {
                hit = true;
                match sub {
                    Some(s) => {
                        if let Some(o) = item.as_object_mut() {
                            let sk = key_ci(o, s);
                            o.insert(sk, v.clone());
                        }
                    }
                    None => *item = v.clone(),
                }
            }
            if !hit {
                // `emails[type eq "work"].value` with no work e-mail yet: add one.
                let mut item = Map::new();
                if let Filter::Compare(fp, filter::Op::Eq, want) = f {
                    item.insert(fp.attr.clone(), want.clone());
                }
                match sub {
                    Some(s) => {
                        item.insert(s.to_owned(), v);
                    }
                    None => {
                        if let Value::Object(o) = v {
                            item.extend(o);
                        }
                    }
                }
                items.push(Value::Object(item));
            }
        }
        (None, Some(s)) => {
            let obj = map.entry(k).or_insert_with(|| Value::Object(Map::new()));
            if !obj.is_object() {
                *obj = Value::Object(Map::new());
            }
            if let Some(o) = obj.as_object_mut() {
                let sk = key_ci(o, s);
                o.insert(sk, v);
            }
        }
        (None, None) => {
            let existing = map.get_mut(&k);
            match (existing, v, add) {
                (Some(Value::Array(items)), Value::Array(new), true) => {
                    for n in new {
                        if !items.contains(&n) {
                            items.push(n);
                        }
                    }
                }
                (Some(Value::Object(o)), Value::Object(new), _) => o.extend(new),
                (_, v, _) => {
                    map.insert(k, v);
                }
            }
        }
    }
    Ok(())
}

fn remove(
    root: &mut Value,
    p: &Path,
    f: Option<&Filter>,
    sub: Option<&str>,
    value: Option<&Value>,
) -> ScimResult<()> {
    let map = container(root, &p.schema)?;
    let k = key_ci(map, &p.attr);
    match (f, &p.sub) {
        (Some(f), _) => {
            if let Some(Value::Array(items)) = map.get_mut(&k) {
                match sub {
                    Some(s) => {
                        for item in items.iter_mut().filter(|i| f.matches(i)) {
                            if let Some(o) = item.as_object_mut() {
                                let sk = key_ci(o, s);
                                o.remove(&sk);
                            }
                        }
                    }
                    None => items.retain(|i| !f.matches(i)),
                }
            }
        }
        (None, Some(s)) => {
            if let Some(Value::Object(o)) = map.get_mut(&k) {
                let sk = key_ci(o, s);
                o.remove(&sk);
            }
        }
        (None, None) => match (map.get_mut(&k), value) {
            // Entra: remove members with a value listing which ones.
            (Some(Value::Array(items)), Some(Value::Array(gone))) => {
                let ids: Vec<&Value> = gone.iter().filter_map(|g| g.get("value")).collect();
                items.retain(|i| !i.get("value").is_some_and(|v| ids.contains(&v)));
            }
            _ => {
                map.remove(&k);
            }
        },
    }
    Ok(())
}
