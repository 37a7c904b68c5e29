//! Reading certificates for the arbiter checks (the gate's client certificates, the arbiter's
//! own): when a PEM certificate ends and whom it names. Not a check area of its own.

/// Certificates closer than this to their end are a warning.
pub const CERT_WARN_DAYS: i64 = 30;

/// When a certificate ends, read from its PEM: (not_after unix time, subject CN).
pub fn cert_info(pem: &str) -> Result<(i64, Option<String>), String> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = p.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).map(String::from);
    Ok((cert.validity().not_after.timestamp(), cn))
}

/// A unix time as a date (UTC).
pub fn date_of(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
        .unwrap_or_else(|_| ts.to_string())
}
