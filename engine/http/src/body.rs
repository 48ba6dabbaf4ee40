//! Request bodies read within a size and a time bound, with or without `Content-Length`
//! (chunked bodies are read the same way).

use crate::error::ApiError;
use futures_util::StreamExt;
use std::time::Duration;
use warp::http::StatusCode;
use warp::hyper::body::{Buf, Bytes};
use warp::Filter;

/// How much of a request body a route reads and how long it waits for it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Time the client has to send the whole body.
    pub read_timeout: Duration,
}

/// The whole body, refused with 413 `request_too_large` beyond `limits.max_bytes` (announced or
/// sent; the rest of a body up to `DRAIN_MAX` over the limit is read first, so the client gets
/// the refusal) and 408 `request_timeout` when not complete within `limits.read_timeout`.
pub fn bounded(
    limits: BodyLimits,
) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |announced: Option<u64>, stream| async move {
            if let Some(n) = announced.filter(|n| *n > limits.max_bytes as u64) {
                if n <= limits.max_bytes as u64 + DRAIN_MAX {
                    drain(std::pin::pin!(stream)).await;
                }
                return Err(warp::reject::custom(too_large(limits.max_bytes)));
            }
            tokio::time::timeout(limits.read_timeout, collect(stream, limits.max_bytes))
                .await
                .unwrap_or_else(|_| {
                    Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        format!(
                            "request body not received within {} s",
                            limits.read_timeout.as_secs()
                        ),
                    ))
                })
                .map_err(warp::reject::custom)
        })
}

/// Most bytes of a refused body read and thrown away, and the longest time spent on it: a
/// connection closed with a body still arriving is reset, and a client still sending would get
/// the reset instead of the refusal.
const DRAIN_MAX: u64 = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads and discards what is left of a refused body, within `DRAIN_MAX` and `DRAIN_TIME`.
async fn drain<S, B>(mut stream: std::pin::Pin<&mut S>)
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut seen = 0u64;
    let discard = async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.remaining() as u64;
            if seen > DRAIN_MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        format!("request body over {max} bytes"),
    )
}

async fn collect<S, B>(stream: S, max: usize) -> Result<Bytes, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("request body: {e}"),
            )
        })?;
        if body.len() + chunk.remaining() > max {
            drain(stream).await;
            return Err(too_large(max));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(body))
}
