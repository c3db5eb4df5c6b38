//! Execs attached to their caller (`kubectl exec -i`, `-it`): stdin streamed in as it
//! comes, output streamed out as the command writes it, and with a TTY a pseudo-terminal
//! whose slave is the command's stdin, stdout and stderr and whose size follows the
//! caller's resizes. Both runtimes spawn their exec (the shim's `exec`, `runc exec`) with
//! [`stdio`]'s ends and run it with [`run`].

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag};
use nix::pty::{PtyMaster, Winsize};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::spec::{ContainerId, ExecChunk};
use crate::RuntimeError;

/// What the caller of an attached exec sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecInput {
    /// Bytes for the command's stdin.
    Stdin(Vec<u8>),
    /// The caller closed stdin: the command reads end of file (without a TTY; a terminal
    /// has no end of file to give, so with one it is ignored).
    CloseStdin,
    /// The caller's terminal size, in columns and rows (ignored without a TTY).
    Resize { width: u16, height: u16 },
}

/// The caller's side of an attached exec.
#[derive(Debug)]
pub struct ExecIo {
    /// Run the command on a pseudo-terminal: its stdout and stderr are one stream (sent as
    /// [`ExecChunk::Stdout`]).
    pub tty: bool,
    /// The caller attached stdin. Without it and without a TTY the command's stdin is
    /// `/dev/null`.
    pub stdin: bool,
    /// The caller's input. Its end is the caller gone: without a TTY the command's stdin
    /// ends; with one the terminal hangs up (the command is killed).
    pub input: mpsc::Receiver<ExecInput>,
    /// The command's output. A closed `output` drops the rest, not the command.
    pub output: mpsc::Sender<ExecChunk>,
}

/// The master side of an exec's pseudo-terminal, non-blocking under tokio.
pub(crate) struct Pty {
    master: AsyncFd<PtyMaster>,
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pty")
            .field("fd", &self.master.get_ref().as_raw_fd())
            .finish()
    }
}

nix::ioctl_write_ptr_bad!(set_winsize, nix::libc::TIOCSWINSZ, Winsize);

