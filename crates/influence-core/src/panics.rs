//! Panics of the user's code (a model's forward, a quantity of interest) caught as typed
//! errors, without the panic hook printing them.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::InfluenceError;

std::thread_local! {
    /// Whether this thread is inside [`quietly`].
    static QUIET: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic as an `Err` with its payload, without the panic hook printing
/// it: a model that panics on bad input gives a typed error, not a message and a backtrace on
/// stderr per bad request.
///
/// The first call installs a panic hook that stays silent for threads inside `quietly` and
/// hands every other panic to the hook that was there before (Rust's default one, or the
/// program's own).
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: Box<dyn core::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the model panicked".to_string())
}

/// What a model's forward was given, for [`InfluenceError::Forward`].
pub(crate) struct ForwardGiven {
    /// The shapes of the attributed inputs, `[batch, ...]` each.
    pub(crate) input_shapes: Vec<Vec<usize>>,
    /// The shapes of the tensors among the additional forward arguments.
    pub(crate) arg_shapes: Vec<Vec<usize>>,
    /// The rows of each input (dim 0).
    pub(crate) batch: usize,
}

/// Runs a model's forward `f` [`quietly`]; a panic becomes [`InfluenceError::Forward`], with its
/// message and what the forward was given (`given`, called only then). The one place where a
/// caught forward turns into the error.
pub(crate) fn forward_or_error<T>(
    f: impl FnOnce() -> T,
    given: impl FnOnce() -> ForwardGiven,
) -> Result<T, InfluenceError> {
    quietly(f).map_err(|panic| {
        let given = given();
        InfluenceError::Forward {
            message: panic_message(panic),
            input_shapes: given.input_shapes,
            arg_shapes: given.arg_shapes,
            batch: given.batch,
        }
    })
}
