//! Name resolution for plugins: only the host names their manifest grants.
//!
//! A DNS query is a channel out of the sandbox (a plugin could spell data
//! into the names it looks up), so `wasi:sockets/ip-name-lookup` is ours:
//! a name not granted is refused with `access-denied` before anything is
//! resolved, and a granted name is resolved by the host (through WASI's own
//! resolver). The addresses a granted name resolves to become connectable,
//! on the grant's port, for the rest of that task run; nothing else does.
//! This module must not know about tasks or runs.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::SocketError;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::sockets::WasiSocketsCtxView;

use crate::instance::InstanceState;
use crate::manifest::NetGrant;

/// One task run's granted names and what they resolved to.
#[derive(Default)]
pub(crate) struct Names {
    /// Granted host name → the ports granted with it (`None`: any).
    granted: HashMap<String, Vec<Option<u16>>>,
    /// Open lookups (resource id) → the ports of their name.
    open: HashMap<u32, Vec<Option<u16>>>,
    /// Addresses granted names resolved to, with their ports; shared with
    /// the connect check.
    resolved: Arc<Mutex<HashSet<Resolved>>>,
}

/// An address a granted name resolved to, and a port granted with it
/// (`None`: any).
type Resolved = (IpAddr, Option<u16>);

impl Names {
    /// The host names among `grants`.
    pub(crate) fn new(grants: &[NetGrant]) -> Self {
        let mut granted: HashMap<String, Vec<Option<u16>>> = HashMap::new();
        for g in grants {
            if let Some(name) = g.name() {
                granted.entry(name.to_string()).or_default().push(g.port);
            }
        }
        Names {
            granted,
            ..Names::default()
        }
    }

    /// Whether any host name is granted (else no lookup is allowed at all).
    pub(crate) fn any(&self) -> bool {
        !self.granted.is_empty()
    }

    /// Whether `addr` is an address a granted name resolved to, on a port
    /// granted with it.
    pub(crate) fn connect_check(&self) -> impl Fn(SocketAddr) -> bool + Send + Sync + 'static {
        let resolved = self.resolved.clone();
        move |addr| {
            let resolved = resolved.lock().unwrap_or_else(|e| e.into_inner());
            resolved
                .iter()
                .any(|(ip, port)| *ip == addr.ip() && port.is_none_or(|p| p == addr.port()))
        }
    }
}

/// The lookup interface's view of an instance.
pub(crate) struct Lookup<'a> {
    sockets: WasiSocketsCtxView<'a>,
    names: &'a mut Names,
}

impl<'a> Lookup<'a> {
    pub(crate) fn new(sockets: WasiSocketsCtxView<'a>, names: &'a mut Names) -> Self {
        Lookup { sockets, names }
    }
}

/// Marks [`Lookup`] as the data of the lookup interface.
struct GuardedLookup;

impl HasData for GuardedLookup {
    type Data<'a> = Lookup<'a>;
}

/// Replace WASI's name lookup in `linker` with the guarded one.
pub(crate) fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = ip_name_lookup::add_to_linker::<InstanceState, GuardedLookup>(
        linker,
        InstanceState::lookup,
    );
    linker.allow_shadowing(false);
    added
}

impl Host for Lookup<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        let Some(ports) = self.names.granted.get(&name.to_ascii_lowercase()).cloned() else {
            return Err(ErrorCode::AccessDenied.into());
        };
        let stream = self.sockets.resolve_addresses(network, name)?;
        self.names.open.insert(stream.rep(), ports);
        Ok(stream)
    }
}

impl HostResolveAddressStream for Lookup<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let rep = stream.rep();
        let next = self.sockets.resolve_next_address(stream)?;
        if let (Some(ip), Some(ports)) = (&next, self.names.open.get(&rep)) {
            let ip = to_std(ip);
            let mut resolved = self
                .names
                .resolved
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            resolved.extend(ports.iter().map(|port| (ip, *port)));
        }
        Ok(next)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.sockets.subscribe(stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.names.open.remove(&stream.rep());
        HostResolveAddressStream::drop(&mut self.sockets, stream)
    }
}

// The lookup interface imports `network`: its functions, as WASI's.
impl network::Host for Lookup<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        self.sockets.convert_error_code(error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::io::error::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        self.sockets.network_error_code(err)
    }
}

impl network::HostNetwork for Lookup<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.sockets, this)
    }
}

fn to_std(ip: &IpAddress) -> IpAddr {
    match *ip {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::from([a, b, c, d]),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::from([a, b, c, d, e, f, g, h]),
    }
}
