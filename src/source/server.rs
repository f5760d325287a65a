//! The server that vouches for an account whose name is a host's (see
//! [`crate::source::Source::server_of`]): a Mastodon account, or a
//! Bluesky identity of the `did:web` method. Whoever holds a domain can
//! make as many accounts, and as many subdomains, as they like, so the
//! server is the part of the account's host that costs something to hold.

use std::net::IpAddr;

/// The server of `author` (`name@host`, or a bare host): the host
/// without its port, lower-cased, cut to its registrable domain under
/// the public suffix list's ICANN section (`a1.evil.social` and
/// `a2.evil.social` are `evil.social`; `example.co.uk` and `town.co.uk`
/// are two). Under a private suffix (a hosting service's: anyone gets a
/// `*.trycloudflare.com` or `*.github.io` for free) it is the hosting
/// service. An address stands for its network (a /24 or a /48), as one
/// holder's addresses usually share one.
pub fn account_server(author: &str) -> String {
    let host = author.rsplit_once('@').map_or(author, |(_, host)| host);
    let host = without_port(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if let Ok(address) = host.parse::<IpAddr>() {
        return network(address.to_canonical());
    }
    icann_domain(&host).to_owned()
}

/// The host a `did:web` identity is named by (`did:web:a1.evil.social`,
/// with a port as `%3A8080` and a path as `:user:alice`), or `None` for
/// any other method. A `did:plc` names no server: its document is kept
/// by the PLC directory, and the frame does not say which server holds
/// the account.
pub fn did_web_host(did: &str) -> Option<&str> {
    let id = did.strip_prefix("did:web:")?;
    // The host ends at its encoded port (`%3A`) or at the path's first `:`.
    Some(id.split([':', '%']).next().unwrap_or(id))
}

/// `host` without a `:port` (`[v6]:port` without the brackets too).
fn without_port(host: &str) -> &str {
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed
            .split_once(']')
            .map_or(bracketed, |(address, _)| address);
    }
    match host.rsplit_once(':') {
        // Only a name's port: a bare IPv6 address has several colons.
        Some((name, port))
            if !name.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    }
}

/// The network an address belongs to, as its holder usually gets it.
fn network(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let [a, b, c, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}::/48")
        }
    }
}

/// `host`'s registrable domain under the ICANN section of the list.
/// Under a private suffix (a hosting service's) or one the list does not
/// know (`.i2p`, a made-up top-level name), whose names cost nothing or
/// nobody vouches for, it is that suffix itself; so is it for `.onion`,
/// where a name is a key anyone can make. A host with no registrable
/// domain (a bare suffix, `localhost`) is its own.
fn icann_domain(host: &str) -> &str {
    let Some(domain) = psl::domain(host.as_bytes()) else {
        return host;
    };
    let suffix = domain.suffix();
    let free = suffix.typ() != Some(psl::Type::Icann) || suffix.as_bytes() == b"onion";
    let keep = if free {
        suffix.as_bytes().len()
    } else {
        domain.as_bytes().len()
    };
    // The list matches whole labels, so the cut falls after a dot.
    host.get(host.len().saturating_sub(keep)..).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Subdomains of one domain are one server, a shared suffix (`co.uk`)
    /// is not; capitals, a trailing dot and a port change nothing; free
    /// subdomains of a hosting service are the service, and so are names
    /// under a suffix nobody vouches for; an address is its network.
    #[test]
    fn an_accounts_server_is_what_costs_something_to_hold() {
        for (author, server) in [
            ("alice@mastodon.social", "mastodon.social"),
            ("bob@a1.evil.social", "evil.social"),
            ("bob@A2.Evil.Social", "evil.social"),
            ("bob@a3.evil.social.", "evil.social"),
            ("bob@evil.social:1001", "evil.social"),
            ("cat@social.example.co.uk", "example.co.uk"),
            ("dan@other.example.co.uk", "example.co.uk"),
            ("eve@town.co.uk", "town.co.uk"),
            ("tun@x1.trycloudflare.com", "trycloudflare.com"),
            ("tun@x2.trycloudflare.com:443", "trycloudflare.com"),
            ("pages@someone.github.io", "github.io"),
            ("hidden@abcdefgh.onion", "onion"),
            ("i2p@abcdefgh.i2p", "i2p"),
            ("made@up.example", "example"),
            ("mapped@[::ffff:192.0.2.9]", "192.0.2.0/24"),
            ("fay@192.0.2.7", "192.0.2.0/24"),
            ("fay@192.0.2.200:4000", "192.0.2.0/24"),
            ("fay@[2001:db8:1:2::1]", "2001:db8:1::/48"),
            ("fay@[2001:db8:1:3::1]:443", "2001:db8:1::/48"),
            ("fay@2001:db8:1:4::9", "2001:db8:1::/48"),
            ("gus@localhost", "localhost"),
            ("gus@localhost:3000", "localhost"),
            ("a@b@host.social", "host.social"),
            ("nohost@", ""),
        ] {
            assert_eq!(account_server(author), server, "{author}");
        }
    }

    /// A `did:web` identity is its host's, port and path aside, and takes
    /// that host's server; any other method (`did:plc`) names none.
    #[test]
    fn a_did_web_identity_is_its_hosts() {
        for (did, server) in [
            ("did:web:a1.evil.social", Some("evil.social")),
            ("did:web:A2.Evil.Social", Some("evil.social")),
            ("did:web:a3.evil.social%3A8080", Some("evil.social")),
            ("did:web:a4.evil.social%3a8080", Some("evil.social")),
            ("did:web:evil.social:user:alice", Some("evil.social")),
            ("did:web:town.co.uk", Some("town.co.uk")),
            ("did:web:someone.github.io", Some("github.io")),
            ("did:web:", Some("")),
            ("did:plc:ewvi7nxzyoun6zhxrhs64oiz", None),
            ("did:webby:evil.social", None),
            ("web:evil.social", None),
            ("", None),
        ] {
            assert_eq!(
                did_web_host(did).map(account_server).as_deref(),
                server,
                "{did}"
            );
        }
    }
}
