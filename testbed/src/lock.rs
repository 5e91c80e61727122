//! Locking the emulators' shared state.

use std::sync::{Mutex, MutexGuard};

/// The guard even when another thread panicked holding it: a test that failed must not hide
/// its cause behind a poisoned lock in the emulator.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
