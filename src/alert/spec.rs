//! What a sink is: where it sends alerts ([`Target`]), which it wants
//! ([`Filter`]) and how long it keeps trying ([`RetryPolicy`]), as the
//! configuration builds it (`config::SinkConfig::spec`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Alert;
pub use super::ratelimit::RetryPolicy;
pub use super::webhook::Webhook;
use crate::detect::Severity;

/// Where a sink sends alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// JSON lines appended to a file, or stdout (`None`).
    Lines(Option<PathBuf>),
    Webhook(Webhook),
}

/// Which alerts a sink wants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Only these services (empty: all).
    #[serde(default)]
    pub services: Vec<String>,
    /// Only alerts at least this severe.
    #[serde(default)]
    pub min_severity: Option<Severity>,
}

impl Filter {
    pub fn accepts(&self, alert: &Alert) -> bool {
        let service = self.services.is_empty() || self.services.contains(&alert.service);
        let severity = self.min_severity.is_none_or(|min| alert.severity >= min);
        service && severity
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkSpec {
    pub name: String,
    /// The name it had before a rename: what the outbox keeps under that
    /// name moves to this one at the start ([`crate::alert::deliver::settle_absent_sinks`]).
    pub formerly: Option<String>,
    pub target: Target,
    pub filter: Filter,
    pub retry: RetryPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_service_and_severity() {
        let alert = crate::alert::format::sample_alert();
        let all = Filter::default();
        assert!(all.accepts(&alert));
        let other = Filter {
            services: vec!["github".into()],
            min_severity: None,
        };
        assert!(!other.accepts(&alert));
        let high = Filter {
            services: vec![],
            min_severity: Some(Severity::High),
        };
        assert!(!high.accepts(&alert), "a medium alert");
        let medium = Filter {
            services: vec!["discord".into()],
            min_severity: Some(Severity::Medium),
        };
        assert!(medium.accepts(&alert));
    }
}
