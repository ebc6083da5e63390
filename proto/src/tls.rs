//! Who a certificate says its holder is: every certificate of a dfs cluster names one
//! [`Role`], as a URI in its subject alternative names (`urn:dfs:role:master`), so that a
//! server can tell a master from a chunkserver from a client by the certificate the TLS
//! handshake verified, whatever the peer claims in its requests.
//!
//! The cluster's certificate authority and the certificates it issues come from the `dfs`
//! command (`dfs ca init`, `dfs cert issue`). A process is given the CA's certificate and its
//! own certificate and key ([`TlsOptions`]); [`Tls`] turns them into tonic's server and client
//! configurations for mutual TLS (rustls): each side proves itself with a certificate of the
//! cluster's CA, and a server reads the client's role from the certificate the handshake
//! verified ([`peer_role`], [`require_role`]).
//!
//! TLS is the default: a process given no certificates refuses to start unless told
//! `--insecure`, so that a cluster never ends up in plaintext by omission. A client (a mount,
//! the `dfs` command) given none looks for them in [`CLIENT_TLS_DIR`] first, as Ceph's tools
//! find their keyring in `/etc/ceph`: on a machine set up once, commands need no options.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tonic::Status;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use x509_parser::extensions::GeneralName;

/// What a certificate's holder may do in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A member of the group of masters: speaks Raft with the others.
    Master,
    /// A chunkserver: registers with the masters and stores replicas.
    Chunkserver,
    /// A mount, the `dfs` command or any other client of the filesystem.
    Client,
}

/// The prefix of the URI naming a certificate's role.
const ROLE_URN_PREFIX: &str = "urn:dfs:role:";

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Master, Role::Chunkserver, Role::Client];

    /// The role's name: `master`, `chunkserver` or `client`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Chunkserver => "chunkserver",
            Role::Client => "client",
        }
    }

    /// The URI a certificate of this role carries among its subject alternative names.
    pub fn urn(self) -> String {
        format!("{ROLE_URN_PREFIX}{}", self.name())
    }

    /// Whether holders of this role serve connections (and so need the server usage and
    /// their host names in their certificate), not only open them.
    pub fn serves(self) -> bool {
        matches!(self, Role::Master | Role::Chunkserver)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == s)
            .ok_or_else(|| format!("no role {s:?}: master, chunkserver or client"))
    }
}

/// Why a certificate names no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The bytes are not a DER X.509 certificate.
    #[error("not an X.509 certificate: {0}")]
    Malformed(String),
    /// A certificate without a dfs role URI (not issued by `dfs cert issue`).
    #[error("the certificate names no dfs role")]
    Missing,
    /// More than one role, or one this version does not know.
    #[error("the certificate names an unusable dfs role: {0}")]
    Unusable(String),
}

/// The role the DER certificate `der` names: exactly one `urn:dfs:role:…` URI.
pub fn role_of(der: &[u8]) -> Result<Role, RoleError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|err| RoleError::Malformed(err.to_string()))?;
    let names = cert
        .subject_alternative_name()
        .map_err(|err| RoleError::Malformed(err.to_string()))?;
    let mut roles = names
        .into_iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(ROLE_URN_PREFIX),
            _ => None,
        });
    let Some(first) = roles.next() else {
        return Err(RoleError::Missing);
    };
    if let Some(second) = roles.next() {
        return Err(RoleError::Unusable(format!("{first} and {second}")));
    }
    first.parse().map_err(RoleError::Unusable)
}

/// Where a client given no certificates looks for them: `ca.pem`, `client.pem` and
/// `client.key` (`scripts/dfs-up` links a local cluster's there). `DFS_TLS_DIR` overrides it.
pub const CLIENT_TLS_DIR: &str = "/etc/dfs/tls";

