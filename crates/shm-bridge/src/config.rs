//! zenoh's own configuration, passed through, with loopback defaults for tests and
//! examples.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use crate::BridgeError;

/// A zenoh configuration for a bridge session: zenoh's [`zenoh::Config`] with a few
/// builder methods for what bridge users set most (listen and connect endpoints, mode,
/// scouting, lease). Anything else is set on the zenoh config itself
/// ([`as_zenoh_mut`](Config::as_zenoh_mut), [`from_zenoh`](Config::from_zenoh), or a
/// JSON5 file through [`zenoh::Config::from_file`]).
///
/// ```
/// use shm_bridge::Config;
/// use std::time::Duration;
/// let config = Config::loopback_peer()
///     .listen("tcp/127.0.0.1:0")?
///     .connect("tcp/127.0.0.1:7447")?
///     .mode("peer")?
///     .lease(Duration::from_secs(3))?;
/// let connect = config.as_zenoh().get_json("connect/endpoints").map_err(|e| e.to_string())?;
/// assert!(connect.contains("7447"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    inner: zenoh::Config,
}

impl Config {
    /// zenoh's defaults (peer mode, multicast scouting on), unchanged.
    pub fn from_zenoh(inner: zenoh::Config) -> Config {
        Config { inner }
    }

    /// A peer that finds nobody by itself: multicast scouting off, no listen and no connect
    /// endpoint yet — add them with [`listen`](Config::listen) and
    /// [`connect`](Config::connect). What tests and examples on one host use.
    pub fn loopback_peer() -> Config {
        let mut config = Config::from_zenoh(zenoh::Config::default());
        config.set("mode", "\"peer\"");
        config.set("scouting/multicast/enabled", "false");
        config.set("listen/endpoints", "[]");
        config.set("connect/endpoints", "[]");
        config
    }

