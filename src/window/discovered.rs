//! Admission of discovered services (named by `#FooDown` or `foo.com`, not
//! in the catalogue): at most `capacity` names are tracked at once, least
//! recently seen first out, and a name is only evicted once it has been
//! quiet for `ttl`. A flood of random hashtags therefore cannot grow the
//! windows, the detector or the store without bound; what is turned away is
//! counted.

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::Micros;

#[derive(Debug)]
pub struct DiscoveredNames {
    names: LruCache<String, Micros>,
    ttl_us: Micros,
    rejected: u64,
}

impl DiscoveredNames {
    pub fn new(capacity: usize, ttl_us: Micros) -> Self {
        DiscoveredNames {
            names: LruCache::new(NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN)),
            ttl_us,
            rejected: 0,
        }
    }

    /// Whether reports for `name` may be counted at event time `now`.
    pub fn admit(&mut self, name: &str, now: Micros) -> bool {
        if let Some(seen) = self.names.get_mut(name) {
            *seen = (*seen).max(now);
            return true;
        }
        if self.names.len() == self.names.cap().get() {
            match self.names.peek_lru() {
                Some((_, &seen)) if now - seen >= self.ttl_us => {
                    self.names.pop_lru();
                }
                _ => {
                    self.rejected += 1;
                    return false;
                }
            }
        }
        self.names.put(name.to_owned(), now);
        true
    }

    /// Reports turned away because the table was full of recent names.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_names_is_bounded_and_counted() {
        let mut names = DiscoveredNames::new(3, 100);
        assert!(names.admit("a", 0));
        assert!(names.admit("b", 1));
        assert!(names.admit("c", 2));
        assert!(!names.admit("d", 50), "full of names seen within the ttl");
        assert!(names.admit("a", 60), "known names stay admitted");
        assert_eq!(names.rejected(), 1);
        assert!(names.admit("e", 101), "b, quiet for the ttl, makes room");
        assert!(!names.admit("b", 101), "c, a and e are all recent now");
        assert!(names.admit("f", 102), "c went quiet and makes room");
        assert_eq!(names.rejected(), 2);
    }
}
