use crate::db::DbError;
use crate::sfu::SfuError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Refused requests logged per minute: a stranger repeating one (a login
/// spray, an offer flood) gets the first lines, not 100 MB of log an hour.
static REFUSALS: crate::logs::Budget = crate::logs::Budget::new(120);

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
}

impl ErrorBody {
    pub fn json(message: impl Into<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: message.into(),
        })
    }
}

/// Every error a client can see, with its status. Database and internal
/// failures are logged here and answered without their details.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// 421: a request for what another server of the site does.
    #[error("{0}")]
    Misdirected(String),
    /// 405, with the JSON body every other error has.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 412: an `If-Match` that names another entity.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 422: a well-formed request this resource does not support.
    #[error("{0}")]
    Unprocessable(String),
    /// The reason, and seconds until a retry may succeed.
    #[error("{0}")]
    TooManyRequests(String, u64),
    /// 503 with Retry-After: the server is saturated, not the client over
    /// a limit of its own.
    #[error("{0}")]
    Busy(String, u64),
    /// Our bug: logged, and answered 500 without its details.
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Sfu(#[from] SfuError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            ApiError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m.clone()),
            ApiError::PayloadTooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m.clone()),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m.clone()),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.clone()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            ApiError::Misdirected(m) => (StatusCode::MISDIRECTED_REQUEST, m.clone()),
            ApiError::MethodNotAllowed(m) => (StatusCode::METHOD_NOT_ALLOWED, m.clone()),
            ApiError::PreconditionFailed(m) => (StatusCode::PRECONDITION_FAILED, m.clone()),
            ApiError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
            ApiError::TooManyRequests(m, retry_after) => {
                crate::log_limited!(REFUSALS, tracing::Level::INFO, status = 429, "refused: {m}");
                let body = ErrorBody::json(m.clone());
                let retry = [(axum::http::header::RETRY_AFTER, retry_after.to_string())];
                return (StatusCode::TOO_MANY_REQUESTS, retry, body).into_response();
            }
            ApiError::Busy(m, retry_after) => {
                crate::log_limited!(REFUSALS, tracing::Level::INFO, status = 503, "refused: {m}");
                let body = ErrorBody::json(m.clone());
                let retry = [(axum::http::header::RETRY_AFTER, retry_after.to_string())];
                return (StatusCode::SERVICE_UNAVAILABLE, retry, body).into_response();
            }
            // A server that is gone, a pool with no free connection, a
            // broken socket: the database is unavailable, not our bug.
            ApiError::Db(DbError::Query(
                e @ (sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)),
            )) => {
                tracing::error!("database unavailable: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable".into(),
                )
            }
            ApiError::Db(DbError::Unavailable(e)) => {
                tracing::error!("database unavailable: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database unavailable".into(),
                )
            }
            ApiError::Db(DbError::Conflict(m)) => {
                (StatusCode::CONFLICT, format!("{m} already exists"))
            }
            ApiError::Db(DbError::Invalid(m)) => (StatusCode::BAD_REQUEST, format!("invalid {m}")),
            ApiError::Db(e) => {
                tracing::error!("database error: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
            ApiError::Sfu(SfuError::BadOffer(m)) => {
                (StatusCode::BAD_REQUEST, format!("bad offer: {m}"))
            }
            ApiError::Sfu(SfuError::NoCommonCodec(m)) => (StatusCode::NOT_ACCEPTABLE, m.clone()),
            ApiError::Sfu(SfuError::NotFound) => (StatusCode::NOT_FOUND, "no such session".into()),
            ApiError::Sfu(SfuError::Busy) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server is at its viewer limit".into(),
            ),
            ApiError::Sfu(SfuError::Limit(m)) => (StatusCode::TOO_MANY_REQUESTS, m.clone()),
            ApiError::Sfu(SfuError::ShuttingDown) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server is shutting down".into(),
            ),
            ApiError::Internal(m) => {
                tracing::error!("internal error: {m}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
            ApiError::Sfu(SfuError::Internal(m)) => {
                tracing::error!("WebRTC error: {m}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        };
        if status.is_client_error() {
            crate::log_limited!(
                REFUSALS,
                tracing::Level::INFO,
                status = status.as_u16(),
                "refused: {message}"
            );
        }
        let body = ErrorBody::json(message);
        // Clients and proxies back off by Retry-After; every refusal that
        // may pass later says when to try (the variants above that know
        // better set their own).
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            let retry = [(
                axum::http::header::RETRY_AFTER,
                DEFAULT_RETRY_AFTER_SECS.to_string(),
            )];
            return (status, retry, body).into_response();
        }
        (status, body).into_response()
    }
}

/// Retry-After for a 503 or 429 whose cause has no better estimate: a full
/// server, a database that is away, a hashing queue that is full.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 5;
