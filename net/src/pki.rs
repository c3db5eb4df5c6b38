//! The cluster PKI: the cluster CA (create, load, issue leaves, sign node CSRs), identities on
//! disk, peer identities read from certificates, and kubeadm-style bootstrap tokens.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};

/// DNS name every navarch server certificate carries and every client verifies.
pub const CLUSTER_SERVER_NAME: &str = "navarch.cluster";

/// The certificate organization of the masters' store members.
pub const ORG_MEMBERS: &str = "navarch:members";
/// The certificate organization of cluster administrators (Kubernetes' `system:masters`).
pub const ORG_ADMINS: &str = "system:masters";
/// The certificate organization of nodes (Kubernetes' `system:nodes`).
pub const ORG_NODES: &str = "system:nodes";
/// The common name of node `<name>` is `system:node:<name>` (Kubernetes' convention).
pub const NODE_CN_PREFIX: &str = "system:node:";

/// Clock skew tolerated on freshly issued certificates.
const BACKDATE: Duration = Duration::from_secs(300);

/// Validity of a newly created cluster CA.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Errors of the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// rcgen refused to build a key, certificate or CSR.
    #[error("certificate generation failed for {what}: {reason}")]
    Generate {
        /// What was being generated.
        what: String,
        /// rcgen's error.
        reason: String,
    },
    /// A certificate could not be parsed.
    #[error("invalid certificate {what}: {reason}")]
    Certificate {
        /// Which certificate.
        what: String,
        /// Why.
        reason: String,
    },
    /// A private key could not be parsed (the key itself is never printed).
    #[error("invalid private key {what}: {reason}")]
    Key {
        /// Which key.
        what: String,
        /// Why.
        reason: String,
    },
    /// The CA key on disk does not belong to the CA certificate.
    #[error("ca key {key} does not match ca certificate {cert}")]
    KeyMismatch {
        /// Key file.
        key: PathBuf,
        /// Certificate file.
        cert: PathBuf,
    },
    /// A certificate signing request was refused.
    #[error("invalid certificate signing request: {0}")]
    Csr(String),
    /// A common name or organization cannot be put in a certificate.
    #[error("invalid subject {field} {value:?}: {reason}")]
    Subject {
        /// "common name" or "organization".
        field: &'static str,
        /// The offending value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A certificate that serves needs a name to serve as.
    #[error("a serving certificate for {0:?} needs at least one subject alternative name")]
    NoAltName(String),
    /// A validity period is unusable.
    #[error("invalid validity {0:?}: must be between 1 second and 100 years")]
    Validity(Duration),
    /// A bootstrap token is malformed.
    #[error(transparent)]
    Token(#[from] TokenParseError),
    /// The token store file is corrupt.
    #[error("token store {path} is corrupt: {reason}")]
    TokenStore {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Generate {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// Creates `dir` and missing parents as 0700 (an existing directory keeps its mode).
fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// Writes `contents` to `path` atomically (temp file + rename) with the given mode, creating
/// missing directories 0700.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(&tmp))?;
    f.write_all(contents).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}

fn read_file(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_err(path))
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes the first PEM certificate of `pem` to DER.
/// Whether the certificate `cert_der` carries the public key of `key`. `what` names the
/// certificate in errors.
pub(crate) fn cert_holds_key(cert_der: &[u8], key: &KeyPair, what: &str) -> Result<bool, PkiError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| PkiError::Certificate {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
    Ok(parsed
        .tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .as_ref()
        == key.public_key_raw())
}

pub(crate) fn cert_der_from_pem(pem: &str, what: &str) -> Result<Vec<u8>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.as_ref().to_vec())
        .map_err(|e| PkiError::Certificate {
            what: what.to_string(),
            reason: format!("bad pem: {e}"),
        })
}

/// `"sha256:<64 hex>"` of the SubjectPublicKeyInfo of a DER certificate (kubeadm's CA
/// discovery hash).
pub fn spki_sha256_of_der(cert_der: &[u8]) -> Result<String, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| PkiError::Certificate {
            what: "for spki hash".to_string(),
            reason: e.to_string(),
        })?;
    Ok(format!(
        "sha256:{}",
        sha256_hex(cert.tbs_certificate.subject_pki.raw)
    ))
}

