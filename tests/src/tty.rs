//! A program run on a pseudo-terminal, as a user's shell runs it: `kubectl exec -it` and
//! `navctl exec -t` check that their stdin is a terminal, put it in raw mode, and follow its
//! size through SIGWINCH. The test types into the terminal, reads what the program writes,
//! and resizes it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A child on the slave side of a pseudo-terminal that is its controlling terminal.
pub struct Terminal {
    child: Child,
    master: File,
    out: Arc<Mutex<Vec<u8>>>,
}

fn winsize(rows: u16, cols: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Terminal {
    /// Runs `cmd` on a new terminal of `rows` x `cols`, the terminal its stdin, stdout,
    /// stderr and controlling terminal.
    #[allow(unsafe_code)]
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Result<Terminal> {
        let size = winsize(rows, cols);
        let pty = nix::pty::openpty(Some(&size), None).context("openpty")?;
        for fd in [&pty.master, &pty.slave] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .context("close-on-exec")?;
        }
        let slave: OwnedFd = pty.slave;
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        // SAFETY: between fork and exec the child calls only setsid(2) and ioctl(2), both
        // async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("spawn on the terminal")?;
        drop(cmd);
        let master = File::from(pty.master);
        let out = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone()?, out.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // EIO once the child and its terminal are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Ok(Terminal { child, master, out })
    }

    /// Types `keys`.
    pub fn type_keys(&mut self, keys: &str) -> Result<()> {
        self.master.write_all(keys.as_bytes())?;
        Ok(())
    }

    /// Resizes the terminal: its foreground program gets SIGWINCH.
    #[allow(unsafe_code)]
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        let size = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads one winsize from a pointer that outlives the call.
        if unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
            bail!("TIOCSWINSZ: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Everything written to the terminal so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `want`.
    pub async fn wait_output(&self, want: &str, timeout: Duration) -> Result<()> {
        crate::wait_for(timeout, &format!("{want:?} on the terminal"), || async {
            self.output().contains(want).then_some(())
        })
        .await
        .with_context(|| format!("the terminal shows {:?}", self.output()))
    }

    /// Types `keys` until the terminal shows `want` (a program that reacts in its own time,
    /// such as a resize crossing the cluster).
    pub async fn ask_until(&mut self, keys: &str, want: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.type_keys(keys)?;
            if self
                .wait_output(want, Duration::from_millis(700))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("no {want:?} after typing {keys:?}: {:?}", self.output());
            }
        }
    }

    /// Waits for the program to exit; its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<i32> {
        let status = crate::wait_for(timeout, "the program on the terminal to exit", || {
            let s = self.child.try_wait();
            async move { s.ok().flatten() }
        })
        .await
        .with_context(|| format!("the terminal shows {:?}", self.output()))?;
        status.code().context("killed by a signal")
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
