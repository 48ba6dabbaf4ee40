//! Whether a kubelet can be on this node at all, without sending a packet: a TCP socket in
//! LISTEN state on one of its ports, in this network namespace. A node without one is
//! plainly not a Kubernetes node (or its kubelet is down), and connecting would only fail.
//! The kernel is asked for listening sockets only (sock_diag); `/proc/net/tcp` and `tcp6`,
//! which list every connection of the namespace, are read only where that cannot be asked.

use std::path::{Path, PathBuf};

/// Where the listening sockets are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The kernel's socket diagnostics for this network namespace, else the tables under
    /// `/proc/net` when the kernel cannot be asked.
    Kernel,
    /// The `tcp` and `tcp6` tables under this directory (a procfs tree).
    Tables(PathBuf),
    /// Not looked up: the kubelet is always requested.
    Unknown,
}

impl Presence {
    /// Whether any of `ports` has a listening TCP socket; an error when that cannot be told
    /// (the caller then should request anyway).
    pub fn listening(&self, ports: &[u16]) -> Result<bool, String> {
        match self {
            Presence::Kernel => match huatuo_sources::netlink::sock_diag::tcp_listening_ports() {
                Ok(listening) => Ok(ports.iter().any(|port| listening.contains(port))),
                Err(e) => {
                    log::debug!("sock_diag: {e}; reading /proc/net/tcp instead");
                    listening(Path::new("/proc/net"), ports)
                }
            },
            Presence::Tables(proc_net) => listening(proc_net, ports),
            Presence::Unknown => Err("not looked up".to_string()),
        }
    }
}

/// The `st` column of a listening socket (`TCP_LISTEN`).
const LISTEN: &str = "0A";

/// The local port of a `/proc/net/tcp` line whose socket listens.
fn listening_port(line: &str) -> Option<u16> {
    let mut columns = line.split_whitespace();
    let local = columns.nth(1)?;
    let state = columns.nth(1)?;
    if state != LISTEN {
        return None;
    }
    let (_, port) = local.rsplit_once(':')?;
    u16::from_str_radix(port, 16).ok()
}

/// Whether any of `ports` has a listening TCP socket in `<proc_net>/tcp` or `tcp6`. An
/// error when neither file can be read (the caller then cannot tell, and should probe).
fn listening(proc_net: &Path, ports: &[u16]) -> Result<bool, String> {
    let mut readable = false;
    let mut last_error = String::new();
    for file in ["tcp", "tcp6"] {
        let path = proc_net.join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                readable = true;
                if text
                    .lines()
                    .skip(1)
                    .filter_map(listening_port)
                    .any(|port| ports.contains(&port))
                {
                    return Ok(true);
                }
            }
            Err(e) => last_error = format!("{}: {e}", path.display()),
        }
    }
    if readable {
        Ok(false)
    } else {
        Err(last_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2817 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:D2F0 0100007F:282F 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn finds_listeners_only() {
        assert_eq!(listening_port(TCP.lines().nth(1).unwrap()), Some(10263));
        // an established connection whose remote port is 10287 listens on nothing
        assert_eq!(listening_port(TCP.lines().nth(2).unwrap()), None);
        assert_eq!(listening_port("garbage"), None);
    }

    #[test]
    fn reads_tcp_and_tcp6_of_a_tree() {
        let dir = std::env::temp_dir().join(format!("huatuo-presence-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tcp"), TCP).unwrap();
        assert_eq!(listening(&dir, &[10263]), Ok(true));
        assert_eq!(listening(&dir, &[10255, 10250]), Ok(false));
        assert_eq!(listening(&dir, &[53808]), Ok(false));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(listening(&dir, &[10255]).is_err());
    }

    #[test]
    fn the_kernel_lists_listeners_of_both_families_and_no_connection() {
        use std::net::{TcpListener, TcpStream};
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let v4_port = v4.local_addr().expect("addr").port();
        let client = TcpStream::connect(("127.0.0.1", v4_port)).expect("connect");
        let (server, _) = v4.accept().expect("accept");
        let ephemeral = client.local_addr().expect("addr").port();
        let v6 = TcpListener::bind("[::1]:0").ok();
        let ports = huatuo_sources::netlink::sock_diag::tcp_listening_ports().expect("sock_diag");
        assert!(ports.contains(&v4_port), "{v4_port} not in {ports:?}");
        assert!(
            !ports.contains(&ephemeral),
            "a connection's port {ephemeral} listed"
        );
        if let Some(v6) = &v6 {
            let v6_port = v6.local_addr().expect("addr").port();
            assert!(ports.contains(&v6_port), "{v6_port} not in {ports:?}");
        }
        // the kernel and the tables agree on this listener
        let tables = Presence::Tables(PathBuf::from("/proc/net"));
        assert_eq!(Presence::Kernel.listening(&[v4_port]), Ok(true));
        assert_eq!(tables.listening(&[v4_port]), Ok(true));
        drop((client, server, v4));
        assert_eq!(Presence::Kernel.listening(&[v4_port]), Ok(false));
        assert!(Presence::Unknown.listening(&[v4_port]).is_err());
    }
}
