//! burn-influence through Burn 0.21's [remote backend](burn::backend::RemoteBackend): the
//! tensors live on a backend served by another process or machine (`influence-server`, or
//! any server started with `burn::server::start_websocket`), and autodiff runs on top of it
//! here, so the attribution's passes execute on the server.
//!
//! ```text
//! # on the GPU machine (or another process here)
//! cargo run --release -p influence-remote --bin influence-server -- --port 3000
//! ```
//!
//! ```ignore
//! let device = influence_remote::remote_device("ws://gpu-box:3000")?;
//! let model = model.fork(&device); // or load the weights on that device
//! InternalInfluence::new(&model, "conv2")?.attribute(x.to_device(&device)).run()?;
//! ```
//!
//! Several servers are several devices: give each worker of a
//! [`DatasetAttribution`] its own (see `docs/dataset.md`).
//!
//! Re-exports everything of [`influence_core`].

pub use influence_core::*;

/// The inner (non-autodiff) backend: Burn's remote backend (`f32` on the server's backend).
pub type InnerBackend = burn::backend::RemoteBackend;

/// The autodiff backend the attribution runs on (autodiff here, the kernels on the server).
pub type Backend = burn_autodiff::Autodiff<InnerBackend>;

/// The device type: a server's address.
pub type Device = burn::backend::remote::RemoteDevice;

/// The backend's name, as the examples' `--backend` flag spells it.
pub const NAME: &str = "remote";

/// The device of the server at `address` (`ws://host:port`; Burn 0.21's client speaks plain
/// WebSocket only), after checking that the address is well formed and that the server
/// accepts a connection within five seconds. (Burn's client panics on its own thread, and the caller then waits forever,
/// when the server cannot be reached; this check turns that into an error.)
///
/// # Errors
/// [`InfluenceError::RemoteUnreachable`] for a malformed address or a server that does not
/// answer.
pub fn remote_device(address: &str) -> Result<Device, InfluenceError> {
    use std::net::ToSocketAddrs;
    let fail = |message: String| InfluenceError::RemoteUnreachable {
        address: address.to_string(),
        message,
    };
    let rest = address.strip_prefix("ws://").ok_or_else(|| {
        fail("the address must start with ws:// (Burn 0.21's remote client has no TLS)".into())
    })?;
    let host_port = rest.split('/').next().unwrap_or_default();
    let sockets: Vec<_> = host_port
        .to_socket_addrs()
        .map_err(|e| fail(format!("{host_port:?} is not a host:port ({e})")))?
        .collect();
    if sockets.is_empty() {
        return Err(fail(format!("{host_port:?} resolves to no address")));
    }
    let mut last = String::new();
    for socket in &sockets {
        match std::net::TcpStream::connect_timeout(socket, std::time::Duration::from_secs(5)) {
            Ok(_) => return Ok(Device::new(address)),
            Err(e) => last = format!("{socket}: {e}"),
        }
    }
    Err(fail(format!("no server answers ({last})")))
}

/// The default device: the server in `BURN_REMOTE_ADDRESS`, else `ws://127.0.0.1:3000`.
pub fn device() -> Device {
    Device::default()
}

/// Serves Burn's flex CPU backend on `port` (all interfaces) until the process ends: what
/// `influence-server` runs. Blocks the calling thread.
#[cfg(feature = "server")]
pub fn serve(port: u16) {
    burn::server::start_websocket::<burn_flex::Flex>(Default::default(), port);
}
