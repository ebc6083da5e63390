//! Times every gRPC call the master answers and counts it in [`MasterMetrics`]: by method
//! (`Namespace/Lookup`, from the request's path), and by the code of its `grpc-status` when
//! that is not 0.
//!
//! A tower layer on the server ([`MetricsLayer`]), so that no handler needs to know. tonic
//! sends an error as a trailers-only reply, with the status in the response headers, which is
//! where the layer looks; a reply whose status comes later, in the trailers of a stream (the
//! master's services are unary but for openraft's), counts as answered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::Code;

use crate::metrics::MasterMetrics;

/// Records every call in the master's metrics, if it has any to record into.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Option<Arc<MasterMetrics>>,
}

impl MetricsLayer {
    /// A layer counting calls in `metrics`; with `None`, calls pass through untouched.
    pub fn new(metrics: Option<Arc<MasterMetrics>>) -> MetricsLayer {
        MetricsLayer { metrics }
    }
}

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`MetricsLayer`] wraps.
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Option<Arc<MasterMetrics>>,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for MetricsService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = self.metrics.as_ref().map(|metrics| Call {
            metrics: Arc::clone(metrics),
            method: method_of(request.uri().path()),
            started: Instant::now(),
        });
        Timed {
            inner: self.inner.call(request),
            call,
        }
    }
}

/// A call being timed: recorded once, when its reply (or failure) is ready.
struct Call {
    metrics: Arc<MasterMetrics>,
    method: String,
    started: Instant,
}

pin_project_lite::pin_project! {
    /// The future of a call through [`MetricsService`].
    pub struct Timed<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, R, E> Future for Timed<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        if let Some(call) = this.call.take() {
            let code = output.as_ref().map_or(Code::Unknown, answered_code);
            call.metrics
                .record_call(&call.method, call.started.elapsed(), code);
        }
        Poll::Ready(output)
    }
}

/// The code a reply's headers give: `Ok` without a `grpc-status` (it comes in the trailers
/// of a successful reply).
fn answered_code<R>(response: &http::Response<R>) -> Code {
    response
        .headers()
        .get("grpc-status")
        .map_or(Code::Ok, |status| Code::from_bytes(status.as_bytes()))
}

/// `Service/Method` of a gRPC path (`/dfs.Namespace/Lookup` → `Namespace/Lookup`): the
/// service without its package.
fn method_of(path: &str) -> String {
    let path = path.trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let service = service.rsplit('.').next().unwrap_or(service);
    format!("{service}/{method}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;
    use tower_layer::Layer;
    use tower_service::Service;

    #[test]
    fn the_method_is_the_service_without_its_package_and_the_method() {
        assert_eq!(method_of("/dfs.Namespace/Lookup"), "Namespace/Lookup");
        assert_eq!(method_of("/Files/Open"), "Files/Open");
    }

    /// A service answering every call with `status` in the headers (`None`: no status).
    fn answering(
        status: Option<&'static str>,
    ) -> impl tower_service::Service<
        http::Request<()>,
        Response = http::Response<()>,
        Error = std::convert::Infallible,
        Future = std::future::Ready<Result<http::Response<()>, std::convert::Infallible>>,
    > + Clone {
        tower_service_fn(move || {
            let mut response = http::Response::new(());
            if let Some(status) = status {
                response
                    .headers_mut()
                    .insert("grpc-status", http::HeaderValue::from_static(status));
            }
            response
        })
    }

    /// A service answering each call with `make()`.
    fn tower_service_fn<F>(make: F) -> FnService<F>
    where
        F: Fn() -> http::Response<()> + Clone,
    {
        FnService(make)
    }

    #[derive(Clone)]
    struct FnService<F>(F);

    impl<F> tower_service::Service<http::Request<()>> for FnService<F>
    where
        F: Fn() -> http::Response<()> + Clone,
    {
        type Response = http::Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<http::Response<()>, std::convert::Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::ready(Ok((self.0)()))
        }
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    #[tokio::test]
    async fn every_call_is_counted_by_method_and_a_non_zero_status_by_its_code() {
        let mut registry = Registry::default();
        let metrics = Arc::new(MasterMetrics::new(&mut registry));
        let layer = MetricsLayer::new(Some(Arc::clone(&metrics)));
        let mut plain = layer.layer(answering(None));
        let mut zero = layer.layer(answering(Some("0")));
        let mut not_found = layer.layer(answering(Some("5")));
        let mut unavailable = layer.layer(answering(Some("14")));

        plain.call(request("/dfs.Namespace/Lookup")).await.unwrap();
        zero.call(request("/dfs.Namespace/Lookup")).await.unwrap();
        not_found
            .call(request("/dfs.Namespace/Lookup"))
            .await
            .unwrap();
        plain.call(request("/dfs.Files/Open")).await.unwrap();
        unavailable.call(request("/dfs.Files/Open")).await.unwrap();

        let totals = metrics.totals();
        assert_eq!(
            (totals.calls, totals.errors),
            (5, 1),
            "only Unavailable is a failure"
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(r#"dfs_master_rpc_calls_total{method="Namespace/Lookup"} 3"#));
        assert!(text.contains(
            r#"dfs_master_rpc_errors_total{method="Namespace/Lookup",code="NotFound"} 1"#
        ));
        assert!(text.contains(r#"dfs_master_rpc_calls_total{method="Files/Open"} 2"#));
        assert!(
            text.contains(
                r#"dfs_master_rpc_errors_total{method="Files/Open",code="Unavailable"} 1"#
            )
        );
    }

    #[tokio::test]
    async fn without_metrics_calls_pass_through_uncounted() {
        let mut plain = MetricsLayer::new(None).layer(answering(Some("5")));
        let reply = plain.call(request("/dfs.Namespace/Lookup")).await.unwrap();
        assert_eq!(reply.headers()["grpc-status"], "5");
    }
}
