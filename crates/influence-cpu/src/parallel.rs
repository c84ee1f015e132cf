//! What the kernels' parallel tasks share: a raw output pointer that tasks write disjoint
//! parts of ([`Out`]), and per-thread scratch buffers ([`Scratch`]).

use std::sync::Mutex;

/// A raw pointer to the output, shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(crate) struct Out(pub(crate) *mut f32);
// SAFETY: each task writes only its own piece's elements; the pieces are disjoint.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer to element `i` of the output. (A method, so that closures capture the
    /// whole `Send` wrapper, not its raw pointer field.)
    ///
    /// # Safety
    /// `i` within the output.
    pub(crate) unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: the caller's.
        unsafe { self.0.add(i) }
    }
}

/// Scratch buffers shared by the tasks of one call: one slot per thread of the pool, so a
/// thread reuses its buffer from task to task (each task would otherwise allocate and zero a
/// fresh im2col matrix, megabytes, and fault its pages in). Dropped with the call.
pub(crate) struct Scratch<T>(Vec<Mutex<T>>);

impl<T: Default> Scratch<T> {
    pub(crate) fn new() -> Self {
        Self(
            (0..rayon::current_num_threads())
                .map(|_| Mutex::new(T::default()))
                .collect(),
        )
    }

    /// Runs `f` with this thread's buffers; with fresh ones where the slot is busy (a task
    /// that started inside a product that lent its thread to the pool) or poisoned.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let slot = rayon::current_thread_index()
            .and_then(|i| self.0.get(i))
            .and_then(|m| m.try_lock().ok());
        match slot {
            Some(mut buffers) => f(&mut buffers),
            None => f(&mut T::default()),
        }
    }
}
