//! A throwaway PKI for TLS tests: a CA, a server certificate it signed for `localhost` and
//! 127.0.0.1, the server's key, and an unrelated CA, as PEM files in a temporary directory
//! that is removed on drop.
#![allow(dead_code)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::PathBuf;

/// PEM files for one test: a CA, a server certificate it signed for `localhost` and
/// 127.0.0.1, the server key, and an unrelated CA.
pub(crate) struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub(crate) fn new(name: &str) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("switchboard-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "switchboard test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = params.signed_by(&server_key, &issuer).unwrap();

        let other_key = KeyPair::generate().unwrap();
        let mut other = CertificateParams::new(Vec::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other_cert = other.self_signed(&other_key).unwrap();

        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("other-ca.pem"), other_cert.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), server_cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), server_key.serialize_pem()).unwrap();
        Pki { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
