//! The alert outbox: [`crate::state::outbox`] holding [`Alert`]s. The
//! store owns the keys and the encoding; alert delivery only reads and
//! advances it.

use super::Alert;

pub use crate::state::outbox::{OpenSource, RetryState, Superseded};

/// The outbox of [`Alert`]s.
pub type Outbox = crate::state::outbox::Outbox<Alert>;

/// An [`Alert`] a sink gave up on.
pub type DeadLetter = crate::state::outbox::DeadLetter<Alert>;

/// An [`Alert`] a sink set aside (see `alert::aside`).
pub type SetAside = crate::state::outbox::SetAside<Alert>;
