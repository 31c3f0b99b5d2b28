//! A view of backprop at work for Rust programs: the computation graph as Graphviz DOT
//! ([`to_dot`]) and how much each weight contributed to the loss ([`integrated_gradients`]).
//!
//! The Python package's `bp.viz` draws the same graph with the same conventions (node ids
//! `n0, n1, ...` in depth-first discovery order from the root, `child -> parent` edges, the
//! same labels and colours; `python/backprop_rs/viz/graph.py` documents the format) and
//! computes the same attribution (`python/backprop_rs/viz/attribution.py`).

mod attribution;
mod dot;

pub use attribution::{gauss_legendre, integrated_gradients, Attribution};
pub use dot::{to_dot, DotOptions};
