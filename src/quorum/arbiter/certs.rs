//! Certificates for the arbiter, in the shapes corosync-qdevice expects.
//!
//! What corosync-qdevice (NSS) checks, from its source and the lab (tests/corosync-lab):
//! * the server certificate must chain to the CA imported into the node's NSS db with
//!   `corosync-qdevice-net-certutil -i -c qnetd-cacert.crt`, and its name must match
//!   "Qnetd Server" (NSS `SSL_SetURL`; no SAN → the CN is compared). An expired server
//!   certificate is only warned about.
//! * the node presents the "Cluster Cert" whose CN is the cluster name; corosync-qnetd
//!   checks the chain and `CN == cluster name` (from PREINIT).
//!
//! So `twonode arbiter certs init` plays `corosync-qnetd-certutil -i` (a CA + a server
//! certificate, here as PEM files rustls reads, plus `qnetd-cacert.crt` for the nodes), and
//! `twonode arbiter certs sign` plays `corosync-qnetd-certutil -s -c qdevice-net-node.crq -n
//! CLUSTER`: the nodes keep using `corosync-qdevice-net-certutil` unchanged (-i, -r, -M, -m).
//! `twonode arbiter certs import-nssdb` takes over an existing qnetd NSS database (its CA and
//! "QNetd Cert" key), so clusters keep their certificates when corosync-qnetd is replaced.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
};

/// The name corosync-qdevice expects in the server certificate.
pub const SERVER_CN: &str = "Qnetd Server";
/// File names inside the certificate directory.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";
/// Same name as corosync-qnetd-certutil's export, to copy to the nodes.
pub const QNETD_CACERT: &str = "qnetd-cacert.crt";

/// Paths of the files in a certificate directory.
#[derive(Debug, Clone)]
pub struct CertDir {
    pub dir: PathBuf,
}

impl CertDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CertDir { dir: dir.into() }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn random_serial() -> anyhow::Result<SerialNumber> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom for a certificate serial number")?;
    b[0] &= 0x7f; // positive INTEGER
    b[0] |= 0x01; // no leading zero byte
    Ok(SerialNumber::from_slice(&b))
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365 * years);
}

/// Write `data` to `path` atomically (temp file + rename) with `mode`; an existing file is kept
/// unless `overwrite`.
fn write_file(path: &Path, data: &[u8], mode: u32, overwrite: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !overwrite && path.exists() {
        bail!("{} already exists; remove it (or pick another --dir) to create a new one", path.display());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data).with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all().ok();
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// What `init` created.
#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub qnetd_cacert: PathBuf,
}

/// Create a CA and a server certificate ("Qnetd Server") signed by it, in `dir`.
pub fn init(dir: &CertDir) -> anyhow::Result<InitReport> {
    std::fs::create_dir_all(&dir.dir).with_context(|| format!("creating {}", dir.dir.display()))?;
    for f in [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY] {
        if dir.path(f).exists() {
            bail!(
                "{} already exists: this directory already holds an arbiter CA; delete the directory to start over \
                 (the nodes would then need new certificates too)",
                dir.path(f).display()
            );
        }
    }
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, "twonode arbiter CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.serial_number = Some(random_serial()?);
    validity(&mut ca, 100);
    let ca_cert = ca.self_signed(&ca_key).context("self-signing the CA")?;

    let srv_key = KeyPair::generate().context("generating the server key")?;
    let mut srv = CertificateParams::default();
    srv.distinguished_name = DistinguishedName::new();
    srv.distinguished_name.push(DnType::CommonName, SERVER_CN);
    srv.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    srv.serial_number = Some(random_serial()?);
    validity(&mut srv, 100);
    let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key).context("signing the server certificate")?;

    write_file(&dir.path(CA_KEY), ca_key.serialize_pem().as_bytes(), 0o600, false)?;
    write_file(&dir.path(CA_CERT), ca_cert.pem().as_bytes(), 0o644, false)?;
    write_file(&dir.path(SERVER_KEY), srv_key.serialize_pem().as_bytes(), 0o600, false)?;
    write_file(&dir.path(SERVER_CERT), srv_cert.pem().as_bytes(), 0o644, false)?;
    write_file(&dir.path(QNETD_CACERT), ca_cert.pem().as_bytes(), 0o644, true)?;
    Ok(InitReport {
        ca_cert: dir.path(CA_CERT),
        ca_key: dir.path(CA_KEY),
        server_cert: dir.path(SERVER_CERT),
        server_key: dir.path(SERVER_KEY),
        qnetd_cacert: dir.path(QNETD_CACERT),
    })
}

