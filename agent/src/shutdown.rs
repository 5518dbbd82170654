//! A stop signal shared by the listeners and by long-lived streams.

use tokio::sync::watch;

/// Resolves once a stop is requested; cheap to clone, one per waiter.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Fires the [`Shutdown`] signals created with it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// Resolves once a stop is requested, or once its trigger is gone (nothing could request a
    /// stop any more, and the owner of the trigger has stopped).
    pub async fn requested(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

impl ShutdownTrigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_every_clone_and_only_when_asked() {
        let (trigger, shutdown) = Shutdown::new();
        let other = shutdown.clone();
        let early = tokio::time::timeout(Duration::from_millis(20), shutdown.clone().requested());
        assert!(early.await.is_err(), "resolved before the trigger fired");
        trigger.fire();
        tokio::time::timeout(Duration::from_secs(1), shutdown.requested())
            .await
            .expect("first waiter");
        tokio::time::timeout(Duration::from_secs(1), other.requested())
            .await
            .expect("second waiter");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_trigger_stops_the_waiters() {
        let (trigger, shutdown) = Shutdown::new();
        drop(trigger);
        tokio::time::timeout(Duration::from_secs(1), shutdown.requested())
            .await
            .expect("waiter after the trigger is gone");
    }
}
