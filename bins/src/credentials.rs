//! The data dir's credentials: the cluster CA, this master's member certificate, the admin
//! client certificate and the node bootstrap token, created on first start.
//!
//! Layout of a master's data dir:
//! - `pki/ca.crt`, `pki/ca.key`: the cluster CA (or under `--ca-dir`, shared by the masters)
//! - `pki/member.crt`, `pki/member.key`: this master's certificate (CN = its name)
//! - `admin.crt`, `admin.key`, `ca.crt`: the admin client credentials `navctl` uses
//! - `tokens.json`, `join-token`: node bootstrap tokens; `ca-hash`: the CA pin for joining
//!
//! The data dir, `pki/` and the CA dir are 0700, keys and tokens 0600: created so under the
//! binaries' umask, and fixed at every start if an earlier version left them more open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_net::pki::{BootstrapToken, ClusterCa, Identity, TokenStore};
use navarch_store::ORG_ADMINS;

use crate::private::{private_dir, private_file, write_private};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

pub struct MasterCredentials {
    pub ca: ClusterCa,
    pub member: Identity,
    pub tokens: TokenStore,
}

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
    Ok(MasterCredentials { ca, member, tokens })
}

/// Loads admin client credentials (`admin.crt`, `admin.key`, `ca.crt`) from `dir`.
pub fn admin(dir: &Path) -> Result<Identity> {
    Identity::load(dir, "admin").with_context(|| format!("admin credentials in {}", dir.display()))
}