/// `"sha256:<64 hex>"` of the SubjectPublicKeyInfo of the first certificate of a PEM (a
/// node checks that the CA it stored is the one its `--ca-hash` pins).
pub fn spki_sha256_of_pem(pem: &str) -> Result<String, PkiError> {
    spki_sha256_of_der(&cert_der_from_pem(pem, "certificate")?)
}

fn random_serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    b[0] &= 0x7f;
    b[0] |= 0x01;
    SerialNumber::from_slice(&b)
}

fn check_validity(validity: Duration) -> Result<(), PkiError> {
    if validity < Duration::from_secs(1) || validity > Duration::from_secs(100 * 365 * 24 * 3600) {
        return Err(PkiError::Validity(validity));
    }
    Ok(())
}

fn check_subject(field: &'static str, value: &str) -> Result<(), PkiError> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.len() > 300 {
        "longer than 300 bytes"
    } else if value.chars().any(|c| c.is_control()) {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(PkiError::Subject {
        field,
        value: value.chars().take(80).collect(),
        reason: reason.to_string(),
    })
}

/// A subject alternative name of a certificate that serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AltName {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

/// What a leaf certificate may be used for. Clients check `serverAuth` and the name they
/// dial; servers check `clientAuth`; so a certificate of one profile cannot pose as another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertProfile {
    /// Serves and authenticates: `serverAuth` and `clientAuth`, valid for these names. A
    /// master's store member certificate is this with the cluster server name
    /// ([`ClusterCa::issue_member`]).
    Peer(Vec<AltName>),
    /// Only authenticates (nodes, admins): `clientAuth`, no subject alternative names, so no
    /// TLS client accepts it from a server.
    Client,
    /// Only serves (the HTTPS API): `serverAuth`, valid for these names; no server accepts it
    /// from a client.
    Serving(Vec<AltName>),
}

impl CertProfile {
    /// A store member's profile: serves and authenticates as the cluster server name.
    pub fn member() -> CertProfile {
        CertProfile::Peer(vec![AltName::Dns(CLUSTER_SERVER_NAME.to_string())])
    }
}