/// Where a process finds its certificates: all three, or `--insecure` for plaintext.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsOptions {
    /// The cluster CA's certificate (`ca.pem` of `dfs ca init`): every peer must present a
    /// certificate it signed.
    #[arg(long = "tls-ca", id = "tls_ca", env = "DFS_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub ca: Option<PathBuf>,
    /// This process's certificate (`NAME.pem` of `dfs cert issue`).
    #[arg(
        long = "tls-cert",
        id = "tls_cert",
        env = "DFS_TLS_CERT",
        requires = "tls_ca"
    )]
    pub cert: Option<PathBuf>,
    /// This process's private key (`NAME.key`).
    #[arg(
        long = "tls-key",
        id = "tls_key",
        env = "DFS_TLS_KEY",
        requires = "tls_ca"
    )]
    pub key: Option<PathBuf>,
    /// Speak plaintext: nothing encrypted, and no certificate says who connects, so anything
    /// that reaches a port is trusted. Only for a trusted network or a test; logged as a
    /// warning.
    #[arg(
        long,
        env = "DFS_INSECURE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub insecure: bool,
}

/// Why the certificates given cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only some of the three files were given.
    #[error("TLS needs --tls-ca, --tls-cert and --tls-key together")]
    Incomplete,
    /// Both certificates and `--insecure`.
    #[error("--insecure contradicts the certificates given (--tls-*): use one or the other")]
    Contradiction,
    /// Neither certificates nor `--insecure`.
    #[error(
        "no certificates: give --tls-ca, --tls-cert and --tls-key (made by `dfs ca init` and \
         `dfs cert issue`), or --insecure to run without TLS"
    )]
    Missing,
    /// A client found neither options nor its certificates in the default directory.
    #[error(
        "no certificates: give --tls-ca, --tls-cert and --tls-key, put ca.pem, client.pem and \
         client.key in {0} (DFS_TLS_DIR), or give --insecure for a cluster without TLS"
    )]
    MissingClient(PathBuf),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The certificate is not one of `dfs cert issue`'s.
    #[error("{path}: {source}")]
    Role { path: PathBuf, source: RoleError },
    /// The certificate file holds no PEM certificate.
    #[error("{0}: no PEM certificate in it")]
    NotPem(PathBuf),
}

impl TlsOptions {
    /// Plaintext, as `--insecure` asks.
    pub fn insecure() -> TlsOptions {
        TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        }
    }

    /// The certificates in `dir` named `ca.pem`, `NAME.pem` and `NAME.key`, as `dfs cert
    /// issue` writes them.
    pub fn in_dir(dir: &Path, name: &str) -> TlsOptions {
        TlsOptions {
            ca: Some(dir.join("ca.pem")),
            cert: Some(dir.join(format!("{name}.pem"))),
            key: Some(dir.join(format!("{name}.key"))),
            insecure: false,
        }
    }

    /// A server's certificates, read and checked; `None` (plaintext, with a warning) under
    /// `--insecure`; an error without either.
    pub fn load(&self) -> Result<Option<Tls>, TlsError> {
        let any = self.ca.is_some() || self.cert.is_some() || self.key.is_some();
        if self.insecure && any {
            return Err(TlsError::Contradiction);
        }
        if self.insecure {
            warn_insecure();
            return Ok(None);
        }
        let (ca, cert, key) = match (&self.ca, &self.cert, &self.key) {
            (None, None, None) => return Err(TlsError::Missing),
            (Some(ca), Some(cert), Some(key)) => (ca, cert, key),
            _ => return Err(TlsError::Incomplete),
        };
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let (ca_pem, cert_pem, key_pem) = (read(ca)?, read(cert)?, read(key)?);
        let (_, pem) = x509_parser::pem::parse_x509_pem(&cert_pem)
            .map_err(|_| TlsError::NotPem(cert.clone()))?;
        let role = role_of(&pem.contents).map_err(|source| TlsError::Role {
            path: cert.clone(),
            source,
        })?;
        Ok(Some(Tls {
            ca: Certificate::from_pem(ca_pem),
            identity: Identity::from_pem(cert_pem, key_pem),
            role,
        }))
    }

    /// A client's certificates: as [`TlsOptions::load`], except that a client given neither
    /// certificates nor `--insecure` takes `client.pem` from [`CLIENT_TLS_DIR`] (or
    /// `DFS_TLS_DIR`) when the directory holds one.
    pub fn load_client(&self) -> Result<Option<Tls>, TlsError> {
        let dir = std::env::var_os("DFS_TLS_DIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from(CLIENT_TLS_DIR), PathBuf::from);
        self.load_client_from(&dir)
    }

    /// [`TlsOptions::load_client`] with `dir` as the default directory.
    fn load_client_from(&self, dir: &Path) -> Result<Option<Tls>, TlsError> {
        let given = self.insecure || self.ca.is_some() || self.cert.is_some() || self.key.is_some();
        if given {
            return self.load();
        }
        let dir = dir.to_path_buf();
        if !dir.join("client.pem").exists() {
            return Err(TlsError::MissingClient(dir));
        }
        TlsOptions::in_dir(&dir, "client").load()
    }
}

