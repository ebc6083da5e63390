//! gRPC transport settings shared by the data service and the chunkserver's own clients
//! (towards the master and towards the next chunkserver of a write chain), and the pool of
//! connections to other chunkservers.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use dfs_proto::FsError;
use dfs_proto::pb::chunkserver_client::ChunkserverClient;
use dfs_proto::tls::Tls;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

/// Largest gRPC message sent or accepted. Data messages are at most a few MiB; the default
/// 4 MiB limit of tonic would reject a client that sends 4 MiB pieces plus framing.
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// HTTP/2 flow-control window of one stream: how much data a sender may have in flight
/// before the receiver reads it. The 64 KiB default caps a stream at one window per round
/// trip, far below disk speed on anything but loopback.
pub const STREAM_WINDOW: u32 = 8 << 20;

/// HTTP/2 flow-control window of a whole connection, shared by its streams.
pub const CONNECTION_WINDOW: u32 = 32 << 20;

/// An endpoint for `addr` (`host:port` or a URI) with the connect timeout and window sizes
/// every chunkserver client uses, over mutual TLS with `tls` (if any). No overall request
/// timeout: write streams last as long as their data, and the chain bounds each step instead.
pub fn endpoint(
    addr: &str,
    connect_timeout: Duration,
    tls: Option<&Tls>,
) -> Result<Endpoint, tonic::transport::Error> {
    Ok(dfs_proto::tls::endpoint(addr, tls)?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW))
}

/// Lazily opened, reused connections to other chunkservers. A channel reconnects by itself
/// after its server restarts, so entries never need replacing.
#[derive(Debug)]
pub struct Peers {
    connect_timeout: Duration,
    /// Keyed by address as the write header names it. A std mutex: held only to look up or
    /// insert, never across an await.
    channels: Mutex<HashMap<String, Channel>>,
    /// The certificates of mutual TLS with the other chunkservers, if it is on.
    tls: Option<Tls>,
}

impl Peers {
    /// A pool whose connections give up connecting after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Peers {
        Peers {
            connect_timeout,
            channels: Mutex::default(),
            tls: None,
        }
    }

    /// This pool, speaking mutual TLS with `tls` (if any) to the other chunkservers.
    pub fn with_tls(mut self, tls: Option<Tls>) -> Peers {
        self.tls = tls;
        self
    }

    /// A client of the chunkserver at `addr`. Connecting happens on first use; a server that
    /// is down fails that call within the connect timeout.
    pub fn client(&self, addr: &str) -> Result<ChunkserverClient<Channel>> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let channel = match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = endpoint(addr, self.connect_timeout, self.tls.as_ref())
                    .map_err(|e| Error::Downstream {
                        addr: addr.to_string(),
                        cause: FsError::Invalid(format!("bad chunkserver address: {e}")),
                    })?
                    .connect_lazy();
                channels.insert(addr.to_string(), channel.clone());
                channel
            }
        };
        Ok(ChunkserverClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE))
    }
}