/// Parameters of a leaf certificate of `profile`.
fn leaf_params(
    common_name: &str,
    organizations: &[&str],
    validity: Duration,
    profile: &CertProfile,
) -> Result<CertificateParams, PkiError> {
    check_validity(validity)?;
    check_subject("common name", common_name)?;
    for o in organizations {
        check_subject("organization", o)?;
    }
    if organizations.len() > 2 {
        return Err(PkiError::Subject {
            field: "organization",
            value: organizations.join(","),
            reason: format!(
                "at most 2 organizations supported, got {}",
                organizations.len()
            ),
        });
    }
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organizations.first() {
        dn.push(DnType::OrganizationName, *o);
    }
    if let Some(o) = organizations.get(1) {
        // rcgen keeps one value per attribute type; a second O goes in under its raw OID.
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 10]), *o);
    }
    params.distinguished_name = dn;
    let (names, usages): (&[AltName], Vec<ExtendedKeyUsagePurpose>) = match profile {
        CertProfile::Peer(names) => (
            names,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        ),
        CertProfile::Client => (&[], vec![ExtendedKeyUsagePurpose::ClientAuth]),
        CertProfile::Serving(names) => (names, vec![ExtendedKeyUsagePurpose::ServerAuth]),
    };
    if names.is_empty() && *profile != CertProfile::Client {
        return Err(PkiError::NoAltName(common_name.chars().take(80).collect()));
    }
    for name in names {
        let san = match name {
            AltName::Dns(d) => {
                SanType::DnsName(d.as_str().try_into().map_err(gen_err("subject alt name"))?)
            }
            AltName::Ip(ip) => SanType::IpAddress(*ip),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + validity).into();
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = usages;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// The cluster's certificate authority.
pub struct ClusterCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("spki_sha256", &self.spki_sha256())
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Loads the CA from `dir/ca.crt` and `dir/ca.key`, or creates and saves a new one.
    /// The flag is true when a CA was created.
    pub fn load_or_create(dir: &Path) -> Result<(ClusterCa, bool), PkiError> {
        let cert = dir.join("ca.crt");
        let key = dir.join("ca.key");
        if cert.exists() || key.exists() {
            return Ok((Self::load(dir)?, false));
        }
        let ca = Self::create()?;
        write_file(&key, ca.issuer.key().serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert, ca.cert_pem.as_bytes(), 0o644)?;
        tracing::info!(dir = %dir.display(), spki = %ca.spki_sha256(), "created cluster ca");
        Ok((ca, true))
    }

    fn create() -> Result<ClusterCa, PkiError> {
        let key = KeyPair::generate().map_err(gen_err("ca key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "navarch-ca");
        dn.push(DnType::OrganizationName, "navarch");
        params.distinguished_name = dn;
        let now = SystemTime::now();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + CA_VALIDITY).into();
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(gen_err("ca certificate"))?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().as_ref().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads an existing CA from `dir/ca.crt` and `dir/ca.key`.
    pub fn load(dir: &Path) -> Result<ClusterCa, PkiError> {
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        let cert_pem = read_file(&cert_path)?;
        let key_pem = read_file(&key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Key {
            what: key_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let what = cert_path.display().to_string();
        let cert_der = cert_der_from_pem(&cert_pem, &what)?;
        if !cert_holds_key(&cert_der, &key, &what)? {
            return Err(PkiError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| PkiError::Certificate {
                what: cert_path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(ClusterCa {
            cert_pem,
            cert_der,
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// `"sha256:<64 hex>"` of the CA's SubjectPublicKeyInfo (kubeadm's discovery hash).
    pub fn spki_sha256(&self) -> String {
        // The DER was produced or parsed when the CA was built, so it parses again.
        spki_sha256_of_der(&self.cert_der).unwrap_or_else(|_| String::from("sha256:invalid"))
    }

    /// Issues a new key and a leaf certificate of `profile` for `common_name`.
    pub fn issue(
        &self,
        common_name: &str,
        organizations: &[&str],
        validity: Duration,
        profile: &CertProfile,
    ) -> Result<Identity, PkiError> {
        let params = leaf_params(common_name, organizations, validity, profile)?;
        let key = KeyPair::generate().map_err(gen_err(common_name))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(gen_err(common_name))?;
        tracing::info!(cn = common_name, orgs = ?organizations, ?profile, "issued certificate");
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }

    /// A master's store member certificate: CN `name`, O [`ORG_MEMBERS`]; serves QUIC as the
    /// cluster server name and authenticates to the other members.
    pub fn issue_member(&self, name: &str, validity: Duration) -> Result<Identity, PkiError> {
        self.issue(name, &[ORG_MEMBERS], validity, &CertProfile::member())
    }

    /// A client certificate (an admin's, a node's, a tool's): authenticates only.
    pub fn issue_client(
        &self,
        common_name: &str,
        organizations: &[&str],
        validity: Duration,
    ) -> Result<Identity, PkiError> {
        self.issue(common_name, organizations, validity, &CertProfile::Client)
    }

    /// An HTTPS serving certificate (the API server's): serves only, valid for `ips`.
    pub fn issue_serving(
        &self,
        common_name: &str,
        ips: &[IpAddr],
        validity: Duration,
    ) -> Result<Identity, PkiError> {
        self.issue_serving_names(common_name, ips, &[], validity)
    }

    /// A serving certificate for these IP addresses and DNS names.
    pub fn issue_serving_names(
        &self,
        common_name: &str,
        ips: &[IpAddr],
        dns: &[&str],
        validity: Duration,
    ) -> Result<Identity, PkiError> {
        let names = ips
            .iter()
            .map(|ip| AltName::Ip(*ip))
            .chain(dns.iter().map(|d| AltName::Dns(d.to_string())))
            .collect();
        self.issue(common_name, &[], validity, &CertProfile::Serving(names))
    }

    /// A node agent's serving certificate for its kubelet endpoint (Kubernetes'
    /// `kubelet-serving` signer): CN `system:node:<node>`, O [`ORG_NODES`], serves only, as
    /// the cluster server name. A master dialing it expects [`ExpectedPeer::Node`], so it
    /// cannot pass for a master (whose O is [`ORG_MEMBERS`]) nor authenticate as a client.
    pub fn issue_kubelet_serving(
        &self,
        node: &str,
        validity: Duration,
    ) -> Result<Identity, PkiError> {
        self.issue(
            &format!("{NODE_CN_PREFIX}{node}"),
            &[ORG_NODES],
            validity,
            &CertProfile::Serving(vec![AltName::Dns(CLUSTER_SERVER_NAME.to_string())]),
        )
    }

    /// Signs a CSR as a client certificate (the node profile: authenticates only), imposing
    /// `common_name` and `organizations` whatever the CSR asked for.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        common_name: &str,
        organizations: &[&str],
        validity: Duration,
    ) -> Result<String, PkiError> {
        self.sign_csr_as(
            csr_pem,
            common_name,
            organizations,
            validity,
            &CertProfile::Client,
        )
    }

    /// Signs a CSR as a store member certificate (CN `name`, O [`ORG_MEMBERS`], the member
    /// profile), whatever the CSR asked for: for a master joining with the server token.
    pub fn sign_member_csr(
        &self,
        csr_pem: &str,
        name: &str,
        validity: Duration,
    ) -> Result<String, PkiError> {
        self.sign_csr_as(
            csr_pem,
            name,
            &[ORG_MEMBERS],
            validity,
            &CertProfile::member(),
        )
    }

    /// Signs a CSR as a node's kubelet serving certificate (serves only, as the cluster
    /// server name), imposing `common_name` and `organizations`.
    pub fn sign_csr_serving(
        &self,
        csr_pem: &str,
        common_name: &str,
        organizations: &[&str],
        validity: Duration,
    ) -> Result<String, PkiError> {
        self.sign_csr_as(
            csr_pem,
            common_name,
            organizations,
            validity,
            &CertProfile::Serving(vec![AltName::Dns(CLUSTER_SERVER_NAME.to_string())]),
        )
    }

    fn sign_csr_as(
        &self,
        csr_pem: &str,
        common_name: &str,
        organizations: &[&str],
        validity: Duration,
        profile: &CertProfile,
    ) -> Result<String, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::Csr(e.to_string()))?;
        let params = leaf_params(common_name, organizations, validity, profile)?;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(gen_err(common_name))?;
        tracing::info!(cn = common_name, orgs = ?organizations, ?profile, "signed certificate request");
        Ok(cert.pem())
    }

    /// The CA's private key, PEM. Only for handing the CA to a master that joins with the
    /// server token (a master signs node and serving certificates); never logged.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }
}

/// A certificate, its private key and the cluster CA certificate, all PEM.
#[derive(Clone)]
pub struct Identity {
    /// Leaf certificate.
    pub cert_pem: String,
    /// Private key of the leaf (PKCS#8). Never logged.
    pub key_pem: String,
    /// The cluster CA certificate.
    pub ca_pem: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = self
            .peer_identity()
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|e| format!("<{e}>"));
        f.debug_struct("Identity")
            .field("subject", &subject)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl Identity {
    /// Writes `<name>.crt`, `<name>.key` (0600) and `ca.crt` into `dir`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<(), PkiError> {
        write_file(
            &dir.join(format!("{name}.key")),
            self.key_pem.as_bytes(),
            0o600,
        )?;
        write_file(
            &dir.join(format!("{name}.crt")),
            self.cert_pem.as_bytes(),
            0o644,
        )?;
        write_file(&dir.join("ca.crt"), self.ca_pem.as_bytes(), 0o644)?;
        Ok(())
    }

    /// Reads what [`Identity::save`] wrote.
    pub fn load(dir: &Path, name: &str) -> Result<Identity, PkiError> {
        Ok(Identity {
            cert_pem: read_file(&dir.join(format!("{name}.crt")))?,
            key_pem: read_file(&dir.join(format!("{name}.key")))?,
            ca_pem: read_file(&dir.join("ca.crt"))?,
        })
    }

    /// An identity without certificate or key, holding only the CA: a dial-only endpoint
    /// built with it presents no client certificate (it may only call `net.join`).
    pub fn anonymous(ca_pem: impl Into<String>) -> Identity {
        Identity {
            cert_pem: String::new(),
            key_pem: String::new(),
            ca_pem: ca_pem.into(),
        }
    }

    /// True for [`Identity::anonymous`].
    pub fn is_anonymous(&self) -> bool {
        self.cert_pem.trim().is_empty()
    }

    /// CN and O of this identity's certificate.
    pub fn peer_identity(&self) -> Result<PeerIdentity, PkiError> {
        PeerIdentity::from_der(&cert_der_from_pem(&self.cert_pem, "identity certificate")?)
    }
}

/// Who a peer is, read from its leaf certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdentity {
    /// Subject common name.
    pub common_name: String,
    /// Subject organizations.
    pub organizations: Vec<String>,
}

impl PeerIdentity {
    /// Parses CN and O out of a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<PeerIdentity, PkiError> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Certificate {
                what: "of peer".to_string(),
                reason: e.to_string(),
            })?;
        let subject = cert.subject();
        let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
            a.as_str()
                .map(str::to_string)
                .map_err(|e| PkiError::Certificate {
                    what: "of peer".to_string(),
                    reason: format!("subject attribute is not a string: {e}"),
                })
        };
        let common_name = match subject.iter_common_name().next() {
            Some(a) => text(a)?,
            None => {
                return Err(PkiError::Certificate {
                    what: "of peer".to_string(),
                    reason: "no common name in subject".to_string(),
                })
            }
        };
        let organizations = subject
            .iter_organization()
            .map(text)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PeerIdentity {
            common_name,
            organizations,
        })
    }
}

