//! `navctl exec POD [-c C] [-i] [-t] -- COMMAND...`: runs a command in a pod's container
//! through the API server's `pods/exec`, as kubectl does: a WebSocket upgrade with the
//! `v5.channel.k8s.io` subprotocol, stdout and stderr copied out as they come, stdin (with
//! `-i`) sent as it is read and closed at its end, and the command's exit code as navctl's.
//! With `-t` (and a terminal as stdin) the command runs on a terminal of the container's:
//! navctl's own terminal goes raw, its size is sent at the start and on each SIGWINCH.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;

use anyhow::{bail, Context, Result};
use base64::Engine;
use navarch_client::kubeconfig::Kubeconfig;
use rand::Rng;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Conn;

/// Flags of `navctl exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The pod.
    pub pod: String,
    /// The container (the pod's only one when not given).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Send navctl's stdin to the command, as it is read.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Run the command on a terminal (navctl's stdin must be one), as `kubectl exec -t`.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A client frame: masked, as RFC 6455 requires of clients.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask: [u8; 4] = rand::thread_rng().gen();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// One whole server frame (servers do not mask) from the front of `buf`, if it is there.
fn server_frame(buf: &mut Vec<u8>) -> Result<Option<(u8, Vec<u8>)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[1] & 0x80 != 0 {
        bail!("the server sent a masked frame");
    }
    let (len, at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return Ok(None);
    }
    let opcode = buf[0] & 0x0f;
    let payload = buf[at..at + len].to_vec();
    buf.drain(..at + len);
    Ok(Some((opcode, payload)))
}

/// The exit code an error-channel Status says.
fn exit_code(status: &Value) -> Result<i32> {
    if status["status"] == "Success" {
        return Ok(0);
    }
    if status["reason"] == "NonZeroExitCode" {
        let code = status["details"]["causes"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["reason"] == "ExitCode"))
            .and_then(|c| c["message"].as_str()?.parse().ok())
            .unwrap_or(1);
        return Ok(code);
    }
    bail!(
        "{}",
        status["message"].as_str().unwrap_or("the command failed")
    )
}

/// navctl's terminal in raw mode until dropped (then as it was).
struct RawTerminal(nix::sys::termios::Termios);

impl RawTerminal {
    fn enter() -> Result<RawTerminal> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).context("read the terminal's mode")?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).context("make the terminal raw")?;
        Ok(RawTerminal(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
    }
}