fn load_ca(dir: &CertDir) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
    let cert_pem = std::fs::read_to_string(dir.path(CA_CERT))
        .with_context(|| format!("reading {} (run `twonode arbiter certs init --dir {}` first)", dir.path(CA_CERT).display(), dir.dir.display()))?;
    let key_pem = std::fs::read_to_string(dir.path(CA_KEY))
        .with_context(|| format!("reading {}", dir.path(CA_KEY).display()))?;
    let key = KeyPair::from_pem(&key_pem).with_context(|| format!("parsing the CA key {}", dir.path(CA_KEY).display()))?;
    let params = CertificateParams::from_ca_cert_pem(&cert_pem)
        .with_context(|| format!("parsing the CA certificate {}", dir.path(CA_CERT).display()))?;
    // rcgen needs a Certificate object as issuer; re-signing the parsed params with the same key
    // yields the same subject and key identifier, which is all the issued certificates refer to.
    let cert = params.self_signed(&key).context("loading the CA")?;
    Ok((cert, key))
}

/// The first CN of a DER certificate or CSR subject.
pub fn cert_common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

/// Read a PEM or DER blob: the DER of the first PEM block with `label`, or the bytes as they are.
fn der_of(bytes: &[u8], label: &str) -> Vec<u8> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Some(start) = text.find(&format!("-----BEGIN {label}")) {
            let rest = &text[start..];
            if let Some(body_start) = rest.find('\n') {
                let body = &rest[body_start + 1..];
                if let Some(end) = body.find("-----END") {
                    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
                    if let Ok(der) = base64_decode(&b64) {
                        return der;
                    }
                }
            }
        }
    }
    bytes.to_vec()
}

fn base64_decode(s: &str) -> Result<Vec<u8>, ()> {
    // rustls-pemfile only knows the standard labels; NSS writes "NEW CERTIFICATE REQUEST".
    let item = format!("-----BEGIN CERTIFICATE REQUEST-----\n{s}\n-----END CERTIFICATE REQUEST-----\n");
    let mut rd = std::io::BufReader::new(item.as_bytes());
    match rustls_pemfile::read_one(&mut rd) {
        Ok(Some(rustls_pemfile::Item::Csr(der))) => Ok(der.as_ref().to_vec()),
        _ => Err(()),
    }
}

/// What `sign` produced.
#[derive(Debug, serde::Serialize)]
pub struct SignReport {
    pub cluster: String,
    pub certificate: PathBuf,
}