/// Who a client expects to reach at the address it dials. The TLS handshake has already
/// checked that the server's certificate comes from the cluster CA, names the cluster server
/// name and allows serving; this checks whose certificate it is, so that dialing `m2` and
/// reaching `m3` (an address reused, a wrong flag) or anything that is not a master fails.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedPeer {
    /// Any server certificate of the cluster CA (tests, and tools that need nothing more).
    AnyServer,
    /// Any master: O=`navarch:members` (a node agent, `navctl`'s raw store commands).
    Master,
    /// The master whose store member has this name: CN=name, O=`navarch:members`.
    Member(String),
    /// The node agent of this node, serving its kubelet endpoint (a master proxying logs
    /// and exec): CN=`system:node:<name>`, O=`system:nodes`.
    Node(String),
}

impl ExpectedPeer {
    /// The member called `name`.
    pub fn member(name: impl Into<String>) -> ExpectedPeer {
        ExpectedPeer::Member(name.into())
    }

    /// `Ok` if `peer` is who is expected; otherwise why not.
    pub fn check(&self, peer: &PeerIdentity) -> Result<(), String> {
        let is_member = peer.organizations.iter().any(|o| o == ORG_MEMBERS);
        let ok = match self {
            ExpectedPeer::AnyServer => true,
            ExpectedPeer::Master => is_member,
            ExpectedPeer::Member(name) => is_member && peer.common_name == *name,
            ExpectedPeer::Node(name) => {
                peer.organizations.iter().any(|o| o == ORG_NODES)
                    && peer.common_name.strip_prefix(NODE_CN_PREFIX) == Some(name.as_str())
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "reached CN={} O=[{}], expected {self}",
                peer.common_name,
                peer.organizations.join(",")
            ))
        }
    }
}

