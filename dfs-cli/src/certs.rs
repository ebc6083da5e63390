//! The cluster's certificate authority and the certificates it issues: `dfs ca init DIR` and
//! `dfs cert issue --role ROLE NAME`.
//!
//! A cluster trusts one CA. Every certificate it issues names its holder (`CN=NAME`) and its
//! [`Role`] (a `urn:dfs:role:…` URI, see [`dfs_proto::tls`]): a master's or chunkserver's
//! also carries the host names and addresses clients reach it at, and may both serve and open
//! connections; a client's may only open them. Keys are ECDSA P-256, written readable by
//! their owner only, and nothing is ever overwritten: replacing a CA would leave every
//! certificate it issued untrusted.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use dfs_proto::tls::Role;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// The CA's certificate in its directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key in its directory.
pub const CA_KEY: &str = "ca.key";

/// How far back a new certificate is valid from, so that a machine whose clock runs a little
/// behind the issuer's accepts it at once.
const CLOCK_SKEW: Duration = Duration::hours(1);

/// What went wrong making a CA or a certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file to be written exists already.
    #[error("{0} exists already; nothing was written (remove it first to replace it)")]
    Exists(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The CA files are not a CA this command made.
    #[error("{path} is not a usable CA: {why}")]
    BadCa { path: PathBuf, why: String },
    /// Bad input: a name or host that cannot go into a certificate, or a validity of 0 days.
    #[error("{0}")]
    Invalid(String),
    /// rcgen refused to build the certificate.
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// What `dfs cert issue` is asked for.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// What the holder may do.
    pub role: Role,
    /// The holder's name (`CN`), and the file names `NAME.pem` and `NAME.key`.
    pub name: String,
    /// Host names and IP addresses the holder serves at (for masters and chunkservers).
    pub hosts: Vec<String>,
    /// How long the certificate is valid.
    pub days: u32,
    /// A client that may only read ([`dfs_proto::tls::READ_ONLY_URN`]): the masters refuse
    /// its changes and hand it read-only chunk tokens.
    pub read_only: bool,
}

/// The files a CA or an issue wrote, and until when the certificate is valid.
#[derive(Debug, Clone)]
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub not_after: OffsetDateTime,
}

/// Makes a new CA in `dir` (created if missing): `ca.pem` and `ca.key`, valid for `days`.
pub fn init_ca(dir: &Path, days: u32) -> Result<Written, CertError> {
    let files = Files::new(dir.join(CA_CERT), dir.join(CA_KEY))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| io_error(dir, source))?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = distinguished_name(&format!("dfs cluster CA {}", short_id(&key)));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let not_after = validity(&mut params, days)?;
    let cert = params.self_signed(&key)?;
    files.write(&cert, &key, not_after)
}

/// Issues a certificate for `request` with the CA in `ca_dir`, writing `NAME.pem` and
/// `NAME.key` into `out`.
pub fn issue(ca_dir: &Path, out: &Path, request: &IssueRequest) -> Result<Written, CertError> {
    let name = &request.name;
    if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
        return Err(CertError::Invalid(format!(
            "{name:?} cannot name a certificate (it becomes a file name: no '/', no leading '.')"
        )));
    }
    let files = Files::new(
        out.join(format!("{name}.pem")),
        out.join(format!("{name}.key")),
    )?;
    let issuer = load_ca(ca_dir)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = distinguished_name(name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let urn = request.role.urn();
    params.subject_alt_names = vec![SanType::URI(urn.as_str().try_into()?)];
    if request.role.serves() {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        for host in &request.hosts {
            let san = match host.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(host.as_str().try_into().map_err(|_| {
                    CertError::Invalid(format!("{host:?} is neither a host name nor an address"))
                })?),
            };
            params.subject_alt_names.push(san);
        }
    } else if !request.hosts.is_empty() {
        return Err(CertError::Invalid(
            "a client certificate names no hosts: clients serve nothing".into(),
        ));
    }
    if request.read_only {
        if request.role != Role::Client {
            return Err(CertError::Invalid(
                "only a client certificate can be read-only".into(),
            ));
        }
        let urn = dfs_proto::tls::READ_ONLY_URN;
        params.subject_alt_names.push(SanType::URI(urn.try_into()?));
    }
    let not_after = validity(&mut params, request.days)?;
    let cert = params.signed_by(&key, &issuer)?;
    fs::create_dir_all(out).map_err(|source| io_error(out, source))?;
    files.write(&cert, &key, not_after)
}

/// Where a certificate and its key go: two files that must not exist yet.
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    /// The pair, if neither exists (checked before any key is made, so a refusal costs
    /// nothing; writing checks again).
    fn new(cert: PathBuf, key: PathBuf) -> Result<Files, CertError> {
        for path in [&cert, &key] {
            if path.exists() {
                return Err(CertError::Exists(path.clone()));
            }
        }
        Ok(Files { cert, key })
    }

    /// Writes the key (private to its owner) and then the certificate.
    fn write(
        self,
        cert: &rcgen::Certificate,
        key: &KeyPair,
        not_after: OffsetDateTime,
    ) -> Result<Written, CertError> {
        write_new(&self.key, key.serialize_pem().as_bytes(), 0o600)?;
        write_new(&self.cert, cert.pem().as_bytes(), 0o644)?;
        Ok(Written {
            cert: self.cert,
            key: self.key,
            not_after,
        })
    }
}

