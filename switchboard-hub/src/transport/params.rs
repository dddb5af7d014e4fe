//! Path and query parsing with JSON errors (axum's own rejections answer in plain text).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::Query;
use http::Uri;

use super::error::ApiError;
use crate::core::{ChannelName, Cursor};

/// The query string of a request, decoded.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn from_uri(uri: &Uri) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::try_from_uri(uri)
            .map(|Query(map)| Self(map))
            .map_err(|e| ApiError::BadParam {
                name: "query string",
                message: e.body_text(),
            })
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn cursor(&self, key: &'static str) -> Result<Option<Cursor>, ApiError> {
        self.get(key)
            .map(|v| v.parse().map_err(ApiError::BadCursor))
            .transpose()
    }

    pub(crate) fn count(&self, key: &'static str) -> Result<Option<usize>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<usize>().map_err(|_| ApiError::BadParam {
                    name: key,
                    message: "expected a non-negative integer".into(),
                })
            })
            .transpose()
    }

    pub(crate) fn seconds(&self, key: &'static str) -> Result<Option<Duration>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| ApiError::BadParam {
                        name: key,
                        message: "expected a non-negative number of seconds".into(),
                    })
            })
            .transpose()
    }
}

/// A yes/no query parameter: absent, `0` or `false` is no; `1` or `true` is yes.
pub(crate) fn flag(query: &Params, key: &'static str) -> Result<bool, ApiError> {
    match query.get(key) {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(_) => Err(ApiError::BadParam {
            name: key,
            message: "expected 1 or 0".into(),
        }),
    }
}

/// Parses a `{channel}` path segment.
pub(crate) fn channel(segment: &str) -> Result<ChannelName, ApiError> {
    Ok(ChannelName::new(segment)?)
}