impl fmt::Display for ExpectedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedPeer::AnyServer => write!(f, "any server of the cluster"),
            ExpectedPeer::Master => write!(f, "a master (O={ORG_MEMBERS})"),
            ExpectedPeer::Member(n) => write!(f, "member {n} (CN={n}, O={ORG_MEMBERS})"),
            ExpectedPeer::Node(n) => {
                write!(f, "node {n} (CN={NODE_CN_PREFIX}{n}, O={ORG_NODES})")
            }
        }
    }
}

/// A malformed bootstrap token. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenParseError {
    /// No '.' between id and secret.
    #[error("bootstrap token must have the form <6 chars>.<16 chars> ([a-z0-9]): no '.' found")]
    MissingDot,
    /// The id part has the wrong length.
    #[error("bootstrap token id must be 6 characters of [a-z0-9], got {0} characters")]
    IdLength(usize),
    /// The secret part has the wrong length.
    #[error("bootstrap token secret must be 16 characters of [a-z0-9], got {0} characters")]
    SecretLength(usize),
    /// A character outside [a-z0-9].
    #[error("bootstrap token {part} has a character outside [a-z0-9] at position {position}")]
    BadChar {
        /// "id" or "secret".
        part: &'static str,
        /// 0-based position within that part.
        position: usize,
    },
}

