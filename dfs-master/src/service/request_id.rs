//! The request id of the call being served, so that a mutation retried after a failover is
//! applied once.
//!
//! A client names each call with an id of its own (metadata [`REQUEST_ID`], the same on every
//! retry of the call). A tower layer on the server ([`RequestIdLayer`]) makes it available
//! to the handler's task ([`current`]); [`Calls::write_once`](crate::service::Calls::write_once)
//! records it in the same command as the mutation, and answers a retry from the state instead
//! of applying the mutation again (a create retried after a leader change does not fail with
//! EEXIST, a rename is not applied twice; see [`Writer::once`](crate::store::Writer::once)).

use std::task::{Context, Poll};

use tokio::task::futures::TaskLocalFuture;

pub use dfs_proto::masters::REQUEST_ID;

/// Longest request id taken; a longer one is ignored (the call is then not deduplicated).
const MAX_LEN: usize = 64;

tokio::task_local! {
    static CURRENT: Option<Vec<u8>>;
}

/// The request id of the call this task serves, if its client named it.
pub fn current() -> Option<Vec<u8>> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// Serves every call with its request id in [`current`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> tower_layer::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> RequestIdService<S> {
        RequestIdService { inner }
    }
}

/// The service [`RequestIdLayer`] wraps.
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B> tower_service::Service<http::Request<B>> for RequestIdService<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Option<Vec<u8>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(REQUEST_ID)
            .map(|value| value.as_bytes().to_vec())
            .filter(|id| !id.is_empty() && id.len() <= MAX_LEN);
        CURRENT.scope(id, self.inner.call(request))
    }
}
