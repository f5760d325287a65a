//! Test helpers shared by the live-source tests: a local websocket server
//! that plays recorded frames (honouring Jetstream's `cursor`) with faults on
//! demand, and a handle on the real binary running as a daemon.
#![allow(dead_code)]
// tungstenite's handshake callback returns `Result<Response, ErrorResponse>`
// by its own signature; the size of its error is not ours to choose.
#![allow(clippy::result_large_err)]

mod daemon;
mod fediverse;
mod jetstream;
pub mod receiver;
mod script;
mod shared;

// Each test crate uses some of the helpers, none all of them.
#[allow(unused_imports)]
pub use {daemon::*, fediverse::*, jetstream::*, script::*, shared::*};

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A one-worker runtime of its own for a stand-in server, and a listener
/// on `addr` (port 0: any free loopback port).
pub fn loopback(addr: SocketAddr) -> (tokio::runtime::Runtime, TcpListener) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(TcpListener::bind(addr))
        .expect("bind loopback");
    (runtime, listener)
}