/// A kubeadm-format bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_token_part(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| TOKEN_ALPHABET[rng.gen_range(0..TOKEN_ALPHABET.len())] as char)
        .collect()
}

impl BootstrapToken {
    /// A new random token.
    pub fn generate() -> BootstrapToken {
        BootstrapToken {
            id: random_token_part(6),
            secret: random_token_part(16),
        }
    }

    /// The public id part.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret part.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

fn check_token_part(part: &'static str, s: &str, len: usize) -> Result<(), TokenParseError> {
    if let Some(position) = s
        .bytes()
        .position(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit()))
    {
        return Err(TokenParseError::BadChar { part, position });
    }
    if s.len() != len {
        return Err(if part == "id" {
            TokenParseError::IdLength(s.len())
        } else {
            TokenParseError::SecretLength(s.len())
        });
    }
    Ok(())
}

impl FromStr for BootstrapToken {
    type Err = TokenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, secret) = s.split_once('.').ok_or(TokenParseError::MissingDot)?;
        check_token_part("id", id, 6)?;
        check_token_part("secret", secret, 16)?;
        Ok(BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }
}

impl fmt::Display for BootstrapToken {
    /// The full token: only for printing it once to the operator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredToken {
    id: String,
    /// Hex SHA-256 of the secret: the secret itself is not stored.
    secret_sha256: String,
    expires_unix: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Equality of two byte strings without an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Bootstrap tokens accepted for joining, kept in `tokens.json` (hashed secrets, 0600).
pub struct TokenStore {
    path: PathBuf,
    lock: Mutex<()>,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenStore")
            .field("path", &self.path)
            .finish()
    }
}