/// Logged once per process however many connections it makes: plaintext is a choice the
/// operator should see, not a line per call.
fn warn_insecure() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "running without TLS (--insecure): traffic is plaintext and any process that \
             reaches a port is trusted"
        );
    });
}

/// A process's certificates, loaded: what it trusts and how it proves itself.
#[derive(Debug, Clone)]
pub struct Tls {
    ca: Certificate,
    identity: Identity,
    role: Role,
}

impl Tls {
    /// The role this process's own certificate names.
    pub fn role(&self) -> Role {
        self.role
    }

    /// A server that requires every client to present a certificate of the cluster's CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// A client that trusts only servers with a certificate of the cluster's CA, and proves
    /// itself with its own. Connect with `https://`.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
    }
}

/// An endpoint for the server at `addr` (`host:port`, or a URI kept as it is): over mutual
/// TLS (`https`) with `tls`, plaintext (`http`) without.
pub fn endpoint(addr: &str, tls: Option<&Tls>) -> Result<Endpoint, tonic::transport::Error> {
    let uri = match (addr.contains("://"), tls) {
        (true, _) => addr.to_string(),
        (false, Some(_)) => format!("https://{addr}"),
        (false, None) => format!("http://{addr}"),
    };
    let endpoint = Endpoint::from_shared(uri)?;
    match tls {
        Some(tls) => endpoint.tls_config(tls.client()),
        None => Ok(endpoint),
    }
}

/// The role the verified certificate of the peer of `request` names. A server without TLS
/// has no certificate to read: that is `UNAUTHENTICATED`, as a certificate without a role.
pub fn peer_role<T>(request: &tonic::Request<T>) -> Result<Role, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    role_of(leaf).map_err(|err| Status::unauthenticated(format!("client certificate: {err}")))
}

/// The URI a client certificate carries when its holder may only read
/// (`dfs cert issue --read-only`): a read-only export, enforced by the master.
pub const READ_ONLY_URN: &str = "urn:dfs:access:read-only";

/// Whether the DER certificate `der` restricts its holder to reading.
pub fn is_read_only(der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let Ok(Some(names)) = cert.subject_alternative_name() else {
        return false;
    };
    names
        .value
        .general_names
        .iter()
        .any(|name| matches!(name, GeneralName::URI(uri) if *uri == READ_ONLY_URN))
}

/// Whether the verified certificate of the peer of `request` restricts it to reading (false
/// without TLS: a plaintext cluster restricts nobody).
pub fn peer_is_read_only<T>(request: &tonic::Request<T>) -> bool {
    request
        .peer_certs()
        .and_then(|certs| certs.first().map(|leaf| is_read_only(leaf)))
        .unwrap_or(false)
}