/// navctl's terminal's size as the resize channel's message.
#[allow(unsafe_code)]
fn terminal_size() -> Option<Vec<u8>> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize to a pointer that outlives the call.
    let r = unsafe { libc::ioctl(std::io::stdin().as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    if r < 0 || size.ws_col == 0 {
        return None;
    }
    let mut m = vec![RESIZE];
    m.extend_from_slice(
        serde_json::json!({"Width": size.ws_col, "Height": size.ws_row})
            .to_string()
            .as_bytes(),
    );
    Some(m)
}

const STDIN: u8 = 0;
const RESIZE: u8 = 4;

/// Reads stdin on a thread of its own (a blocking read), piece by piece as it comes; the
/// channel ends at end of file.
fn read_stdin() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Runs the command; its exit code.
pub async fn exec(a: &ExecArgs) -> Result<i32> {
    let tty = a.tty && std::io::IsTerminal::is_terminal(&std::io::stdin());
    if a.tty && !tty {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let path = a.conn.kubeconfig_path();
    let cfg = Kubeconfig::load(&path).with_context(|| format!("kubeconfig {}", path.display()))?;
    let ns = a
        .conn
        .namespace
        .clone()
        .unwrap_or_else(|| cfg.namespace.clone());
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cfg.ca_pem.as_bytes())?);
    if let Some(c) = &cfg.client_cert {
        let pem = format!("{}\n{}", c.cert_pem, c.key_pem.expose());
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    let http = b.build().context("an HTTPS client")?;
    let mut url = reqwest::Url::parse(&format!(
        "{}/api/v1/namespaces/{ns}/pods/{}/exec",
        cfg.server.trim_end_matches('/'),
        a.pod
    ))
    .context("the pod's exec URL")?;
    {
        let mut q = url.query_pairs_mut();
        for arg in &a.command {
            q.append_pair("command", arg);
        }
        if let Some(c) = &a.container {
            q.append_pair("container", c);
        }
        q.append_pair("stdout", "true");
        // On a terminal stderr is the terminal's output too.
        q.append_pair("stderr", if tty { "false" } else { "true" });
        if a.stdin {
            q.append_pair("stdin", "true");
        }
        if tty {
            q.append_pair("tty", "true");
        }
    }
    let key: [u8; 16] = rand::thread_rng().gen();
    let mut req = http
        .get(url)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            base64::engine::general_purpose::STANDARD.encode(key),
        )
        .header("Sec-WebSocket-Protocol", "v5.channel.k8s.io");
    if let Some(t) = &cfg.token {
        req = req.bearer_auth(t.expose());
    }
    let resp = req.send().await.context("the exec request")?;
    if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        let code = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        bail!(
            "Error from server ({}): {}",
            body["reason"]
                .as_str()
                .unwrap_or(code.canonical_reason().unwrap_or("Unknown")),
            body["message"].as_str().unwrap_or("the exec was refused")
        );
    }
    let ws = resp.upgrade().await.context("the WebSocket upgrade")?;
    let (mut rd, mut wr) = tokio::io::split(ws);
    let _raw = if tty {
        Some(RawTerminal::enter()?)
    } else {
        None
    };
    let mut winch = if tty {
        if let Some(m) = terminal_size() {
            wr.write_all(&client_frame(OP_BINARY, &m)).await?;
        }
        Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                .context("watch the terminal's size")?,
        )
    } else {
        None
    };
    let mut stdin = a.stdin.then(read_stdin);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut code: Option<i32> = None;
    loop {
        while let Some((op, payload)) = server_frame(&mut buf)? {
            match op {
                OP_BINARY if !payload.is_empty() => {
                    let data = &payload[1..];
                    match payload[0] {
                        1 => {
                            std::io::stdout().write_all(data)?;
                            std::io::stdout().flush()?;
                        }
                        2 => {
                            std::io::stderr().write_all(data)?;
                        }
                        3 => {
                            let status: Value =
                                serde_json::from_slice(data).context("the exec's status")?;
                            code = Some(exit_code(&status)?);
                        }
                        _ => {}
                    }
                }
                OP_PING => wr.write_all(&client_frame(OP_PONG, &payload)).await?,
                OP_CLOSE => {
                    let _ = wr.write_all(&client_frame(OP_CLOSE, &[])).await;
                    return code.context("the exec ended without a status");
                }
                _ => {}
            }
        }
        tokio::select! {
            n = rd.read(&mut chunk) => {
                let n = n?;
                if n == 0 {
                    return code.context("the connection ended without a status");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            input = async { stdin.as_mut().expect("guarded").recv().await }, if stdin.is_some() => {
                match input {
                    Some(data) => {
                        let mut m = vec![STDIN];
                        m.extend_from_slice(&data);
                        wr.write_all(&client_frame(OP_BINARY, &m)).await?;
                    }
                    None => {
                        // v5: channel 255 closes a channel (stdin, 0): end of file.
                        wr.write_all(&client_frame(OP_BINARY, &[255, STDIN])).await?;
                        stdin = None;
                    }
                }
            }
            _ = async { winch.as_mut().expect("guarded").recv().await }, if winch.is_some() => {
                if let Some(m) = terminal_size() {
                    wr.write_all(&client_frame(OP_BINARY, &m)).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_frames_are_read_whole_and_exit_codes_from_the_status() {
        let mut buf = vec![0x82, 3, 1, b'h', b'i', 0x82];
        assert_eq!(
            server_frame(&mut buf).unwrap(),
            Some((OP_BINARY, vec![1, b'h', b'i']))
        );
        assert_eq!(
            server_frame(&mut buf).unwrap(),
            None,
            "a frame cut short waits"
        );
        assert_eq!(buf, vec![0x82]);
        assert!(server_frame(&mut vec![0x82, 0x81, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(exit_code(&json!({"status": "Success"})).unwrap(), 0);
        let failed = json!({"status": "Failure", "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}});
        assert_eq!(exit_code(&failed).unwrap(), 3);
        assert!(exit_code(&json!({"status": "Failure", "message": "no such container"})).is_err());
    }

    #[test]
    fn client_frames_are_masked() {
        let f = client_frame(OP_BINARY, b"abc");
        assert_eq!(f[0], 0x82);
        assert_eq!(f[1], 0x80 | 3);
        let mask = &f[2..6];
        let data: Vec<u8> = f[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(data, b"abc");
    }
}
