//! Who a certificate says its holder is: every certificate of a dfs cluster names one
//! [`Role`], as a URI in its subject alternative names (`urn:dfs:role:master`), so that a
//! server can tell a master from a chunkserver from a client by the certificate the TLS
//! handshake verified, whatever the peer claims in its requests.
//!
//! The cluster's certificate authority and the certificates it issues come from the `dfs`
//! command (`dfs ca init`, `dfs cert issue`).

use std::fmt;
use std::str::FromStr;

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
    fn bytes_that_are_no_certificate_name_no_role() {
        assert!(matches!(
            role_of(b"\x30\x03\x02\x01"),
            Err(RoleError::Malformed(_))
        ));
        assert!(matches!(role_of(&[]), Err(RoleError::Malformed(_))));
    }
}
