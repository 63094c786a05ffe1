//! SCIM bulk (RFC 7644 §3.7): `POST /scim/v2/Bulk` runs a list of POST/PUT/PATCH/DELETE
//! operations on Users and Groups through the very functions the single routes use
//! (`users::create_user`, `groups::patch_group`, …), each in its own transaction with its
//! own audit event. `bulkId:<id>` in an operation's path or data names the resource another
//! operation of the request creates; an operation waits for the one it names (so the order
//! of the request does not matter), and one that names an unknown, failed or circular one
//! fails with 409. `failOnErrors: n` stops after the n-th failure; what was done stays done.

use super::*;
use axum::body::Body;
use axum::extract::State;
use std::collections::{HashMap, HashSet};

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// The most operations of one bulk request (advertised in `ServiceProviderConfig`); each
/// may hash a password, so this bounds the work of one request.
pub const MAX_OPERATIONS: usize = 100;
/// The largest bulk request body, in bytes (advertised in `ServiceProviderConfig`).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

struct Operation {
    method: Method,
    bulk_id: Option<String>,
    path: String,
    version: Option<String>,
    data: Value,
}

fn too_large(detail: String) -> ScimError {
    ScimError::new(StatusCode::PAYLOAD_TOO_LARGE, None, detail)
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::new(StatusCode::BAD_REQUEST, Some("invalidSyntax"), detail)
}

/// Reads one operation; a malformed one refuses the whole request (400), as its result
/// could not even be named.
fn read_operation(i: usize, v: &Value) -> ScimResult<Operation> {
    let at = |what: &str| syntax(format!("Operations[{i}]: {what}"));
    let method = match filter::get_ci(v, "method").and_then(Value::as_str) {
        Some(m) if m.eq_ignore_ascii_case("POST") => Method::Post,
        Some(m) if m.eq_ignore_ascii_case("PUT") => Method::Put,
        Some(m) if m.eq_ignore_ascii_case("PATCH") => Method::Patch,
        Some(m) if m.eq_ignore_ascii_case("DELETE") => Method::Delete,
        _ => return Err(at("method must be POST, PUT, PATCH or DELETE")),
    };
    let bulk_id = match filter::get_ci(v, "bulkId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(_) => return Err(at("bulkId must be a string of 1 to 256 characters")),
    };
    if method == Method::Post && bulk_id.is_none() {
        return Err(at("a POST needs a bulkId"));
    }
    let path = filter::get_ci(v, "path")
        .and_then(Value::as_str)
        .ok_or_else(|| at("path is missing"))?
        .to_owned();
    let version = filter::get_ci(v, "version")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let data = filter::get_ci(v, "data").cloned().unwrap_or(Value::Null);
    if method != Method::Delete && !data.is_object() {
        return Err(at("data must be an object"));
    }
    Ok(Operation {
        method,
        bulk_id,
        path,
        version,
        data,
    })
}

