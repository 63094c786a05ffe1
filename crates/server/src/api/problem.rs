//! Errors as RFC 9457 problem+json: a type, a title, the status, a detail, and for invalid
//! input the list of fields with the reason each was refused.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// A field that was refused, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the request, e.g. `pin` or `members[2].user_id`.
    pub field: String,
    pub reason: String,
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For a scheduled meeting refused with 409: each conflict found (book anyway with
    /// `ignore_conflicts: true`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<crate::scheduling::Conflict>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
    /// A scheduled meeting's conflicts, for 409 (boxed: errors stay small).
    pub conflicts: Option<Box<crate::scheduling::ConflictList>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: String) -> Self {
        ApiError {
            status,
            slug,
            title,
            detail,
            errors: Vec::new(),
            retry_after: None,
            conflicts: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            detail.into(),
        )
    }

    /// The request was well-formed but some fields were refused.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.reason))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid field",
                detail,
            )
        }
    }

    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError {
            field: field.into(),
            reason: reason.into(),
        }])
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Not authenticated",
            detail.into(),
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed",
            detail.into(),
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no such {what}"),
        )
    }

    /// Several unique fields already taken.
    pub fn taken(fields: &[&str]) -> Self {
        let errors = fields
            .iter()
            .map(|f| FieldError {
                field: (*f).into(),
                reason: format!("{f} is already taken"),
            })
            .collect::<Vec<_>>();
        let detail = errors
            .iter()
            .map(|e| e.reason.clone())
            .collect::<Vec<_>>()
            .join("; ");
        ApiError {
            errors,
            ..Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
        }
    }

    pub fn conflict(field: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        ApiError {
            errors: vec![FieldError {
                field: field.into(),
                reason: detail.clone(),
            }],
            ..Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
        }
    }

    pub fn too_many(detail: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
                detail.into(),
            )
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server could not complete the request; it has been logged".into(),
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Unavailable",
            detail.into(),
        )
    }

    /// Another node of the cluster did not answer in time.
    pub fn gateway_timeout(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "node-timeout",
            "The meeting's node did not answer",
            detail.into(),
        )
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("/problems/{}", self.slug),
            title: self.title.into(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            errors: self.errors.clone(),
            conflicts: self
                .conflicts
                .as_ref()
                .map(|c| c.0.clone())
                .unwrap_or_default(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { field } => {
                ApiError::conflict(field, format!("{field} is already taken"))
            }
            StoreError::Reference => {
                ApiError::field("id", "refers to something that does not exist")
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<conclave_store::SqlError> for ApiError {
    fn from(err: conclave_store::SqlError) -> Self {
        StoreError::from(err).into()
    }
}

impl From<crate::credentials::HashingBusy> for ApiError {
    fn from(err: crate::credentials::HashingBusy) -> Self {
        ApiError {
            retry_after: Some(2),
            ..ApiError::unavailable(err.to_string())
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        if let Some(busy) = err.downcast_ref::<crate::credentials::HashingBusy>() {
            return (*busy).into();
        }
        ApiError::internal(format!("{err:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
