//! A shutdown signal that any number of tasks can wait for: the gRPC server, the
//! registration retries and the heartbeat loop all stop on the one future `run` was given.

use std::future::Future;

use tokio::sync::watch;

/// A cloneable handle on the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    /// A handle that fires once `signal` completes.
    pub fn new(signal: impl Future<Output = ()> + Send + 'static) -> Shutdown {
        let (tx, requested) = watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Shutdown { requested }
    }

    /// Waits until shutdown is requested. Also returns if the signal's task is gone (the
    /// runtime is shutting down), which is a shutdown too.
    pub async fn wait(&mut self) {
        let _ = self.requested.wait_for(|&requested| requested).await;
    }
}