/// Sign a node's certificate request (`qdevice-net-node.crq` from `corosync-qdevice-net-certutil
/// -r -n CLUSTER`, DER or PEM) for `cluster`; the CN of the request must be the cluster name.
pub fn sign(dir: &CertDir, csr_path: &Path, cluster: &str, out: &Path) -> anyhow::Result<SignReport> {
    let (ca_cert, ca_key) = load_ca(dir)?;
    let raw = std::fs::read(csr_path).with_context(|| format!("reading the certificate request {}", csr_path.display()))?;
    let der = der_of(&raw, "NEW CERTIFICATE REQUEST");
    let der = if der == raw { der_of(&raw, "CERTIFICATE REQUEST") } else { der };
    let req = CertificateSigningRequestParams::from_der(&der.as_slice().into()).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a certificate request this tool can sign ({e}); make it with \
             `corosync-qdevice-net-certutil -r -n {cluster}` on one node",
            csr_path.display()
        )
    })?;
    let cn = req
        .params
        .distinguished_name
        .get(&DnType::CommonName)
        .and_then(|v| match v {
            rcgen::DnValue::PrintableString(s) => Some(s.to_string()),
            rcgen::DnValue::Utf8String(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default();
    if cn != cluster {
        bail!(
            "the request {} is for CN={cn:?}, not the cluster name {cluster:?}; corosync-qnetd and twonode's arbiter \
             refuse a client whose certificate CN differs from totem.cluster_name. Make a new request with \
             `corosync-qdevice-net-certutil -r -n {cluster}`",
            csr_path.display()
        );
    }
    let mut req = req;
    req.params.serial_number = Some(random_serial()?);
    validity(&mut req.params, 100);
    req.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    req.params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    let cert = req.signed_by(&ca_cert, &ca_key).context("signing the cluster certificate")?;
    write_file(out, cert.pem().as_bytes(), 0o644, true)?;
    Ok(SignReport { cluster: cluster.to_string(), certificate: out.to_path_buf() })
}

/// A client certificate and key (PEM) for `cluster`, signed by the CA in `dir`: for test clients
/// and the load generator (real nodes get theirs through `sign`).
pub fn client_pem(dir: &CertDir, cluster: &str) -> anyhow::Result<(String, String)> {
    let (ca_cert, ca_key) = load_ca(dir)?;
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cluster);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.serial_number = Some(random_serial()?);
    validity(&mut p, 10);
    let cert = p.signed_by(&key, &ca_cert, &ca_key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What `import_nssdb` wrote.
#[derive(Debug, serde::Serialize)]
pub struct ImportReport {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn run_tool(argv: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {} (is it installed? Debian: libnss3-tools / openssl)", argv[0]))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Take over an existing corosync-qnetd NSS database (default /etc/corosync/qnetd/nssdb): export
/// its CA ("QNet CA") and server certificate + key ("QNetd Cert") to PEM files in `dir`, so the
/// nodes keep their current certificates. Uses certutil/pk12util (libnss3-tools) and openssl; the
/// PKCS#12 transport password is random, passed in a 0600 file, never on a command line.
pub fn import_nssdb(nssdb: &Path, dir: &CertDir) -> anyhow::Result<ImportReport> {
    std::fs::create_dir_all(&dir.dir).with_context(|| format!("creating {}", dir.dir.display()))?;
    let db = format!("sql:{}", nssdb.display());
    let db_legacy = nssdb.display().to_string();
    let dbarg = if nssdb.join("cert9.db").exists() { db } else { db_legacy };
    let ca_pem = run_tool(&["certutil", "-L", "-d", &dbarg, "-n", "QNet CA", "-a"])
        .context("exporting the CA \"QNet CA\" from the qnetd NSS database")?;
    let srv_pem = run_tool(&["certutil", "-L", "-d", &dbarg, "-n", "QNetd Cert", "-a"])
        .context("exporting the server certificate \"QNetd Cert\"")?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let pw = tmp.path().join("pw");
    let mut pass = [0u8; 16];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut pass)?;
    }
    let pass: String = pass.iter().map(|b| format!("{b:02x}")).collect();
    write_file(&pw, pass.as_bytes(), 0o600, true)?;
    let p12 = tmp.path().join("server.p12");
    let empty = tmp.path().join("dbpw");
    // the qnetd db has an empty password (pwdfile.txt); pass it explicitly so nothing prompts
    let dbpw = nssdb.join("pwdfile.txt");
    let dbpw = if dbpw.exists() { dbpw } else {
        write_file(&empty, b"", 0o600, true)?;
        empty
    };
    run_tool(&[
        "pk12util", "-o", &p12.to_string_lossy(), "-n", "QNetd Cert", "-d", &dbarg,
        "-k", &dbpw.to_string_lossy(), "-w", &pw.to_string_lossy(),
    ])
    .context("exporting the server key with pk12util")?;
    let key_pem = run_tool(&[
        "openssl", "pkcs12", "-in", &p12.to_string_lossy(), "-nocerts", "-nodes",
        "-passin", &format!("file:{}", pw.display()),
    ])
    .context("converting the PKCS#12 key to PEM with openssl")?;
    // keep only the key block (openssl prints "Bag Attributes" lines first)
    let key_text = String::from_utf8_lossy(&key_pem);
    let start = key_text.find("-----BEGIN").context("openssl printed no key")?;
    let key_only = &key_text[start..];
    write_file(&dir.path(CA_CERT), &ca_pem, 0o644, true)?;
    write_file(&dir.path(QNETD_CACERT), &ca_pem, 0o644, true)?;
    write_file(&dir.path(SERVER_CERT), &srv_pem, 0o644, true)?;
    write_file(&dir.path(SERVER_KEY), key_only.as_bytes(), 0o600, true)?;
    Ok(ImportReport { ca_cert: dir.path(CA_CERT), server_cert: dir.path(SERVER_CERT), server_key: dir.path(SERVER_KEY) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_sign_a_request_for_the_cluster() {
        let t = tempfile::tempdir().unwrap();
        let d = CertDir::new(t.path().join("tls"));
        init(&d).unwrap();
        assert!(init(&d).is_err(), "init refuses to overwrite an existing CA");
        let srv = std::fs::read(d.path(SERVER_CERT)).unwrap();
        let der = der_of(&srv, "CERTIFICATE");
        assert_eq!(cert_common_name(&der).as_deref(), Some(SERVER_CN));
        // a request like corosync-qdevice-net-certutil -r -n qlab makes (PEM here)
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "qlab");
        let csr = p.serialize_request(&key).unwrap();
        let csr_path = t.path().join("qdevice-net-node.crq");
        std::fs::write(&csr_path, csr.der().as_ref()).unwrap();
        let out = t.path().join("cluster-qlab.crt");
        sign(&d, &csr_path, "qlab", &out).unwrap();
        let der = der_of(&std::fs::read(&out).unwrap(), "CERTIFICATE");
        assert_eq!(cert_common_name(&der).as_deref(), Some("qlab"));
        let err = sign(&d, &csr_path, "other", &out).unwrap_err().to_string();
        assert!(err.contains("not the cluster name"), "{err}");
    }
}
