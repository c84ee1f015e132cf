//! The exact method's trace of a forward on [`Eval<B>`](crate::Eval): every floating-point
//! operation the model makes (its name and the sizes of its float operands), and the
//! *pattern* of the piecewise-linear ones: the outcome of each comparison, arg-max and
//! max-pool window, and on which side of its kink each value of a ReLU, leaky ReLU, PReLU,
//! absolute value or clamp is.
//!
//! The generated forwarding methods (`ops.rs`) call [`operands`] before and an `*_outcome`
//! function after each operation of `FloatTensorOps`, `ModuleOps` and `ActivationOps` that
//! has a float operand, when the policy traces ([`Policy::TRACE`](super::Policy::TRACE):
//! [`EvalMode`](super::EvalMode) only) and a trace is running on this thread ([`start`]).
//! Outside a trace each costs one thread-local read.
//!
//! What the exact method does with it: `crate::exact`.

use std::any::Any;
use std::cell::RefCell;

use burn_backend::Backend;
use burn_backend::TensorMetadata;
use burn_backend::tensor::{BoolTensor, FloatTensor, IntTensor};

/// One traced operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    /// The operation's name in Burn's backend traits (`float_exp`, `conv2d`, `relu`, ...).
    pub name: &'static str,
    /// The number of values of each float operand, in the order of the signature.
    pub numels: Vec<usize>,
}

/// A recorded outcome: a backend primitive, boxed (its backend type is the traced
/// decorator's inner backend; `crate::exact` downcasts it).
pub(crate) enum Pattern<F, Bo, I> {
    /// Signed distances whose signs are the pattern (`output − input` of a kinked unary
    /// operation).
    Sign(F),
    /// A comparison's outcome.
    Bool(Bo),
    /// Indices: arg-max, arg-min, max-pool winners.
    Int(I),
}

/// The pattern type of backend `B`'s primitives.
pub(crate) type PatternOf<B> = Pattern<FloatTensor<B>, BoolTensor<B>, IntTensor<B>>;

/// What one traced forward recorded.
#[derive(Default)]
pub(crate) struct Trace {
    /// Every traced operation, in order.
    pub ops: Vec<Op>,
    /// The outcomes, in order, each a boxed [`PatternOf<B>`].
    pub patterns: Vec<Box<dyn Any>>,
    /// Each outcome's shape and the index in [`ops`](Self::ops) of the operation that made
    /// it.
    pub made_by: Vec<(Vec<usize>, usize)>,
    /// Per outcome, when the trace keeps its value ([`start_keeping`]) and the operation has its
    /// kink where its input is zero ([`ZERO_KINKED`]): that input, a boxed `FloatTensor`
    /// of the traced backend's inner backend (the exact method predicts where it crosses
    /// zero).
    pub values: Vec<Option<Box<dyn Any>>>,
    /// Which outcomes' [`values`](Self::values) to keep, by index.
    keep: Vec<bool>,
}

std::thread_local! {
    static TRACE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

/// Starts a trace on this thread (dropping one left running).
pub(crate) fn start() {
    TRACE.with(|t| *t.borrow_mut() = Some(Trace::default()));
}

/// Starts a trace that also keeps the inputs of the [`ZERO_KINKED`] operations whose
/// outcomes (by index) are marked in `keep` ([`Trace::values`]).
pub(crate) fn start_keeping(keep: Vec<bool>) {
    TRACE.with(|t| {
        *t.borrow_mut() = Some(Trace {
            keep,
            ..Trace::default()
        })
    });
}

/// Ends this thread's trace and returns it.
pub(crate) fn finish() -> Option<Trace> {
    TRACE.with(|t| t.borrow_mut().take())
}

/// Whether a trace runs on this thread.
pub fn active() -> bool {
    TRACE
        .try_with(|t| t.try_borrow().is_ok_and(|t| t.is_some()))
        .unwrap_or(false)
}

/// The unary operations with a kink at zero input, whose pattern is the sign of `output −
/// input` (zero on the identity side, non-zero on the other: ReLU, leaky ReLU with a slope
/// other than 1, PReLU, absolute value, and the clamps, which also tell the lower side
/// from the upper one).
pub(crate) const KINKED: [&str; 7] = [
    "relu",
    "leaky_relu",
    "prelu",
    "float_abs",
    "float_clamp",
    "float_clamp_min",
    "float_clamp_max",
];

/// The kinked operations whose kink is where their input is zero (ReLU, leaky ReLU, PReLU,
/// absolute value): along a segment of the path on which the operations before them keep
/// their pattern, their input is affine, and its zeros are the breakpoints.
pub(crate) const ZERO_KINKED: [&str; 4] = ["relu", "leaky_relu", "prelu", "float_abs"];

/// What [`operands`] keeps for the outcome: the input of a kinked operation.
pub struct Token<B: Backend>(FloatTensor<B>);

/// Records operation `name` with its float operands; returns the input of a kinked one.
pub fn operands<B: Backend>(name: &'static str, xs: &[&FloatTensor<B>]) -> Option<Token<B>> {
    let numels = xs.iter().map(|x| x.shape().num_elements()).collect();
    TRACE.with(|t| {
        if let Some(t) = t.borrow_mut().as_mut() {
            t.ops.push(Op { name, numels });
        }
    });
    KINKED
        .contains(&name)
        .then(|| xs.first().map(|x| Token((*x).clone())))
        .flatten()
}

fn push<B: Backend>(pattern: PatternOf<B>, value: Option<FloatTensor<B>>) {
    let shape = match &pattern {
        Pattern::Sign(f) => f.shape(),
        Pattern::Bool(b) => b.shape(),
        Pattern::Int(i) => i.shape(),
    };
    TRACE.with(|t| {
        if let Some(t) = t.borrow_mut().as_mut() {
            let op = t.ops.len().saturating_sub(1);
            t.made_by.push((shape.to_vec(), op));
            t.patterns.push(Box::new(pattern));
            let keep = t.keep.get(t.patterns.len() - 1).copied().unwrap_or(false);
            let value = value.filter(|_| keep).map(|v| Box::new(v) as Box<dyn Any>);
            t.values.push(value);
        }
    });
}

/// A float result: for a kinked operation, records `output − input` (and, for a
/// [`ZERO_KINKED`] one in a trace that keeps values, the input).
pub fn float_outcome<B: Backend>(name: &'static str, token: Option<Token<B>>, r: &FloatTensor<B>) {
    if let Some(Token(x)) = token {
        let value = ZERO_KINKED.contains(&name).then(|| x.clone());
        // `B`'s own operation: not traced (only the decorator's are).
        push::<B>(Pattern::Sign(B::float_sub(r.clone(), x)), value);
    }
}

/// A bool result (a comparison): the result is the pattern.
pub fn bool_outcome<B: Backend>(_name: &'static str, _token: Option<Token<B>>, r: &BoolTensor<B>) {
    push::<B>(Pattern::Bool(r.clone()), None);
}

/// An int result (arg-max, arg-min, a max pool's indices): the result is the pattern.
pub fn int_outcome<B: Backend>(_name: &'static str, _token: Option<Token<B>>, r: &IntTensor<B>) {
    push::<B>(Pattern::Int(r.clone()), None);
}
