//! The injected clock: everything that stamps or compares time asks a `Clock`, so tests can fix
//! the time.

use std::sync::Arc;

use crate::fhir::instant::EpochMillis;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch (UTC).
    fn now_millis(&self) -> EpochMillis;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> EpochMillis {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// A clock that is set by hand (tests and reproducible statistics).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<std::sync::atomic::AtomicI64>);

impl ManualClock {
    /// A clock showing `millis`.
    pub fn at(millis: EpochMillis) -> ManualClock {
        ManualClock(Arc::new(std::sync::atomic::AtomicI64::new(millis)))
    }

    /// Sets the time.
    pub fn set(&self, millis: EpochMillis) {
        self.0.store(millis, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> EpochMillis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
