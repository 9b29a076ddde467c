//! A loopback TCP proxy between one worker and the coordinator that can cut the line:
//! drop every connection (as a crashed router would) or black-hole the traffic (as a
//! partition would), and bring it back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Forwards both ways.
    Up,
    /// Closes every live connection and every new one at once.
    Dropped,
    /// Forwards nothing: live connections stall, new ones are accepted and left
    /// waiting; when the line comes back up, what waited goes through.
    BlackHoled,
}

/// A running proxy; stops with the test's runtime.
pub struct Proxy {
    /// Where the worker connects.
    pub addr: SocketAddr,
    line: watch::Sender<Line>,
    accepted: Arc<AtomicUsize>,
    cut: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (line, watch_line) = watch::channel(Line::Up);
        let accepted = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicUsize::new(0));
        let (n_accepted, n_cut) = (accepted.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                n_accepted.fetch_add(1, Ordering::SeqCst);
                let (line, n_cut) = (watch_line.clone(), n_cut.clone());
                tokio::spawn(async move {
                    if !relay(downstream, upstream, line).await {
                        n_cut.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        Proxy {
            addr,
            line,
            accepted,
            cut,
        }
    }

    /// Sets the line's state.
    pub fn set(&self, state: Line) {
        self.line.send_replace(state);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections the proxy closed because the line was dropped.
    pub fn cut(&self) -> usize {
        self.cut.load(Ordering::SeqCst)
    }
}

/// Carries one connection until either side closes it (true) or the line is
/// dropped (false).
async fn relay(
    mut downstream: TcpStream,
    upstream: SocketAddr,
    mut line: watch::Receiver<Line>,
) -> bool {
    if !wait_up(&mut line).await {
        return false;
    }
    let Ok(mut upstream) = TcpStream::connect(upstream).await else {
        return true; // the coordinator is down: the worker sees a closed connection
    };
    let (mut down_buf, mut up_buf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        if !wait_up(&mut line).await {
            return false;
        }
        tokio::select! {
            read = downstream.read(&mut down_buf) => match read {
                Ok(n) if n > 0 => {
                    if upstream.write_all(&down_buf[..n]).await.is_err() {
                        return true;
                    }
                }
                _ => return true,
            },
            read = upstream.read(&mut up_buf) => match read {
                Ok(n) if n > 0 => {
                    if downstream.write_all(&up_buf[..n]).await.is_err() {
                        return true;
                    }
                }
                _ => return true,
            },
            _ = line.changed() => {}
        }
    }
}

/// Waits while the line is black-holed; false once it is dropped.
async fn wait_up(line: &mut watch::Receiver<Line>) -> bool {
    loop {
        let state = *line.borrow_and_update();
        match state {
            Line::Up => return true,
            Line::Dropped => return false,
            Line::BlackHoled => {
                if line.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}
