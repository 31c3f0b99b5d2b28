//! The graph behind a tensor as Graphviz DOT: a walk over [`GradFn::next_functions`].

use crate::autograd::{GradFn, NodeKey};
use crate::{DType, Device, Result, Tensor};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// What [`to_dot`] draws besides the structure.
#[derive(Debug, Clone, Default)]
pub struct DotOptions {
    /// A leaf's value summary (`w |.|=.. [min, max]`).
    pub show_values: bool,
    /// A title above the graph.
    pub title: Option<String>,
}

const FILL_PARAM: &str = "#cfe2ff";
const FILL_LEAF: &str = "#fff3cd";
const FILL_ROOT: &str = "#d1e7dd";
const FILL_BAD: &str = "#f8d7da";

/// Norm, min and max of the finite entries and the NaN/inf counts, computed in f64.
struct Stats {
    norm: f64,
    min: f64,
    max: f64,
    nan: usize,
    inf: usize,
}

fn stats(t: &Tensor) -> Result<Stats> {
    let v = t.detach().to_dtype(DType::F64)?.to_vec::<f64>()?;
    let (mut s, mut min, mut max, mut nan, mut inf) = (0.0, f64::NAN, f64::NAN, 0, 0);
    for x in v {
        if x.is_nan() {
            nan += 1;
        } else if x.is_infinite() {
            inf += 1;
        } else {
            s += x * x;
            min = if min.is_nan() { x } else { min.min(x) };
            max = if max.is_nan() { x } else { max.max(x) };
        }
    }
    Ok(Stats {
        norm: s.sqrt(),
        min,
        max,
        nan,
        inf,
    })
}

