//! The names a sink's `services` filter may hold. The filter compares
//! names exactly, so a name no alert can carry (`Twitter`, `twiter`) made
//! a sink that silently never got the alerts its user meant it to.

use super::Config;

/// Why `name` can never be the `service` of an alert, if it cannot: an
/// alert's service is a catalogued id or a discovered name (lower-case
/// letters and digits, ids also `-`), `upstream:PROVIDER`, or
/// `source:NAME` where NAME is one of `sources`, the configured sources'
/// and connections' names. Those are free-form (`mastodon.social`, a
/// Nostr relay's `nostr:relay.example`), so they are compared with what
/// is configured rather than held to a service name's characters.
pub(super) fn form_error(name: &str, sources: &[String]) -> Option<String> {
    if let Some(source) = name.strip_prefix("source:") {
        if sources.iter().any(|s| s == source) {
            return None;
        }
        let known: Vec<String> = sources.iter().map(|s| format!("source:{s}")).collect();
        return Some(format!(
            "{name:?} names no configured source or connection: a source's alerts are one of {}",
            known.join(", ")
        ));
    }
    let lower = name.to_lowercase();
    if lower != name {
        return Some(format!(
            "{name:?} has capitals, and service ids are lower case: write {lower:?}"
        ));
    }
    let bare = name.strip_prefix(crate::detect::UPSTREAM).unwrap_or(name);
    if bare.is_empty() || !bare.chars().all(|c| c.is_alphanumeric() || c == '-') {
        return Some(format!(
            "{name:?} is no service name: a catalogued service id (`twitter`), a discovered \
             name (its letters and digits), `source:NAME` or `upstream:PROVIDER`"
        ));
    }
    None
}

impl Config {
    /// The names a `source:NAME` alert can carry: every configured source
    /// and each of its connections (a Nostr source with several relays
    /// has one per relay, `NAME:host`).
    pub(super) fn source_alert_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for source in &self.sources {
            names.push(source.name.clone());
            names.extend(source.connections().into_iter().map(|c| c.name));
        }
        names.sort();
        names.dedup();
        names
    }

    /// One warning for each sink `services` name that is not a catalogued
    /// id (`ids`) nor a `source:`/`upstream:` name: only a discovered
    /// service of exactly that name reaches the sink, which a typo never
    /// is; with the closest catalogued id when one is near.
    pub fn uncatalogued_sink_services(&self, ids: &[&str]) -> Vec<String> {
        let mut warnings = Vec::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            for name in &sink.services {
                if name.starts_with("source:")
                    || crate::detect::is_upstream(name)
                    || ids.contains(&name.as_str())
                {
                    continue;
                }
                let closest = ids
                    .iter()
                    .map(|&id| (strsim::damerau_levenshtein(id, name), id))
                    .filter(|(distance, id)| *distance <= 2.max(id.len() / 4))
                    .min();
                let hint = match closest {
                    Some((_, id)) => format!("; did you mean {id:?}?"),
                    None => String::new(),
                };
                warnings.push(format!(
                    "sinks[{i}].services: {name:?} is not a catalogued service: sink {:?} gets \
                     its alerts only if a service of exactly that name is discovered{hint}",
                    sink.name
                ));
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SinkConfig;

    #[test]
    fn a_sink_service_name_no_alert_can_carry_is_refused() {
        let sources = ["bluesky".to_owned()];
        let refused = [
            ("Twitter", "write \"twitter\""),
            ("SOURCE:bluesky", "write \"source:bluesky\""),
            ("twitter ", "is no service name"),
            ("", "is no service name"),
            ("source:", "names no configured source"),
            ("source:blusky", "one of source:bluesky"),
            ("a.com", "is no service name"),
        ];
        for (name, says) in refused {
            let error = form_error(name, &sources).unwrap_or_default();
            assert!(error.contains(says), "{name:?}: {error}");
        }
        for name in [
            "twitter",
            "aws-s3",
            "blipfm",
            "source:bluesky",
            "upstream:aws",
            "落ちた",
        ] {
            assert_eq!(form_error(name, &sources), None, "{name}");
        }
    }

    /// Source and connection names are free-form: a filter naming one
    /// loads, one naming no configured source does not.
    #[test]
    fn a_sink_may_name_a_configured_source_or_connection() {
        let sources = "[[sources]]\nkind = \"mastodon\"\nname = \"mastodon.social\"\n\
            urls = [\"wss://mastodon.social/api/v1/streaming\"]\n\
            [[sources]]\nkind = \"nostr\"\nname = \"nostr\"\n\
            urls = [\"wss://relay.example\", \"wss://other.example\"]\n";
        let with = |services: &str| {
            format!(
                "{sources}[[sinks]]\nname = \"a\"\nurl = \"https://example.com/\"\n\
                 services = [{services}]\n"
            )
        };
        let path = std::path::Path::new("c.toml");
        for services in [
            "\"source:mastodon.social\"",
            "\"source:nostr\"",
            "\"source:nostr:relay.example\"",
        ] {
            let text = with(services);
            if let Err(e) = Config::parse(path, &text) {
                panic!("{services}: {e}");
            }
        }
        let error = Config::parse(path, &with("\"source:mastodon.online\""))
            .expect_err("no such source")
            .to_string();
        assert!(
            error.contains("source:mastodon.social")
                && error.contains("source:nostr:relay.example"),
            "{error}"
        );
    }

    #[test]
    fn a_config_with_a_capitalised_sink_service_does_not_load() {
        let text =
            "[[sinks]]\nname = \"a\"\nurl = \"https://example.com/\"\nservices = [\"Twitter\"]\n";
        let error = Config::parse(std::path::Path::new("c.toml"), text)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("write \"twitter\""), "{error}");
    }

    #[test]
    fn an_uncatalogued_sink_service_is_warned_of_with_the_closest_id() {
        let mut config = Config::default();
        let mut sink = SinkConfig::json("ops", "https://example.com/", None);
        sink.services = ["twiter", "twitter", "source:x", "upstream:aws", "zorblyfm"]
            .map(String::from)
            .to_vec();
        config.sinks.push(sink);
        let ids = ["twitter", "discord", "twitch"];
        let warnings = config.uncatalogued_sink_services(&ids);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("\"twiter\"") && warnings[0].contains("did you mean \"twitter\"?")
        );
        assert!(warnings[1].contains("\"zorblyfm\"") && !warnings[1].contains("did you mean"));
    }
}
