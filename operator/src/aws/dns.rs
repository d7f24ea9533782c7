//! Name resolution for the one HTTP client: the system's, except for S3 Control's account host on a
//! loopback endpoint.
//!
//! S3 Control's endpoint rules put the account id in front of the endpoint's host
//! (`123456789012.s3-control.us-east-1.amazonaws.com`, and so `123456789012.127.0.0.1` for an
//! emulator at `http://127.0.0.1:PORT`). No resolver answers for such a name, so a loopback
//! address with an account id before it resolves to that address: the same server, which tells
//! the account by the request's Host header, as S3 Control does. Any other name goes to the system.

use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use std::net::IpAddr;

#[derive(Clone, Debug, Default)]
pub struct Resolver;

/// The loopback address `name` stands for, when it is `<account id>.<loopback address>`.
pub fn account_host_on_loopback(name: &str) -> Option<IpAddr> {
    let (account, rest) = name.split_once('.')?;
    let ip: IpAddr = rest.trim_matches(['[', ']']).parse().ok()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && ip.is_loopback())
        .then_some(ip)
}

impl ResolveDns for Resolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        DnsFuture::new(async move {
            if let Some(ip) = account_host_on_loopback(name) {
                return Ok(vec![ip]);
            }
            let found = tokio::net::lookup_host((name, 0))
                .await
                .map_err(ResolveDnsError::new)?;
            Ok(found.map(|a| a.ip()).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_account_id_before_a_loopback_address_is_answered_here() {
        let cases = [
            ("123456789012.127.0.0.1", Some("127.0.0.1")),
            ("123456789012.127.0.0.2", Some("127.0.0.2")),
            ("123456789012.[::1]", Some("::1")),
            ("123456789012.10.0.0.1", None),
            ("12345.127.0.0.1", None),
            ("123456789012.s3-control.us-east-1.amazonaws.com", None),
            ("127.0.0.1", None),
            ("abcdefghijkl.127.0.0.1", None),
        ];
        for (name, want) in cases {
            assert_eq!(
                account_host_on_loopback(name),
                want.map(|w| w.parse().unwrap()),
                "{name}"
            );
        }
    }
}