impl Pty {
    /// A new pseudo-terminal: its master, and its slave for the command. Both are
    /// close-on-exec from the start, so no other child the agent spawns meanwhile holds the
    /// slave open (which would keep the master from seeing the command's end).
    pub(crate) fn open() -> Result<(Pty, OwnedFd), RuntimeError> {
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .map_err(RuntimeError::sys("posix_openpt"))?;
        nix::pty::grantpt(&master).map_err(RuntimeError::sys("grantpt"))?;
        nix::pty::unlockpt(&master).map_err(RuntimeError::sys("unlockpt"))?;
        let name = nix::pty::ptsname_r(&master).map_err(RuntimeError::sys("ptsname"))?;
        let slave: OwnedFd = nix::fcntl::open(
            name.as_str(),
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(RuntimeError::sys(format!("open {name}")))?;
        let flags = nix::fcntl::fcntl(master.as_fd(), FcntlArg::F_GETFL)
            .map_err(RuntimeError::sys("fcntl F_GETFL"))?;
        nix::fcntl::fcntl(
            master.as_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .map_err(RuntimeError::sys("fcntl F_SETFL"))?;
        #[allow(unsafe_code)]
        // SAFETY: the PtyMaster owns its descriptor and gives the same one for as long as it
        // lives, which is as long as the AsyncFd that owns it.
        let master = unsafe { AsyncFd::register(master) }
            .map_err(|e| RuntimeError::io("register", name)(e.into()))?;
        Ok((Pty { master }, slave))
    }

    /// Sets the terminal's size: the command's foreground process group gets SIGWINCH.
    pub(crate) fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        let size = Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        #[allow(unsafe_code)]
        // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which outlives the call.
        let r = unsafe { set_winsize(self.master.get_ref().as_raw_fd(), &size) };
        r.map(|_| ()).map_err(RuntimeError::sys("ioctl TIOCSWINSZ"))
    }

    /// Reads what the command wrote; `Ok(0)` once every slave is closed (the kernel's EIO).
    async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|m| nix::unistd::read(m.get_ref().as_fd(), buf).map_err(errno)) {
                Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => return Ok(0),
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// What the command wrote that can be read now, without waiting.
    fn read_now(&self, buf: &mut [u8]) -> usize {
        nix::unistd::read(self.master.get_ref().as_fd(), buf).unwrap_or(0)
    }

    async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|m| nix::unistd::write(m.get_ref().as_fd(), data).map_err(errno)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

fn errno(e: nix::errno::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// The command's stdin, stdout and stderr: pipes (stdin `/dev/null` when `stdin` is false),
/// or with `tty` the slave of a new pseudo-terminal on all three, with its master.
pub(crate) fn stdio(tty: bool, stdin: bool) -> Result<([Stdio; 3], Option<Pty>), RuntimeError> {
    if !tty {
        let input = if stdin { Stdio::piped() } else { Stdio::null() };
        return Ok(([input, Stdio::piped(), Stdio::piped()], None));
    }
    let (pty, slave) = Pty::open()?;
    let dup = |fd: &OwnedFd| {
        fd.try_clone()
            .map(Stdio::from)
            .map_err(RuntimeError::io("dup", "the terminal's slave"))
    };
    let (a, b) = (dup(&slave)?, dup(&slave)?);
    Ok(([a, b, Stdio::from(slave)], Some(pty)))
}

/// Runs an attached exec spawned with [`stdio`]'s ends (the `Command` that held them
/// dropped) to its end within `timeout`: input fed in, output streamed out. `on_resize`
/// runs after each resize (runc relays the size to its own terminal on SIGWINCH). Returns
/// the exit code ([`crate::shim::EXEC_FAILED`] without one), the first bytes of stderr
/// (of the terminal's output with a TTY), where a shim or runc says why the command never
/// ran, and whether the terminal was hung up (the child killed: its command may need
/// killing too). `what` names the exec in an error.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    mut child: tokio::process::Child,
    pty: Option<Pty>,
    io: ExecIo,
    timeout: Duration,
    id: &ContainerId,
    what: &str,
    on_resize: impl Fn() + Send + Sync + 'static,
) -> Result<(i32, Vec<u8>, bool), RuntimeError> {
    let head = Arc::new(Mutex::new(Vec::new()));
    let hung_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ExecIo { input, output, .. } = io;
    let status = match pty {
        None => {
            let stdin = child.stdin.take();
            let feeder = tokio::spawn(feed_pipe(stdin, input));
            let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
            let run = async {
                let out = crate::process::pump(stdout, output.clone(), ExecChunk::Stdout, None);
                let err =
                    crate::process::pump(stderr, output, ExecChunk::Stderr, Some(head.clone()));
                let (_, _, status) = tokio::join!(out, err, child.wait());
                status
            };
            let status = tokio::time::timeout(timeout, run).await;
            feeder.abort();
            status
        }
        Some(pty) => {
            let pty = Arc::new(pty);
            let (hangup_tx, hangup) = tokio::sync::oneshot::channel();
            let feed = pty.clone();
            let feeder = tokio::spawn(async move {
                feed_pty(feed, input, on_resize).await;
                let _ = hangup_tx.send(());
            });
            let run = pump_pty(&pty, &mut child, output, head.clone(), hangup, &hung_up);
            let status = tokio::time::timeout(timeout, run).await;
            feeder.abort();
            status
        }
    };
    let status = crate::process::exec_ended(status, id, timeout, what)?;
    let said = head.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let hung_up = hung_up.load(std::sync::atomic::Ordering::SeqCst);
    Ok((
        status.code().unwrap_or(crate::shim::EXEC_FAILED),
        said,
        hung_up,
    ))
}

/// Writes the caller's stdin to the command's pipe as it comes; closes it (end of file) when
/// the caller closes stdin or goes away. A command that stops reading just ends the copy.
async fn feed_pipe(pipe: Option<tokio::process::ChildStdin>, mut input: mpsc::Receiver<ExecInput>) {
    use tokio::io::AsyncWriteExt;
    let mut pipe = pipe;
    while let Some(item) = input.recv().await {
        match item {
            ExecInput::Stdin(data) => {
                if let Some(p) = pipe.as_mut() {
                    if p.write_all(&data).await.is_err() || p.flush().await.is_err() {
                        pipe = None;
                    }
                }
            }
            ExecInput::CloseStdin => {
                if let Some(mut p) = pipe.take() {
                    let _ = p.shutdown().await;
                }
            }
            ExecInput::Resize { .. } => {}
        }
    }
    if let Some(mut p) = pipe {
        let _ = p.shutdown().await;
    }
}

/// Writes the caller's keystrokes to the terminal and applies its resizes.
async fn feed_pty(
    pty: Arc<Pty>,
    mut input: mpsc::Receiver<ExecInput>,
    on_resize: impl Fn() + Send + Sync + 'static,
) {
    while let Some(item) = input.recv().await {
        match item {
            ExecInput::Stdin(data) => {
                if let Err(e) = pty.write_all(&data).await {
                    tracing::debug!(error = %e, "exec terminal input not taken");
                    return;
                }
            }
            ExecInput::Resize { width, height } => match pty.resize(width, height) {
                Ok(()) => on_resize(),
                Err(e) => tracing::debug!(error = %e, "exec terminal not resized"),
            },
            ExecInput::CloseStdin => {}
        }
    }
}

/// Copies the terminal's output to `output` until the command exits; what it wrote just
/// before is read after (a process it left behind holding the terminal does not hold the
/// exec open).
async fn pump_pty(
    pty: &Pty,
    child: &mut tokio::process::Child,
    output: mpsc::Sender<ExecChunk>,
    head: Arc<Mutex<Vec<u8>>>,
    hangup: tokio::sync::oneshot::Receiver<()>,
    hung_up: &std::sync::atomic::AtomicBool,
) -> std::io::Result<std::process::ExitStatus> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut hangup = Some(hangup);
    let mut sink = Sink {
        output,
        head,
        open: true,
    };
    let mut ended = false;
    loop {
        tokio::select! {
            n = pty.read(&mut buf), if !ended => match n {
                Ok(0) | Err(_) => ended = true,
                Ok(n) => sink.send(&buf[..n]).await,
            },
            _ = async { hangup.as_mut().expect("guarded").await }, if hangup.is_some() => {
                // The caller is gone: nobody types into this terminal again.
                hangup = None;
                hung_up.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::debug!("exec terminal hung up; killing the command");
                let _ = child.start_kill();
            }
            status = child.wait() => {
                let status = status?;
                loop {
                    let n = pty.read_now(&mut buf);
                    if n == 0 {
                        break;
                    }
                    sink.send(&buf[..n]).await;
                }
                return Ok(status);
            }
        }
    }
}

/// Where a terminal's output goes: the caller (until it goes away), its first bytes kept.
struct Sink {
    output: mpsc::Sender<ExecChunk>,
    head: Arc<Mutex<Vec<u8>>>,
    open: bool,
}

impl Sink {
    async fn send(&mut self, data: &[u8]) {
        {
            let mut h = self.head.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() < 256 {
                let take = data.len().min(256 - h.len());
                h.extend_from_slice(&data[..take]);
            }
        }
        if self.open
            && self
                .output
                .send(ExecChunk::Stdout(data.to_vec()))
                .await
                .is_err()
        {
            self.open = false;
        }
    }
}