/// The CA of `dir`, ready to sign.
fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let read = |path: &Path| fs::read_to_string(path).map_err(|source| io_error(path, source));
    let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
    let key = KeyPair::from_pem(&key_pem).map_err(|err| CertError::BadCa {
        path: key_path.clone(),
        why: err.to_string(),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|err| CertError::BadCa {
        path: cert_path.clone(),
        why: err.to_string(),
    })?;
    Ok(issuer)
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "dfs");
    name.push(DnType::CommonName, common_name);
    name
}

/// Makes `params` valid from a little before now for `days`; the end of validity.
fn validity(params: &mut CertificateParams, days: u32) -> Result<OffsetDateTime, CertError> {
    if days == 0 {
        return Err(CertError::Invalid(
            "a certificate must be valid for at least one day".into(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + Duration::days(i64::from(days));
    Ok(params.not_after)
}

/// A few hex digits of the CA's public key, so two clusters' CAs have different names.
fn short_id(key: &KeyPair) -> String {
    let raw = rcgen::PublicKeyData::der_bytes(key);
    raw.iter()
        .rev()
        .take(4)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Writes `bytes` to a new file at `path` with `mode`; an existing file is an error.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => CertError::Exists(path.to_path_buf()),
            _ => io_error(path, source),
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> CertError {
    CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::tls::role_of;
    use std::os::unix::fs::PermissionsExt as _;

    fn der(path: &Path) -> Vec<u8> {
        let pem = fs::read(path).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        pem.contents
    }

    fn request(role: Role, name: &str) -> IssueRequest {
        IssueRequest {
            role,
            name: name.into(),
            hosts: if role.serves() {
                vec!["localhost".into(), "127.0.0.1".into()]
            } else {
                Vec::new()
            },
            days: 30,
            read_only: false,
        }
    }

    #[test]
    fn issued_certificates_name_their_role_and_keys_stay_private() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        let written = init_ca(&ca, 3650).unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&written.key), 0o600);
        assert_eq!(mode(&ca), 0o700);
        for role in Role::ALL {
            let issued = issue(&ca, dir.path(), &request(role, role.name())).unwrap();
            assert_eq!(mode(&issued.key), 0o600);
            assert_eq!(role_of(&der(&issued.cert)), Ok(role));
        }
        // The CA itself is no member of the cluster.
        assert!(role_of(&der(&written.cert)).is_err());
    }

    #[test]
    fn a_read_only_client_certificate_says_so_and_only_clients_can_be_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init_ca(&ca, 10).unwrap();
        let mut reader = request(Role::Client, "reader");
        reader.read_only = true;
        let issued = issue(&ca, dir.path(), &reader).unwrap();
        let cert = der(&issued.cert);
        assert_eq!(role_of(&cert), Ok(Role::Client));
        assert!(dfs_proto::tls::is_read_only(&cert));
        let writer = issue(&ca, dir.path(), &request(Role::Client, "writer")).unwrap();
        assert!(!dfs_proto::tls::is_read_only(&der(&writer.cert)));
        let mut master = request(Role::Master, "m");
        master.read_only = true;
        assert!(matches!(
            issue(&ca, dir.path(), &master),
            Err(CertError::Invalid(_))
        ));
    }

    #[test]
    fn nothing_is_overwritten_and_bad_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init_ca(&ca, 10).unwrap();
        let before = fs::read(ca.join(CA_KEY)).unwrap();
        assert!(matches!(init_ca(&ca, 10), Err(CertError::Exists(_))));
        assert_eq!(fs::read(ca.join(CA_KEY)).unwrap(), before);

        issue(&ca, dir.path(), &request(Role::Master, "m1")).unwrap();
        assert!(matches!(
            issue(&ca, dir.path(), &request(Role::Client, "m1")),
            Err(CertError::Exists(_))
        ));
        let mut client_with_hosts = request(Role::Client, "c");
        client_with_hosts.hosts = vec!["localhost".into()];
        assert!(matches!(
            issue(&ca, dir.path(), &client_with_hosts),
            Err(CertError::Invalid(_))
        ));
        for bad in ["", "../x", ".hidden"] {
            assert!(matches!(
                issue(&ca, dir.path(), &request(Role::Client, bad)),
                Err(CertError::Invalid(_))
            ));
        }
        let mut zero_days = request(Role::Client, "z");
        zero_days.days = 0;
        assert!(matches!(
            issue(&ca, dir.path(), &zero_days),
            Err(CertError::Invalid(_))
        ));
        assert!(matches!(
            issue(
                &dir.path().join("no-ca"),
                dir.path(),
                &request(Role::Client, "n")
            ),
            Err(CertError::Io { .. })
        ));
    }
}