/// The bulkIds an operation names (`bulkId:<id>` as a whole string, or a path segment).
fn references(op: &Operation) -> HashSet<String> {
    fn walk(v: &Value, out: &mut HashSet<String>) {
        match v {
            Value::String(s) => {
                if let Some(id) = s.strip_prefix("bulkId:") {
                    out.insert(id.to_owned());
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = HashSet::new();
    walk(&op.data, &mut out);
    for segment in op.path.split('/') {
        if let Some(id) = segment.strip_prefix("bulkId:") {
            out.insert(id.to_owned());
        }
    }
    out
}

/// Replaces `bulkId:<id>` by the created resource's id.
fn resolve(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| resolve(x, ids)),
        Value::Object(m) => m.values_mut().for_each(|x| resolve(x, ids)),
        _ => {}
    }
}

fn resolve_path(path: &str, ids: &HashMap<String, String>) -> String {
    path.split('/')
        .map(|seg| {
            seg.strip_prefix("bulkId:")
                .and_then(|b| ids.get(b))
                .map_or(seg, String::as_str)
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Runs one operation (its references resolved) through the single routes' functions.
/// Answers the status and, except for DELETE, the resource.
async fn run(
    state: &AppState,
    caller: &Caller,
    method: Method,
    path: &str,
    version: Option<&str>,
    data: &Value,
) -> ScimResult<(StatusCode, Option<Value>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_found = || ScimError::invalid(format!("{} {path}: no such endpoint", method.name()));
    let (kind, id) = match parts.as_slice() {
        [kind] => (*kind, None),
        [kind, id] if !id.is_empty() => (*kind, Some(*id)),
        _ => return Err(not_found()),
    };
    let users = kind.eq_ignore_ascii_case("Users");
    if !users && !kind.eq_ignore_ascii_case("Groups") {
        return Err(not_found());
    }
    if data.to_string().contains("\\u0000") {
        return Err(ScimError::invalid("must not contain NUL (U+0000)"));
    }
    Ok(match (method, id) {
        (Method::Post, None) => {
            let v = if users {
                users::create_user(state, caller, data).await?
            } else {
                groups::create_group(state, caller, data).await?
            };
            (StatusCode::CREATED, Some(v))
        }
        (Method::Put, Some(id)) => {
            let v = if users {
                users::replace_user(state, caller, id, version, data).await?
            } else {
                groups::replace_group(state, caller, id, version, data).await?
            };
            (StatusCode::OK, Some(v))
        }
        (Method::Patch, Some(id)) => {
            let v = if users {
                users::patch_user(state, caller, id, version, data).await?
            } else {
                groups::patch_group(state, caller, id, version, data).await?
            };
            (StatusCode::OK, Some(v))
        }
        (Method::Delete, Some(id)) => {
            if users {
                users::delete_user(state, caller, id, version).await?;
            } else {
                groups::delete_group(state, caller, id, version).await?;
            }
            (StatusCode::NO_CONTENT, None)
        }
        _ => return Err(not_found()),
    })
}

fn error_result(op: &Operation, e: ScimError) -> Value {
    let mut response = json!({
        "schemas": [ERROR],
        "status": e.status.as_u16().to_string(),
        "detail": e.detail,
    });
    if let Some(t) = e.scim_type {
        response["scimType"] = json!(t);
    }
    let mut r = json!({
        "method": op.method.name(),
        "status": e.status.as_u16().to_string(),
        "response": response,
    });
    if let Some(b) = &op.bulk_id {
        r["bulkId"] = json!(b);
    }
    r
}

pub async fn bulk(
    State(state): State<AppState>,
    ScimCaller(caller): ScimCaller,
    body: Body,
) -> ScimResult<Response> {
    // Read up to the bound (the router's general body limit does not apply to a raw
    // body); not refused on Content-Length alone, so that a client still writing a body
    // just over the bound reads the 413 rather than a reset connection.
    let bytes = axum::body::to_bytes(body, MAX_PAYLOAD).await.map_err(|_| {
        too_large(format!(
            "the request is larger than maxPayloadSize ({MAX_PAYLOAD} bytes)"
        ))
    })?;
    let request = body_json(&bytes)?;
    let schemas_ok = filter::get_ci(&request, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(BULK_REQUEST)));
    if !schemas_ok {
        return Err(syntax(format!("schemas must list {BULK_REQUEST}")));
    }
    let listed = filter::get_ci(&request, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("Operations must be a list"))?;
    if listed.len() > MAX_OPERATIONS {
        return Err(too_large(format!(
            "the request has {} operations; maxOperations is {MAX_OPERATIONS}",
            listed.len()
        )));
    }
    let fail_on_errors = match filter::get_ci(&request, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n as usize),
            _ => return Err(syntax("failOnErrors must be a positive integer")),
        },
    };
    let ops = listed
        .iter()
        .enumerate()
        .map(|(i, v)| read_operation(i, v))
        .collect::<ScimResult<Vec<_>>>()?;
    let mut defined = HashSet::new();
    for op in &ops {
        if let Some(b) = &op.bulk_id
            && !defined.insert(b.clone())
        {
            return Err(syntax(format!("bulkId {b:?} is used twice")));
        }
    }

    let refs: Vec<HashSet<String>> = ops.iter().map(references).collect();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    let mut results = Vec::with_capacity(ops.len());
    let mut errors = 0usize;
    // Each round runs every operation whose references are all resolved; one that names
    // an unknown or failed bulkId fails. At most one round per operation.
    'rounds: while !pending.is_empty() {
        let mut next = Vec::new();
        let mut progress = false;
        for &i in &pending {
            if fail_on_errors.is_some_and(|n| errors >= n) {
                break 'rounds;
            }
            let op = &ops[i];
            let blocked = refs[i]
                .iter()
                .find(|b| !defined.contains(*b) || failed.contains(*b));
            let outcome = if let Some(b) = blocked {
                Err(ScimError::new(
                    StatusCode::CONFLICT,
                    Some("invalidValue"),
                    format!("bulkId {b:?} names no resource this request created"),
                ))
            } else if refs[i].iter().all(|b| ids.contains_key(b)) {
                let mut data = op.data.clone();
                resolve(&mut data, &ids);
                let path = resolve_path(&op.path, &ids);
                run(
                    &state,
                    &caller,
                    op.method,
                    &path,
                    op.version.as_deref(),
                    &data,
                )
                .await
            } else {
                next.push(i);
                continue;
            };
            progress = true;
            match outcome {
                Ok((status, resource)) => {
                    let mut r = json!({ "method": op.method.name(), "status": status.as_u16().to_string() });
                    if let Some(b) = &op.bulk_id {
                        r["bulkId"] = json!(b);
                    }
                    match &resource {
                        Some(v) => {
                            r["location"] = v["meta"]["location"].clone();
                            r["version"] = v["meta"]["version"].clone();
                            if let (Some(b), Some(id)) = (&op.bulk_id, v["id"].as_str()) {
                                ids.insert(b.clone(), id.to_owned());
                            }
                        }
                        None => {
                            r["location"] =
                                json!(format!("/scim/v2{}", resolve_path(&op.path, &ids)))
                        }
                    }
                    results.push(r);
                }
                Err(e) => {
                    errors += 1;
                    if let Some(b) = &op.bulk_id {
                        failed.insert(b.clone());
                    }
                    results.push(error_result(op, e));
                }
            }
        }
        if !progress {
            // What is left waits for itself: a circle of references.
            for &i in &next {
                if fail_on_errors.is_some_and(|n| errors >= n) {
                    break;
                }
                errors += 1;
                results.push(error_result(
                    &ops[i],
                    ScimError::new(
                        StatusCode::CONFLICT,
                        Some("invalidValue"),
                        "the operation's bulkId references form a circle",
                    ),
                ));
            }
            break;
        }
        pending = next;
    }
    Ok(scim_json(
        StatusCode::OK,
        &json!({ "schemas": [BULK_RESPONSE], "Operations": results }),
    ))
}
