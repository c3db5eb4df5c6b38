//! The data dir's credentials: the cluster CA, this master's member certificate, the admin
//! client certificate and the node bootstrap token, created on first start.
//!
//! Layout of a master's data dir:
//! - `pki/ca.crt`, `pki/ca.key`: the cluster CA (or under `--ca-dir`, shared by the masters)
//! - `pki/server-secret` (beside the CA): the secret of the server token, shared by every
//!   master that holds the CA
//! - `pki/member.crt`, `pki/member.key`: this master's certificate (CN = its name)
//! - `admin.crt`, `admin.key`, `ca.crt`: the admin client credentials `navctl` uses
//! - `tokens.json`, `join-token`: node bootstrap tokens; `ca-hash`: the CA pin for joining
//! - `server-token`: the server token another master joins with (`--join ... --token`)
//! - `member.json`: a master that joined a running cluster: its id, name and peer address
//!
//! The data dir, `pki/` and the CA dir are 0700, keys and tokens 0600: created so under the
//! binaries' umask, and fixed at every start if an earlier version left them more open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_net::pki::{BootstrapToken, ClusterCa, Identity, TokenStore};
use navarch_net::{generate_server_secret, JoinedMaster, ServerToken};
use navarch_store::ORG_ADMINS;

use crate::private::{private_dir, private_file, write_private};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

pub struct MasterCredentials {
    pub ca: ClusterCa,
    pub member: Identity,
    pub tokens: TokenStore,
    /// The server token masters join with.
    pub server_token: ServerToken,
}

/// The file beside the CA holding the server token's secret.
const SERVER_SECRET: &str = "server-secret";
/// The file in the data dir holding the whole server token.
pub const SERVER_TOKEN: &str = "server-token";

/// Loads or creates everything a master needs under `data_dir` (the CA under `ca_dir`).
pub fn master(data_dir: &Path, ca_dir: Option<&Path>, name: &str) -> Result<MasterCredentials> {
    private_dir(data_dir)?;
    let pki = data_dir.join("pki");
    private_dir(&pki)?;
    let ca_dir: PathBuf = ca_dir.map(Path::to_path_buf).unwrap_or_else(|| pki.clone());
    private_dir(&ca_dir)?;
    for key in [
        ca_dir.join("ca.key"),
        data_dir.join("admin.key"),
        data_dir.join("tokens.json"),
        data_dir.join("join-token"),
        ca_dir.join(SERVER_SECRET),
        data_dir.join(SERVER_TOKEN),
    ] {
        private_file(&key)?;
    }
    let (ca, created) = ClusterCa::load_or_create(&ca_dir)
        .with_context(|| format!("cluster CA in {}", ca_dir.display()))?;
    if created {
        tracing::info!(dir = %ca_dir.display(), "created the cluster CA");
    }
    let member = ca
        .issue_member(name, YEAR)
        .context("issue member certificate")?;
    member
        .save(&pki, "member")
        .context("save member certificate")?;
    if !data_dir.join("admin.crt").exists() {
        let admin = ca
            .issue_client("admin", &[ORG_ADMINS], YEAR)
            .context("issue admin certificate")?;
        admin
            .save(data_dir, "admin")
            .context("save admin certificate")?;
    }
    std::fs::write(data_dir.join("ca-hash"), format!("{}\n", ca.spki_sha256()))
        .context("write ca-hash")?;
    let tokens = TokenStore::open(data_dir).context("open token store")?;
    let token_file = data_dir.join("join-token");
    if !token_file.exists() {
        let token = BootstrapToken::generate();
        tokens
            .add(&token, Duration::from_secs(24 * 3600))
            .context("add bootstrap token")?;
        write_private(&token_file, format!("{token}\n").as_bytes())?;
        tracing::info!(file = %token_file.display(), "wrote a node bootstrap token (valid 24h)");
    }
    let secret = server_secret(&ca_dir)?;
    let server_token = ServerToken::new(&ca, &secret)
        .with_context(|| format!("{}", ca_dir.join(SERVER_SECRET).display()))?;
    let token_path = data_dir.join(SERVER_TOKEN);
    let text = format!("{server_token}\n");
    if std::fs::read_to_string(&token_path).ok().as_deref() != Some(text.as_str()) {
        write_private(&token_path, text.as_bytes())?;
        tracing::info!(file = %token_path.display(), "wrote the server token other masters join with");
    }
    Ok(MasterCredentials {
        ca,
        member,
        tokens,
        server_token,
    })
}

/// The secret this master's QUIC endpoint derives its stateless-reset tokens from,
/// `DATA_DIR/quic-reset-key`, created once (0600): peers of a restarted master drop their
/// connections to the process before it at once (see `NetConfig::reset_key`).
pub fn quic_reset_key(data_dir: &Path) -> Result<Vec<u8>> {
    let path = data_dir.join("quic-reset-key");
    if !path.exists() {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key[..]);
        write_private(&path, &key)?;
    }
    let key = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    if key.len() < 32 {
        anyhow::bail!(
            "{} holds {} bytes; a reset key needs 32",
            path.display(),
            key.len()
        );
    }
    Ok(key)
}

/// The server token's secret beside the CA in `ca_dir`, created once. Masters sharing a CA
/// dir may start together: the secret is written to a temporary file and linked into place,
/// so the first one wins and the others read it.
fn server_secret(ca_dir: &Path) -> Result<String> {
    let path = ca_dir.join(SERVER_SECRET);
    if !path.exists() {
        let tmp = ca_dir.join(format!(".{SERVER_SECRET}.{}", std::process::id()));
        write_private(&tmp, format!("{}\n", generate_server_secret()).as_bytes())?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => tracing::info!(file = %path.display(), "created the server token's secret"),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
        }
    }
    let secret =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ok(secret.trim().to_string())
}

/// Installs what a master received by joining with `token` into `data_dir/pki`: the CA
/// (certificate and key), the server token's secret and its member certificate.
pub fn install_joined(data_dir: &Path, joined: &JoinedMaster, token: &str) -> Result<()> {
    private_dir(data_dir)?;
    let pki = data_dir.join("pki");
    private_dir(&pki)?;
    let token: ServerToken = token.parse()?;
    write_private(&pki.join("ca.key"), joined.ca_key_pem.as_bytes())?;
    std::fs::write(pki.join("ca.crt"), joined.member.ca_pem.as_bytes())
        .with_context(|| format!("write {}", pki.join("ca.crt").display()))?;
    // The CA just written must be the one the token pins, and its key must match.
    let ca = ClusterCa::load(&pki).context("the received cluster CA")?;
    let rebuilt = ServerToken::new(&ca, token.secret())?;
    anyhow::ensure!(
        rebuilt.accepts(&token),
        "the received CA is not the one the server token pins"
    );
    write_private(
        &pki.join(SERVER_SECRET),
        format!("{}\n", token.secret()).as_bytes(),
    )?;
    joined
        .member
        .save(&pki, "member")
        .context("save member certificate")?;
    Ok(())
}

/// Loads admin client credentials (`admin.crt`, `admin.key`, `ca.crt`) from `dir`.
pub fn admin(dir: &Path) -> Result<Identity> {
    Identity::load(dir, "admin").with_context(|| format!("admin credentials in {}", dir.display()))
}
