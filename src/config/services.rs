//! The names a sink's `services` filter may hold. The filter compares
//! names exactly, so a name no alert can carry (`Twitter`, `twiter`) made
//! a sink that silently never got the alerts its user meant it to.

use super::Config;

/// Why `name` can never be the `service` of an alert, if it cannot: an
/// alert's service is a catalogued id or a discovered name (lower-case
/// letters and digits, ids also `-`), `source:NAME` or `upstream:PROVIDER`.
pub(super) fn form_error(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    if lower != name {
        return Some(format!(
            "{name:?} has capitals, and service ids are lower case: write {lower:?}"
        ));
    }
    let bare = name
        .strip_prefix("source:")
        .or_else(|| name.strip_prefix("upstream:"))
        .unwrap_or(name);
    if bare.is_empty() || !bare.chars().all(|c| c.is_alphanumeric() || c == '-') {
        return Some(format!(
            "{name:?} is no service name: a catalogued service id (`twitter`), a discovered \
             name (its letters and digits), `source:NAME` or `upstream:PROVIDER`"
        ));
    }
    None
}

impl Config {
    /// One warning for each sink `services` name that is not a catalogued
    /// id (`ids`) nor a `source:`/`upstream:` name: only a discovered
    /// service of exactly that name reaches the sink, which a typo never
    /// is; with the closest catalogued id when one is near.
    pub fn uncatalogued_sink_services(&self, ids: &[&str]) -> Vec<String> {
        let mut warnings = Vec::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            for name in &sink.services {
                if name.starts_with("source:")
                    || name.starts_with("upstream:")
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
        let refused = [
            ("Twitter", "write \"twitter\""),
            ("SOURCE:bluesky", "write \"source:bluesky\""),
            ("twitter ", "is no service name"),
            ("", "is no service name"),
            ("source:", "is no service name"),
            ("a.com", "is no service name"),
        ];
        for (name, says) in refused {
            let error = form_error(name).unwrap_or_default();
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
            assert_eq!(form_error(name), None, "{name}");
        }
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