/// Three significant digits, as Python's `f"{x:.3g}"` writes them.
fn fmt3(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    // the exponent after rounding to 3 significant digits decides the form, as in %g
    let sci = format!("{x:.2e}");
    let (m, e) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    if !(-4..3).contains(&exp) {
        // Rust writes 1.23e-5; Python 1.23e-05
        let m = m.trim_end_matches('0').trim_end_matches('.');
        let sign = if exp < 0 { "-" } else { "+" };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = (2 - exp).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn shape_str(t: &Tensor) -> String {
    let d = t.dims();
    let inner: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    format!(
        "({}{})",
        inner.join(", "),
        if d.len() == 1 { "," } else { "" }
    )
}

fn meta_line(t: &Tensor) -> String {
    let dev = match t.device() {
        Device::Cpu => "cpu",
        Device::Gpu => "gpu",
    };
    format!("{} {} {dev}", shape_str(t), t.dtype())
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The graph that produced `roots` in Graphviz DOT: one node per backward node (named as
/// PyTorch names them: `MulBackward0`, `AccumulateGrad` leaves titled with their name from
/// `params`, else `leaf`), edges from each input to the node that consumes it. Leaves show
/// their gradient summary once a backward pass has filled `.grad`; a gradient with NaN or inf
/// entries turns the node red. Build it before `backward()` frees the graph (or retain it).
///
/// ```
/// use backprop::{viz, Device, Tensor};
/// let w = Tensor::from_vec(vec![1.0f32, -2.0], [2], Device::Cpu)?.requires_grad_(true)?;
/// let x = Tensor::from_vec(vec![3.0f32, 4.0], [2], Device::Cpu)?;
/// let loss = x.mul(&w)?.sum_all()?;
/// let dot = viz::to_dot(&[&loss], &[("w", &w)], &viz::DotOptions::default())?;
/// assert!(dot.starts_with("digraph backprop {"));
/// assert!(dot.contains("MulBackward0") && dot.contains("label=\"w\\n(2,) float32 cpu\""));
/// // a chain from w to the loss: every node but the root feeds exactly one other
/// assert_eq!(dot.matches(" -> ").count(), dot.matches(" [label=").count() - 1);
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn to_dot(roots: &[&Tensor], params: &[(&str, &Tensor)], opts: &DotOptions) -> Result<String> {
    let names: HashMap<_, _> = params.iter().map(|(n, t)| (t.id(), *n)).collect();
    let mut ids: HashMap<NodeKey, usize> = HashMap::new();
    let mut nodes: Vec<(GradFn, bool)> = Vec::new();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut seen_edges = HashSet::new();
    // iterative depth-first walk, children in order: the discovery order numbers the nodes
    let mut stack: Vec<(GradFn, bool)> = roots
        .iter()
        .rev()
        .filter_map(|r| r.gradient_edge().map(|(f, _)| (f, true)))
        .collect();
    while let Some((f, is_root)) = stack.pop() {
        if ids.contains_key(&f.key()) {
            continue;
        }
        let me = nodes.len();
        ids.insert(f.key(), me);
        let next = f.next_functions()?;
        nodes.push((f, is_root));
        for (child, _) in next.into_iter().rev().flatten_children() {
            stack.push((child, false));
        }
    }
    // edges after numbering, one per distinct (parent, child) pair, in node order
    for (p, (f, _)) in nodes.iter().enumerate() {
        for (child, _) in f.next_functions()?.into_iter().flatten_children() {
            let c = ids[&child.key()];
            if seen_edges.insert((c, p)) {
                edges.push((c, p));
            }
        }
    }

    let mut out = String::from("digraph backprop {\n");
    let mut g = String::from(
        "graph [rankdir=TB, fontname=\"Helvetica\", fontsize=10, nodesep=0.25, ranksep=0.3",
    );
    if let Some(t) = &opts.title {
        let _ = write!(g, ", label=\"{}\", labelloc=t", esc(t));
    }
    let _ = writeln!(out, "  {g}];");
    out.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=9, color=\"#555555\", fillcolor=\"#eeeeee\"];\n");
    out.push_str("  edge [color=\"#555555\", arrowsize=0.6];\n");
    for (i, (f, is_root)) in nodes.iter().enumerate() {
        let mut lines = Vec::new();
        let mut bad = false;
        let mut fill = if *is_root { Some(FILL_ROOT) } else { None };
        match f {
            GradFn::AccumulateGrad(t) => {
                let name = names.get(&t.id()).copied();
                lines.push(name.unwrap_or("leaf").to_string());
                lines.push(meta_line(t));
                if fill.is_none() {
                    fill = Some(if name.is_some() {
                        FILL_PARAM
                    } else {
                        FILL_LEAF
                    });
                }
                if opts.show_values {
                    let s = stats(t)?;
                    let prefix = if name.is_some() { "w" } else { "value" };
                    lines.push(format!(
                        "{prefix} |.|={} [{}, {}]",
                        fmt3(s.norm),
                        fmt3(s.min),
                        fmt3(s.max)
                    ));
                }
                if let Some(g) = t.grad() {
                    let s = stats(&g)?;
                    lines.push(format!(
                        "grad |.|={} [{}, {}]",
                        fmt3(s.norm),
                        fmt3(s.min),
                        fmt3(s.max)
                    ));
                    if s.nan + s.inf > 0 {
                        bad = true;
                        lines.push(format!("NaN {} inf {}", s.nan, s.inf));
                    }
                }
            }
            GradFn::Op(t) => {
                lines.push(f.name());
                lines.push(meta_line(t));
            }
            GradFn::Custom(_) => lines.push(f.name()),
        }
        let label = lines.iter().map(|l| esc(l)).collect::<Vec<_>>().join("\\n");
        let mut attrs = vec![format!("label=\"{label}\"")];
        if bad {
            attrs.push(format!("fillcolor=\"{FILL_BAD}\""));
            attrs.extend(["color=red", "fontcolor=red", "penwidth=2"].map(String::from));
        } else if let Some(c) = fill {
            attrs.push(format!("fillcolor=\"{c}\""));
        }
        let _ = writeln!(out, "  n{i} [{}];", attrs.join(", "));
    }
    for (c, p) in edges {
        let _ = writeln!(out, "  n{c} -> n{p};");
    }
    out.push_str("}\n");
    Ok(out)
}

/// `next_functions` without the inputs that need no gradient.
trait FlattenChildren {
    fn flatten_children(self) -> Box<dyn Iterator<Item = (GradFn, usize)>>;
}

impl<I: Iterator<Item = (Option<GradFn>, usize)> + 'static> FlattenChildren for I {
    fn flatten_children(self) -> Box<dyn Iterator<Item = (GradFn, usize)>> {
        Box::new(self.filter_map(|(f, k)| f.map(|f| (f, k))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_like_python() {
        assert_eq!(fmt3(1.23456e-5), "1.23e-05");
        assert_eq!(fmt3(0.0123456), "0.0123");
        assert_eq!(fmt3(123.456), "123");
        assert_eq!(fmt3(1234.5), "1.23e+03");
        assert_eq!(fmt3(2.0), "2");
        assert_eq!(fmt3(-0.5), "-0.5");
        assert_eq!(fmt3(999.7), "1e+03");
        assert_eq!(fmt3(0.0001), "0.0001");
    }

    #[test]
    fn shared_input_is_one_node_and_nan_is_red() -> Result<()> {
        let w = Tensor::from_vec(vec![1.0f32, f32::NAN], [2], Device::Cpu)?.requires_grad_(true)?;
        let y = w.mul(&w)?.add(&w)?.sum_all()?; // w feeds two ops
        let dot = to_dot(&[&y], &[("w", &w)], &DotOptions::default())?;
        assert_eq!(dot.matches("label=\"w\\n").count(), 1);
        y.backward()?;
        // after backward the graph is freed: the leaf alone still draws, with its gradient
        let dot = to_dot(&[&w], &[("w", &w)], &DotOptions::default())?;
        assert!(
            dot.contains("color=red") && dot.contains("NaN 1 inf 0"),
            "{dot}"
        );
        Ok(())
    }
}
