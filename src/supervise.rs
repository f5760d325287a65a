//! Long-running tasks whose panic is seen when it happens, not when
//! someone finally awaits them.
//!
//! A tokio task's panic waits in its `JoinHandle` until the handle is
//! awaited. The daemon awaited its tasks only at shutdown, so a panicked
//! health monitor, sink or source left it running and answering "ready"
//! while it no longer raised source alerts, delivered alerts or read a
//! stream. Every long-running task is now spawned through
//! [`Supervisor::spawn`]: a panic is logged at once with the task's name,
//! and the first one is kept for whoever waits on [`Supervisor::failed`]
//! (the daemon and `record`, which stop in order and exit with a failure,
//! so that a service manager restarts them from their saved state). A panic
//! is a bug: restarting from the durable state is the one recovery that
//! does not guess what the task left half done.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Longest panic message kept (a message may quote outside data).
const MESSAGE_CHARS: usize = 300;

/// A task that panicked: which, and what it said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the task {task:?} panicked: {message}")]
pub struct TaskFailure {
    /// The name it was spawned under ("source jetstream", "sink slack").
    pub task: String,
    /// The panic's message, on one line.
    pub message: String,
}

/// Spawns tasks and reports the first one to panic. Cloning shares it.
#[derive(Clone)]
pub struct Supervisor {
    first: watch::Sender<Option<TaskFailure>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor {
            first: watch::Sender::new(None),
        }
    }

    /// Spawns `future` on the current runtime as the task `name`. Its
    /// handle ends normally after a panic too (the panic is reported
    /// here, not through the handle).
    pub fn spawn<F>(&self, name: impl Into<String>, future: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let first = self.first.clone();
        // The task's state is not looked at again after a panic: the
        // process stops, so nothing observes what it left half done.
        tokio::spawn(async move {
            if let Err(payload) = AssertUnwindSafe(future).catch_unwind().await {
                report(&first, name, payload.as_ref());
            }
        })
    }

    /// The first task to have panicked, if any has.
    pub fn failure(&self) -> Option<TaskFailure> {
        self.first.borrow().clone()
    }

    /// Resolves when a task has panicked (at once if one already has).
    pub async fn failed(&self) -> TaskFailure {
        let mut watching = self.first.subscribe();
        loop {
            if let Some(failure) = watching.borrow_and_update().clone() {
                return failure;
            }
            // The sender lives in `self`, so it is never gone while we wait.
            if watching.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Logs the panic and keeps it if it is the first.
fn report(
    first: &watch::Sender<Option<TaskFailure>>,
    task: String,
    payload: &(dyn std::any::Any + Send),
) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)");
    let message = crate::text::truncate_chars(&crate::text::one_line(message), MESSAGE_CHARS);
    tracing::error!(task = %task, panic = %message, "a task panicked: stopping in order, with a failure exit for a supervisor to restart from the saved state");
    let failure = TaskFailure { task, message };
    first.send_if_modified(|kept| {
        if kept.is_some() {
            return false;
        }
        *kept = Some(failure);
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_panic_is_reported_with_its_task_and_message() {
        let supervisor = Supervisor::new();
        assert_eq!(supervisor.failure(), None);
        let calm = supervisor.spawn("calm", async {});
        calm.await.expect("ends normally");
        assert_eq!(supervisor.failure(), None, "a task that ends is no failure");

        let waiting = tokio::spawn({
            let supervisor = supervisor.clone();
            async move { supervisor.failed().await }
        });
        let number = 7;
        let handle = supervisor.spawn("sink slack", async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("index {number}\nout of bounds");
        });
        handle
            .await
            .expect("the handle ends normally after a panic");
        let failure = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiter wakes")
            .expect("the waiter ends");
        assert_eq!(
            failure,
            TaskFailure {
                task: "sink slack".into(),
                message: "index 7 out of bounds".into(),
            }
        );
        assert_eq!(supervisor.failure(), Some(failure));
    }

    #[tokio::test]
    async fn the_first_panic_is_kept_and_a_late_waiter_sees_it_at_once() {
        let supervisor = Supervisor::new();
        supervisor
            .spawn("first", async { panic!("static text") })
            .await
            .expect("ends");
        supervisor
            .spawn("second", async { panic!("{}", "x".repeat(1000)) })
            .await
            .expect("ends");
        let failure = tokio::time::timeout(Duration::from_secs(10), supervisor.failed())
            .await
            .expect("already failed");
        assert_eq!(failure.task, "first");
        assert_eq!(failure.message, "static text");
    }

    #[tokio::test]
    async fn a_long_or_odd_panic_message_is_one_bounded_line() {
        let supervisor = Supervisor::new();
        supervisor
            .spawn("long", async { panic!("{}\r\n{}", "a".repeat(500), "b") })
            .await
            .expect("ends");
        let failure = supervisor.failure().expect("failed");
        assert!(failure.message.chars().count() <= MESSAGE_CHARS);
        assert!(!failure.message.contains(['\r', '\n']));

        let boxed = Supervisor::new();
        boxed
            .spawn("payload", async { std::panic::panic_any(42_u8) })
            .await
            .expect("ends");
        assert_eq!(
            boxed.failure().map(|f| f.message),
            Some("(a panic without a message)".into())
        );
    }
}