/// Refuses `request` (`PERMISSION_DENIED`) unless its peer's certificate names one of
/// `allowed`: for a tonic interceptor in front of a service only some roles may call.
pub fn require_role<T>(request: &tonic::Request<T>, allowed: &[Role]) -> Result<(), Status> {
    let role = peer_role(request)?;
    if allowed.contains(&role) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "a {role} certificate may not call this service"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_back_from_their_names() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>(), Ok(role));
            assert!(role.urn().ends_with(role.name()));
        }
        assert!("admin".parse::<Role>().unwrap_err().contains("master"));
    }

    #[test]
    fn addresses_get_a_scheme_once() {
        let uri = |addr: &str| {
            let endpoint = endpoint(addr, None).unwrap();
            let uri = endpoint.uri();
            (
                uri.scheme_str().unwrap().to_string(),
                uri.authority().unwrap().to_string(),
            )
        };
        assert_eq!(
            uri("10.0.0.1:9400"),
            ("http".into(), "10.0.0.1:9400".into())
        );
        assert_eq!(
            uri("http://master:9400"),
            ("http".into(), "master:9400".into())
        );
        assert_eq!(uri("https://m:1"), ("https".into(), "m:1".into()));
    }

    #[test]
    fn bytes_that_are_no_certificate_name_no_role() {
        assert!(matches!(
            role_of(b"\x30\x03\x02\x01"),
            Err(RoleError::Malformed(_))
        ));
        assert!(matches!(role_of(&[]), Err(RoleError::Malformed(_))));
    }

    /// A CA and the certificates it signs, in a directory, as `dfs ca init` and
    /// `dfs cert issue` would make them.
    struct Authority {
        params: rcgen::CertificateParams,
        key: rcgen::KeyPair,
    }

    impl Authority {
        fn new(dir: &Path, name: &str) -> Authority {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            Authority { params, key }
        }

        /// Options for a holder of `role` named `name`, trusting `trusted` (a CA's name).
        fn issue(&self, dir: &Path, trusted: &str, role: Role, name: &str) -> TlsOptions {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
            params
                .subject_alt_names
                .push(rcgen::SanType::URI(role.urn().try_into().unwrap()));
            let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
            let cert = params.signed_by(&key, &issuer).unwrap();
            let (cert_path, key_path) = (
                dir.join(format!("{name}.crt")),
                dir.join(format!("{name}.key")),
            );
            std::fs::write(&cert_path, cert.pem()).unwrap();
            std::fs::write(&key_path, key.serialize_pem()).unwrap();
            TlsOptions {
                ca: Some(dir.join(format!("{trusted}.pem"))),
                cert: Some(cert_path),
                key: Some(key_path),
                insecure: false,
            }
        }
    }

    /// Answers `AppendEntries` with the role of the caller's certificate.
    struct EchoRole;

    #[tonic::async_trait]
    impl crate::pb::raft_server::Raft for EchoRole {
        async fn append_entries(
            &self,
            request: tonic::Request<crate::pb::RaftMessage>,
        ) -> Result<tonic::Response<crate::pb::RaftMessage>, Status> {
            let role = peer_role(&request)?;
            Ok(tonic::Response::new(crate::pb::RaftMessage {
                payload: role.name().as_bytes().to_vec(),
            }))
        }
        async fn vote(
            &self,
            _: tonic::Request<crate::pb::RaftMessage>,
        ) -> Result<tonic::Response<crate::pb::RaftMessage>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn install_snapshot(
            &self,
            _: tonic::Request<crate::pb::RaftMessage>,
        ) -> Result<tonic::Response<crate::pb::RaftMessage>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn start_election(
            &self,
            _: tonic::Request<crate::pb::StartElectionRequest>,
        ) -> Result<tonic::Response<crate::pb::StartElectionReply>, Status> {
            Err(Status::unimplemented("test"))
        }
    }

    /// Calls `AppendEntries` at `addr` over `scheme`, with `tls` if any: the role the server
    /// read, or the call's status.
    async fn call(addr: &str, scheme: &str, tls: Option<&Tls>) -> Result<String, Status> {
        let mut endpoint =
            tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}")).unwrap();
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls.client()).unwrap();
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|err| Status::unavailable(format!("{err:?}")))?;
        let mut client = crate::pb::raft_client::RaftClient::new(channel);
        let reply = client
            .append_entries(crate::pb::RaftMessage::default())
            .await?;
        Ok(String::from_utf8(reply.into_inner().payload).unwrap())
    }

    #[tokio::test]
    async fn mutual_tls_admits_the_cluster_s_certificates_and_checks_their_role() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let (ca, other) = (Authority::new(path, "ca"), Authority::new(path, "other"));
        let server = ca
            .issue(path, "ca", Role::Master, "server")
            .load()
            .unwrap()
            .unwrap();
        assert_eq!(server.role(), Role::Master);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // Only masters may call this service.
        let service = crate::pb::raft_server::RaftServer::with_interceptor(EchoRole, |request| {
            require_role(&request, &[Role::Master]).map(|()| request)
        });
        let serving = tokio::spawn(
            tonic::transport::Server::builder()
                .tls_config(server.server())
                .unwrap()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );

        let master = ca.issue(path, "ca", Role::Master, "m2").load().unwrap();
        assert_eq!(
            call(&addr, "https", master.as_ref()).await.unwrap(),
            "master"
        );

        let client = ca.issue(path, "ca", Role::Client, "c").load().unwrap();
        let refused = call(&addr, "https", client.as_ref()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("client certificate may not"));

        // A certificate of another CA, presented to this cluster: the handshake fails.
        let stranger = other.issue(path, "ca", Role::Master, "x").load().unwrap();
        let refused = call(&addr, "https", stranger.as_ref()).await.unwrap_err();
        assert!(format!("{refused:?}").contains("UnknownCA"), "{refused:?}");

        // A server of another CA is not trusted by this cluster's members.
        let trusting_other = ca.issue(path, "other", Role::Master, "y").load().unwrap();
        let refused = call(&addr, "https", trusting_other.as_ref())
            .await
            .unwrap_err();
        assert!(
            format!("{refused:?}").contains("UnknownIssuer"),
            "{refused:?}"
        );

        // No TLS at all: no answer.
        let refused = call(&addr, "http", None).await.unwrap_err();
        assert!(refused.message().contains("transport error"), "{refused:?}");
        serving.abort();
    }

    #[test]
    fn certificates_are_all_or_nothing_and_must_name_a_role() {
        assert!(matches!(
            TlsOptions::default().load(),
            Err(TlsError::Missing)
        ));
        assert!(TlsOptions::insecure().load().unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::new(dir.path(), "ca");
        let mut options = ca.issue(dir.path(), "ca", Role::Client, "c");
        options.key = None;
        assert!(matches!(options.load(), Err(TlsError::Incomplete)));
        let mut options = ca.issue(dir.path(), "ca", Role::Client, "e");
        options.insecure = true;
        assert!(matches!(options.load(), Err(TlsError::Contradiction)));
        // The CA's own certificate names no role.
        let mut options = ca.issue(dir.path(), "ca", Role::Client, "d");
        options.cert = Some(dir.path().join("ca.pem"));
        assert!(matches!(
            options.load(),
            Err(TlsError::Role {
                source: RoleError::Missing,
                ..
            })
        ));
    }

    #[test]
    fn a_client_given_nothing_takes_its_certificates_from_the_default_directory() {
        let dir = tempfile::tempdir().unwrap();
        let none = TlsOptions::default().load_client_from(dir.path());
        let Err(err @ TlsError::MissingClient(_)) = none else {
            panic!("an empty directory holds no certificates: {none:?}");
        };
        assert!(err.to_string().contains("--insecure"), "{err}");

        let ca = Authority::new(dir.path(), "ca");
        let issued = ca.issue(dir.path(), "ca", Role::Client, "client");
        std::fs::rename(issued.cert.unwrap(), dir.path().join("client.pem")).unwrap();
        let tls = TlsOptions::default().load_client_from(dir.path()).unwrap();
        assert_eq!(tls.map(|t| t.role()), Some(Role::Client));
        // Given options win over the directory.
        let plain = TlsOptions::insecure().load_client_from(dir.path()).unwrap();
        assert!(plain.is_none());
    }
}
