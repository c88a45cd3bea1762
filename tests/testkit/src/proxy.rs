//! A TCP proxy that can cut the line the way a network partition does: the
//! chaos soak (tests/tests/all/soak.rs) puts it between `runtime serve` and
//! anvil, to find out what the runtime does with an RPC that stops
//! answering without refusing anything.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP proxy (e.g. between a runtime and anvil) that can cut the line: while
/// cut, it forwards nothing, and every connection that was open (or opened)
/// during the cut stays silent for good, as after a partition that dropped
/// the connection state. Nothing is closed, so a client finds out only by
/// its own timeout.
pub struct CuttableProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Bumped by every cut; a connection forwards only while the generation
    /// it was born in is current.
    generation: Arc<AtomicU64>,
    live: Arc<Mutex<HashMap<u64, [TcpStream; 2]>>>,
    dead: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl CuttableProxy {
    /// Listens on a loopback port and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the RPC proxy");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let proxy = CuttableProxy {
            addr: listener.local_addr().expect("the proxy's address"),
            cut: Arc::default(),
            generation: Arc::default(),
            live: Arc::default(),
            dead: Arc::default(),
            stop: Arc::default(),
        };
        let (cut, generation, live, dead, stop) = (
            Arc::clone(&proxy.cut),
            Arc::clone(&proxy.generation),
            Arc::clone(&proxy.live),
            Arc::clone(&proxy.dead),
            Arc::clone(&proxy.stop),
        );
        std::thread::spawn(move || {
            let mut next_id = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => {
                        // E.g. out of descriptors: no busy loop.
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                if cut.load(Ordering::SeqCst) {
                    dead.lock().unwrap().push(client);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(upstream) else {
                    // anvil is down: refuse, as anvil itself would.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                next_id += 1;
                let id = next_id;
                let born = generation.load(Ordering::SeqCst);
                let pair = (client.try_clone(), upstream.try_clone());
                let (Ok(c2), Ok(u2)) = pair else { continue };
                live.lock().unwrap().insert(id, [c2, u2]);
                for (from, to) in [
                    (client.try_clone(), upstream.try_clone()),
                    (upstream.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let (generation, live) = (Arc::clone(&generation), Arc::clone(&live));
                    std::thread::spawn(move || {
                        pump(from, to, born, &generation);
                        if generation.load(Ordering::SeqCst) == born {
                            live.lock().unwrap().remove(&id);
                        }
                    });
                }
            }
        });
        proxy
    }

    /// `http://` and the proxy's address: what a client uses instead of `upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts the line: every open connection goes silent for good.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut live = self.live.lock().unwrap();
        let mut dead = self.dead.lock().unwrap();
        for (_, pair) in live.drain() {
            dead.extend(pair);
        }
    }

    /// New connections are forwarded again (the silent ones stay silent).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Connections that went silent in cuts so far.
    pub fn silenced(&self) -> usize {
        self.dead.lock().unwrap().len()
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::SeqCst);
        for s in self.dead.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        for (_, pair) in self.live.lock().unwrap().drain() {
            for s in pair {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Copies `from` to `to` while `born` is the current generation; after a
/// cut it returns without closing anything (the sockets stay in the proxy's
/// dead list, open and silent).
fn pump(mut from: TcpStream, mut to: TcpStream, born: u64, generation: &AtomicU64) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if generation.load(Ordering::SeqCst) != born {
            return;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if generation.load(Ordering::SeqCst) != born || to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}