    /// zenoh settings for streams that keep the link busy, with which the bridge's
    /// throughput is measured (`examples/bridge.rs`, shm-bench's `zenoh-bridge`; figures in
    /// `docs/benchmarks.md`): a data queue of [`THROUGHPUT_QUEUE_BATCHES`] batches instead
    /// of zenoh's 2 (`transport/link/tx/queue/size/data`: up to 1 MiB in flight per link
    /// before a put waits), and TCP socket buffers of [`THROUGHPUT_SOCKET_BUFFER`] bytes
    /// (`transport/link/tcp/so_sndbuf`, `so_rcvbuf`), so that the exporter, zenoh's
    /// threads and the importer are woken less often per megabyte. Back-pressure still
    /// holds: a stalled importer stops the exporter once these buffers are full.
    ///
    /// The kernel caps socket buffers at `net.core.wmem_max` / `rmem_max`, and a fixed
    /// size turns off its autotuning: on a host whose maxima are small (212,992 bytes on
    /// many distributions) the buffers end up smaller than autotuning would make them —
    /// measure there before adopting it.
    ///
    /// ```
    /// use shm_bridge::Config;
    /// let config = Config::loopback_peer().tuned_for_throughput();
    /// let queue = config.as_zenoh().get_json("transport/link/tx/queue/size/data").map_err(|e| e.to_string())?;
    /// assert_eq!(queue, shm_bridge::THROUGHPUT_QUEUE_BATCHES.to_string());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tuned_for_throughput(mut self) -> Config {
        let batches = THROUGHPUT_QUEUE_BATCHES.to_string();
        let buffer = THROUGHPUT_SOCKET_BUFFER.to_string();
        self.set("transport/link/tx/queue/size/data", &batches);
        self.set("transport/link/tcp/so_sndbuf", &buffer);
        self.set("transport/link/tcp/so_rcvbuf", &buffer);
        self
    }

    /// Sets a key of the zenoh config to a JSON5 value this crate wrote itself (so it
    /// cannot fail on a correct build).
    fn set(&mut self, key: &str, value: &str) {
        if let Err(error) = self.inner.insert_json5(key, value) {
            unreachable!("zenoh refused the bridge's own setting {key}={value}: {error}");
        }
    }

    /// Sets any zenoh config key to a JSON5 value (zenoh's `insert_json5`).
    pub fn insert_json5(mut self, key: &str, value: &str) -> Result<Config, BridgeError> {
        self.inner
            .insert_json5(key, value)
            .map_err(BridgeError::zenoh)?;
        Ok(self)
    }

    /// Adds an endpoint to listen on, e.g. `"tcp/127.0.0.1:7447"`.
    pub fn listen(self, endpoint: &str) -> Result<Config, BridgeError> {
        self.add_endpoint("listen/endpoints", endpoint)
    }

    /// Adds an endpoint to connect to, e.g. `"tcp/192.168.1.7:7447"`. A peer keeps
    /// retrying an endpoint it cannot reach, and reconnects when the link is lost (zenoh's
    /// `connect/retry`: every 1 s at first, backing off to 4 s).
    pub fn connect(self, endpoint: &str) -> Result<Config, BridgeError> {
        self.add_endpoint("connect/endpoints", endpoint)
    }

    fn add_endpoint(self, key: &str, endpoint: &str) -> Result<Config, BridgeError> {
        let current = self.inner.get_json(key).map_err(BridgeError::zenoh)?;
        let mut list: Vec<String> = serde_json::from_str(&current).unwrap_or_default();
        list.push(endpoint.to_string());
        let value = serde_json::to_string(&list).map_err(BridgeError::zenoh)?;
        self.insert_json5(key, &value)
    }

    /// `"peer"` (the default: no router needed), `"client"` (through a router) or
    /// `"router"`.
    pub fn mode(self, mode: &str) -> Result<Config, BridgeError> {
        let value = serde_json::to_string(mode).map_err(BridgeError::zenoh)?;
        self.insert_json5("mode", &value)
    }

    /// zenoh's link lease (`transport/link/tx/lease`, 10 s by default): a link that
    /// carries nothing, not even a keep-alive, for this long is closed. It bounds how long
    /// an importer takes to see an exporter whose host or network vanished (a process that
    /// dies on a live host is seen at once: its kernel closes the TCP connection).
    pub fn lease(self, lease: Duration) -> Result<Config, BridgeError> {
        let millis = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        self.insert_json5("transport/link/tx/lease", &millis.to_string())
    }

    /// The zenoh configuration.
    pub fn as_zenoh(&self) -> &zenoh::Config {
        &self.inner
    }

    /// The zenoh configuration, to change anything else.
    pub fn as_zenoh_mut(&mut self) -> &mut zenoh::Config {
        &mut self.inner
    }

    /// The zenoh configuration, by value.
    pub fn into_zenoh(self) -> zenoh::Config {
        self.inner
    }

    /// Opens a zenoh session with this configuration (zenoh starts its own runtime
    /// threads; the session is shared by every exporter and importer made from it).
    pub fn open(self) -> Result<zenoh::Session, BridgeError> {
        use zenoh::Wait;
        zenoh::open(self.inner).wait().map_err(BridgeError::zenoh)
    }
}

/// The data queue of [`Config::tuned_for_throughput`], in zenoh batches (of up to 65,535
/// bytes): 16, zenoh's largest (`QueueSizeConf::MAX`); its default is 2. Measured on the
/// 2-core VM against the default (docs/benchmarks.md, 2026-12-07).
pub const THROUGHPUT_QUEUE_BATCHES: usize = 16;

/// The TCP socket buffers of [`Config::tuned_for_throughput`], in bytes: 4 MiB, the
/// kernel's default ceiling for send-buffer autotuning (`net.ipv4.tcp_wmem`), so a full
/// zenoh queue (16 batches) fits in it several times over.
pub const THROUGHPUT_SOCKET_BUFFER: u32 = 4 << 20;

impl Default for Config {
    /// [`Config::loopback_peer`].
    fn default() -> Config {
        Config::loopback_peer()
    }
}

/// A TCP endpoint on 127.0.0.1 on a port that was free a moment ago (bound to port 0, read
/// back, released), for tests and examples. Another process may take the port before
/// zenoh binds it; fine on a test machine, not a way to run a service.
///
/// ```
/// let endpoint = shm_bridge::free_loopback_endpoint()?;
/// assert!(endpoint.starts_with("tcp/127.0.0.1:"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn free_loopback_endpoint() -> std::io::Result<String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    Ok(format!("tcp/127.0.0.1:{port}"))
}
