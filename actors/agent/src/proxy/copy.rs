//! Copying a proxied TCP connection both ways: with the kernel's `splice(2)` through a pipe
//! (the bytes never enter the proxy's memory), or with a plain userspace copy (tokio's
//! `copy_bidirectional`). Either way each direction ends with a write shutdown of the other
//! side once its source reads end of stream, and an error on either ends both.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{splice, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// How a connection's bytes are copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CopyMode {
    /// `splice(2)` socket → pipe → socket.
    #[default]
    Splice,
    /// Read into a buffer, write from it.
    Userspace,
}

impl std::str::FromStr for CopyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "splice" => Ok(CopyMode::Splice),
            "userspace" => Ok(CopyMode::Userspace),
            _ => Err(format!("{s:?} is not a copy mode (splice or userspace)")),
        }
    }
}

/// Copies `a` ↔ `b` until both directions ended (or either failed).
pub async fn both_ways(mut a: TcpStream, mut b: TcpStream, mode: CopyMode) -> io::Result<()> {
    match mode {
        CopyMode::Userspace => tokio::io::copy_bidirectional(&mut a, &mut b)
            .await
            .map(drop),
        CopyMode::Splice => {
            tokio::try_join!(splice_one(&a, &b), splice_one(&b, &a))?;
            Ok(())
        }
    }
}

/// Most bytes moved per splice (a pipe's default capacity), and the userspace copy's
/// buffer. A pipe grown to 1 MiB (`F_SETPIPE_SZ`) measured no faster in `navctl bench
/// proxy`, and would pin more kernel memory per connection.
const CHUNK: usize = 64 * 1024;

/// One direction, `src` → `dst`, through a pipe of its own.
async fn splice_one(src: &TcpStream, dst: &TcpStream) -> io::Result<()> {
    let (pipe_r, pipe_w): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    loop {
        src.readable().await?;
        let read = src.try_io(Interest::READABLE, || {
            splice(src.as_fd(), None, pipe_w.as_fd(), None, CHUNK, flags).map_err(io::Error::from)
        });
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            let _ = nix::sys::socket::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(dst),
                nix::sys::socket::Shutdown::Write,
            );
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            dst.writable().await?;
            let wrote = dst.try_io(Interest::WRITABLE, || {
                splice(pipe_r.as_fd(), None, dst.as_fd(), None, left, flags)
                    .map_err(io::Error::from)
            });
            match wrote {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A client ↔ proxy ↔ echo server chain: what is sent comes back whole, and a client's
    /// write shutdown reaches the server (which then closes).
    async fn round_trip(mode: CopyMode) {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            s.write_all(&all).await.unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        tokio::spawn(async move {
            let (c, _) = front.accept().await.unwrap();
            let up = TcpStream::connect(echo_addr).await.unwrap();
            both_ways(c, up, mode).await.unwrap();
        });
        let mut c = TcpStream::connect(front_addr).await.unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = c.split();
        let send = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let recv = r.read_to_end(&mut back);
        let (_, got) = tokio::join!(send, recv);
        got.unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "{mode:?} changed the bytes");
    }

    #[tokio::test]
    async fn splice_copies_every_byte_and_the_shutdown() {
        round_trip(CopyMode::Splice).await;
    }

    #[tokio::test]
    async fn userspace_copies_every_byte_and_the_shutdown() {
        round_trip(CopyMode::Userspace).await;
    }
}