impl TokenStore {
    /// Opens (creating the directory 0700 if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<TokenStore, PkiError> {
        create_private_dir(dir)?;
        let store = TokenStore {
            path: dir.join("tokens.json"),
            lock: Mutex::new(()),
        };
        store.read()?;
        Ok(store)
    }

    fn read(&self) -> Result<Vec<StoredToken>, PkiError> {
        match fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| PkiError::TokenStore {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(PkiError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Accepts `token` for `ttl` from now (replacing a token with the same id); drops
    /// expired tokens.
    pub fn add(&self, token: &BootstrapToken, ttl: Duration) -> Result<(), PkiError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let now = unix_now();
        let mut tokens = self.read()?;
        tokens.retain(|t| t.expires_unix > now && t.id != token.id);
        tokens.push(StoredToken {
            id: token.id.clone(),
            secret_sha256: sha256_hex(token.secret.as_bytes()),
            expires_unix: now.saturating_add(ttl.as_secs()),
        });
        let json = serde_json::to_vec_pretty(&tokens).map_err(|e| PkiError::TokenStore {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_file(&self.path, &json, 0o600)?;
        tracing::info!(token_id = %token.id, ttl_secs = ttl.as_secs(), "bootstrap token added");
        Ok(())
    }

    /// True if `presented` is a well-formed, known, unexpired token.
    pub fn verify(&self, presented: &str) -> bool {
        let Ok(token) = presented.parse::<BootstrapToken>() else {
            return false;
        };
        let tokens = {
            let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            match self.read() {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read token store");
                    return false;
                }
            }
        };
        let now = unix_now();
        let presented_hash = sha256_hex(token.secret.as_bytes());
        tokens.iter().any(|t| {
            t.id == token.id
                && t.expires_unix > now
                && constant_time_eq(t.secret_sha256.as_bytes(), presented_hash.as_bytes())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_issue_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, created) = ClusterCa::load_or_create(dir.path()).unwrap();
        assert!(created);
        let mode = fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (ca2, created2) = ClusterCa::load_or_create(dir.path()).unwrap();
        assert!(!created2);
        assert_eq!(ca.spki_sha256(), ca2.spki_sha256());
        assert!(ca.spki_sha256().starts_with("sha256:"));
        assert_eq!(ca.spki_sha256().len(), 7 + 64);

        let id = ca2
            .issue_client("node-a", &["system:nodes"], Duration::from_secs(3600))
            .unwrap();
        let who = id.peer_identity().unwrap();
        assert_eq!(who.common_name, "node-a");
        assert_eq!(who.organizations, vec!["system:nodes".to_string()]);
        assert!(!format!("{id:?}").contains("PRIVATE"));

        let two = ca
            .issue_client("admin", &["system:masters", "ops"], Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            two.peer_identity().unwrap().organizations,
            vec!["system:masters".to_string(), "ops".to_string()]
        );

        id.save(dir.path(), "node").unwrap();
        let back = Identity::load(dir.path(), "node").unwrap();
        assert_eq!(back.cert_pem, id.cert_pem);
        let mode = fs::metadata(dir.path().join("node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// (serverAuth, clientAuth, subject alt names) of a certificate.
    fn usage(pem: &str) -> (bool, bool, Vec<String>) {
        use x509_parser::extensions::GeneralName;
        let der = cert_der_from_pem(pem, "t").unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        let (server, client) = c
            .extended_key_usage()
            .unwrap()
            .map(|e| (e.value.server_auth, e.value.client_auth))
            .unwrap_or((false, false));
        let names = c
            .subject_alternative_name()
            .unwrap()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .map(|n| match n {
                        GeneralName::DNSName(d) => d.to_string(),
                        GeneralName::IPAddress(b) if b.len() == 4 => {
                            std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()
                        }
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        (server, client, names)
    }

    #[test]
    fn profiles_fix_usages_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = ClusterCa::load_or_create(dir.path()).unwrap();
        let hour = Duration::from_secs(3600);

        let member = ca.issue_member("m1", hour).unwrap();
        assert_eq!(
            usage(&member.cert_pem),
            (true, true, vec![CLUSTER_SERVER_NAME.to_string()])
        );
        assert_eq!(
            member.peer_identity().unwrap().organizations,
            vec![ORG_MEMBERS.to_string()]
        );

        let admin = ca.issue_client("admin", &[ORG_ADMINS], hour).unwrap();
        assert_eq!(usage(&admin.cert_pem), (false, true, vec![]));

        let ip: IpAddr = "127.0.0.7".parse().unwrap();
        let serving = ca
            .issue_serving("m1-apiserver", &[IpAddr::from([127, 0, 0, 1]), ip], hour)
            .unwrap();
        assert_eq!(
            usage(&serving.cert_pem),
            (
                true,
                false,
                vec!["127.0.0.1".to_string(), "127.0.0.7".to_string()]
            )
        );
        assert!(matches!(
            ca.issue_serving("nothing", &[], hour),
            Err(PkiError::NoAltName(_))
        ));

        // A node's certificate from its CSR authenticates only.
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let node = ca
            .sign_csr(&csr, "system:node:n1", &[ORG_NODES], hour)
            .unwrap();
        assert_eq!(usage(&node), (false, true, vec![]));
    }

    #[test]
    fn sign_csr_imposes_subject() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = ClusterCa::load_or_create(dir.path()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "system:admin");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let pem = ca
            .sign_csr(
                &csr,
                "system:node:n1",
                &["system:nodes"],
                Duration::from_secs(60),
            )
            .unwrap();
        let who = PeerIdentity::from_der(&cert_der_from_pem(&pem, "t").unwrap()).unwrap();
        assert_eq!(who.common_name, "system:node:n1");
        assert_eq!(who.organizations, vec!["system:nodes".to_string()]);
        assert!(matches!(
            ca.sign_csr("garbage", "x", &[], Duration::from_secs(60)),
            Err(PkiError::Csr(_))
        ));
    }

    #[test]
    fn expected_peers() {
        let who = |cn: &str, orgs: &[&str]| PeerIdentity {
            common_name: cn.to_string(),
            organizations: orgs.iter().map(|o| o.to_string()).collect(),
        };
        let m2 = who("m2", &[ORG_MEMBERS]);
        let m3 = who("m3", &[ORG_MEMBERS]);
        let node = who("system:node:m2", &[ORG_NODES]);
        let admin = who("m2", &[ORG_ADMINS]);
        let want = ExpectedPeer::member("m2");
        assert!(want.check(&m2).is_ok());
        for wrong in [&m3, &node, &admin] {
            let err = want.check(wrong).unwrap_err();
            assert!(err.contains("expected member m2"), "{err}");
            assert!(err.contains(&wrong.common_name), "{err}");
        }
        assert!(ExpectedPeer::Master.check(&m3).is_ok());
        assert!(ExpectedPeer::Master.check(&node).is_err());
        assert!(ExpectedPeer::Master.check(&admin).is_err());
        assert!(ExpectedPeer::AnyServer.check(&node).is_ok());
        let kubelet = ExpectedPeer::Node("m2".into());
        assert!(kubelet.check(&node).is_ok());
        for wrong in [&m2, &admin, &who("system:node:m3", &[ORG_NODES])] {
            let err = kubelet.check(wrong).unwrap_err();
            assert!(err.contains("expected node m2"), "{err}");
        }
    }

    #[test]
    fn tokens() {
        let t = BootstrapToken::generate();
        let s = t.to_string();
        assert_eq!(s.len(), 23);
        assert_eq!(s.parse::<BootstrapToken>().unwrap(), t);
        assert!(!format!("{t:?}").contains(t.secret()));
        assert_eq!(
            "abc".parse::<BootstrapToken>(),
            Err(TokenParseError::MissingDot)
        );
        assert_eq!(
            "abcde.0123456789abcdef".parse::<BootstrapToken>(),
            Err(TokenParseError::IdLength(5))
        );
        assert_eq!(
            "abcdef.0123456789abcde".parse::<BootstrapToken>(),
            Err(TokenParseError::SecretLength(15))
        );
        assert_eq!(
            "abcdef.0123456789Abcdef".parse::<BootstrapToken>(),
            Err(TokenParseError::BadChar {
                part: "secret",
                position: 10
            })
        );

        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        assert!(!store.verify(&s));
        store.add(&t, Duration::from_secs(600)).unwrap();
        assert!(store.verify(&s));
        let other = BootstrapToken {
            id: t.id.clone(),
            secret: "0000000000000000".to_string(),
        };
        assert!(!store.verify(&other.to_string()));
        assert!(!store.verify("nonsense"));
        let expired = BootstrapToken::generate();
        store.add(&expired, Duration::ZERO).unwrap();
        assert!(!store.verify(&expired.to_string()));
        let reopened = TokenStore::open(dir.path()).unwrap();
        assert!(reopened.verify(&s));
        let raw = fs::read_to_string(dir.path().join("tokens.json")).unwrap();
        assert!(!raw.contains(t.secret()));
    }
}
