//! A loopback port where a connection is refused, held for as long as the test needs it.
//!
//! Binding port 0 and dropping the listener gives a port that another test (or process) may
//! take before the connection is tried. A socket that is bound but never listens keeps the
//! port reserved, and the kernel refuses every connection to it.

use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Socket, Type};

pub struct ClosedPort {
    _socket: Socket,
    pub port: u16,
}

impl ClosedPort {
    pub fn reserve() -> Self {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
        socket
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .expect("bind a loopback port");
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("a bound socket has an address")
            .port();
        Self {
            _socket: socket,
            port,
        }
    }
}
