//! Shape + strides (in elements) + offset: where each element of a tensor sits in its storage.
//!
//! Views (transpose, slicing, broadcasting, unsqueeze...) change only this metadata; kernels take a
//! storage and a layout. Broadcasting is a stride of 0. Strides are never negative: NumPy arrays
//! with negative strides are copied on the way in.

use crate::{Error, Result, Shape};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A C-contiguous layout starting at offset 0.
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }

    /// A layout with explicit strides; the caller guarantees every element is inside the storage.
    pub fn new(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        debug_assert_eq!(shape.rank(), strides.len());
        Layout {
            shape,
            strides,
            offset,
        }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// C-contiguous (dims of extent 1 may have any stride; an empty tensor always is, as in
    /// PyTorch).
    pub fn is_contiguous(&self) -> bool {
        if self.dims().contains(&0) {
            return true;
        }
        let mut acc = 1usize;
        for (&d, &s) in self.dims().iter().zip(self.strides.iter()).rev() {
            if d != 1 && s != acc {
                return false;
            }
            acc *= d;
        }
        true
    }

    /// If the elements form one contiguous C-order run in storage, its `start..end`.
    pub fn contiguous_range(&self) -> Option<(usize, usize)> {
        if self.is_contiguous() {
            Some((self.offset, self.offset + self.numel()))
        } else {
            None
        }
    }

    /// One past the largest storage index this layout touches (0 when empty).
    pub fn storage_extent(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        self.offset
            + self
                .dims()
                .iter()
                .zip(&self.strides)
                .map(|(&d, &s)| (d - 1) * s)
                .sum::<usize>()
            + 1
    }

    /// Reorders the dimensions.
    pub fn permute(&self, perm: &[usize]) -> Result<Layout> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank
            || perm
                .iter()
                .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::invalid(
                "permute",
                format!(
                    "{perm:?} is not a permutation of the {rank} dims of a tensor of shape {}",
                    self.shape
                ),
            ));
        }
        let dims = perm.iter().map(|&p| self.dims()[p]).collect();
        let strides = perm.iter().map(|&p| self.strides[p]).collect();
        Ok(Layout {
            shape: Shape::new(dims),
            strides,
            offset: self.offset,
        })
    }

    /// Broadcasts to `target` by giving new or size-1 dims a stride of 0.
    pub fn broadcast_as(&self, target: &Shape) -> Result<Layout> {
        let (r, tr) = (self.rank(), target.rank());
        let err = || Error::ShapeMismatch {
            op: "expand",
            lhs: self.shape.clone(),
            rhs: target.clone(),
            detail:
                ": the expanded size must match the existing size at each non-singleton dimension"
                    .into(),
        };
        if tr < r || target.checked_numel().is_none() {
            return Err(err());
        }
        let mut strides = vec![0; tr];
        for i in 0..r {
            let (d, t) = (self.dims()[i], target.dims()[tr - r + i]);
            if d == t {
                strides[tr - r + i] = self.strides[i];
            } else if d != 1 {
                return Err(err());
            }
        }
        Ok(Layout {
            shape: target.clone(),
            strides,
            offset: self.offset,
        })
    }

    /// Elements `start, start+step, ...` (`len` of them) along `dim`.
    pub fn slice(&self, dim: usize, start: usize, len: usize, step: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        dims[dim] = len;
        let offset = if len == 0 {
            self.offset
        } else {
            self.offset + start * self.strides[dim]
        };
        // with one element or none the stride is never used; a huge step (t[::2**62]) would
        // overflow it. With two or more, step * stride stays inside the viewed extent.
        if len > 1 {
            strides[dim] *= step;
        }
        Layout {
            shape: Shape::new(dims),
            strides,
            offset,
        }
    }

    /// Removes `dim` by fixing it at `index`.
    pub fn select(&self, dim: usize, index: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        let offset = self.offset + index * strides[dim];
        dims.remove(dim);
        strides.remove(dim);
        Layout {
            shape: Shape::new(dims),
            strides,
            offset,
        }
    }

    /// Inserts a dim of extent 1 at `dim`.
    pub fn unsqueeze(&self, dim: usize) -> Layout {
        let mut dims = self.dims().to_vec();
        let mut strides = self.strides.clone();
        let s = if dim < strides.len() {
            strides[dim] * dims[dim]
        } else {
            1
        };
        dims.insert(dim, 1);
        strides.insert(dim, s);
        Layout {
            shape: Shape::new(dims),
            strides,
            offset: self.offset,
        }
    }

    /// A view with a new shape of the same element count, if the strides allow one without copying
    /// (the same rule as PyTorch's `view`: each group of merged/split dims must be contiguous within itself).
    pub fn reshape(&self, new: &Shape) -> Option<Layout> {
        if new.numel() != self.numel() {
            return None;
        }
        if self.is_contiguous() {
            return Some(Layout {
                shape: new.clone(),
                strides: new.contiguous_strides(),
                offset: self.offset,
            });
        }
        if self.numel() == 0 {
            return Some(Layout::new(
                new.clone(),
                new.contiguous_strides(),
                self.offset,
            ));
        }
        // Walk the old dims in chunks that are contiguous among themselves, matching new dims to them.
        let old_d: Vec<usize> = self.dims().to_vec();
        let old_s = &self.strides;
        let new_d = new.dims();
        let mut new_s = vec![0usize; new_d.len()];
        let (mut oi, mut ni) = (0usize, 0usize);
        while oi < old_d.len() || ni < new_d.len() {
            // skip unit dims
            if ni < new_d.len() && new_d[ni] == 1 {
                new_s[ni] = 1;
                ni += 1;
                continue;
            }
            if oi < old_d.len() && old_d[oi] == 1 {
                oi += 1;
                continue;
            }
            if oi >= old_d.len() || ni >= new_d.len() {
                return None;
            }
            // grow a chunk of old dims [oi, oe) and new dims [ni, ne) with equal products
            let (mut op, mut np) = (old_d[oi], new_d[ni]);
            let (mut oe, mut ne) = (oi + 1, ni + 1);
            while op != np {
                if op < np {
                    while oe < old_d.len() && old_d[oe] == 1 {
                        oe += 1;
                    }
                    if oe >= old_d.len() {
                        return None;
                    }
                    op *= old_d[oe];
                    oe += 1;
                } else {
                    if ne >= new_d.len() {
                        return None;
                    }
                    np *= new_d[ne];
                    ne += 1;
                }
            }
            // the old chunk must be contiguous in itself
            let mut last: Option<usize> = None;
            for k in (oi..oe).rev() {
                if old_d[k] == 1 {
                    continue;
                }
                if let Some(l) = last {
                    if old_s[k] != old_s[l] * old_d[l] {
                        return None;
                    }
                }
                last = Some(k);
            }
            // innermost stride of the chunk
            let inner = (oi..oe)
                .rev()
                .find(|&k| old_d[k] != 1)
                .map(|k| old_s[k])
                .unwrap_or(1);
            let mut acc = inner;
            for k in (ni..ne).rev() {
                new_s[k] = acc;
                acc *= new_d[k];
            }
            oi = oe;
            ni = ne;
        }
        Some(Layout {
            shape: new.clone(),
            strides: new_s,
            offset: self.offset,
        })
    }
}

/// Iteration over several same-shape strided operands in one pass: the shape is first coalesced
/// (adjacent dims merged when every operand allows it, unit dims dropped), then the last remaining
/// dim is the "inner" run and everything before it is walked with a counter. Kernels specialise the
/// inner loop on the inner strides (1 = contiguous, 0 = broadcast), which is where the time goes.
#[derive(Debug, Clone)]
pub struct StridedPlan<const N: usize> {
    /// Coalesced outer dims (without the inner one).
    pub outer: Vec<usize>,
    /// Per operand: strides of the outer dims.
    pub outer_strides: [Vec<usize>; N],
    /// Length of the inner run.
    pub inner_len: usize,
    /// Per operand: stride of the inner run.
    pub inner_strides: [usize; N],
    /// Per operand: starting offset.
    pub offsets: [usize; N],
}

impl<const N: usize> StridedPlan<N> {
    /// All layouts must have the same shape.
    pub fn new(layouts: [&Layout; N]) -> Self {
        let dims = layouts[0].dims();
        let mut cd: Vec<usize> = Vec::with_capacity(dims.len());
        let mut cs: [Vec<usize>; N] = std::array::from_fn(|_| Vec::with_capacity(dims.len()));
        for (i, &d) in dims.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let mergeable = !cd.is_empty()
                && (0..N).all(|k| {
                    let prev = *cs[k].last().unwrap_or(&0);
                    prev == layouts[k].strides()[i] * d
                });
            if mergeable {
                let last = cd.len() - 1;
                cd[last] *= d;
                for k in 0..N {
                    let l = cs[k].len() - 1;
                    cs[k][l] = layouts[k].strides()[i];
                }
            } else {
                cd.push(d);
                for k in 0..N {
                    cs[k].push(layouts[k].strides()[i]);
                }
            }
        }
        let offsets = std::array::from_fn(|k| layouts[k].offset());
        if cd.is_empty() {
            // 0-d or all-unit: one element (or, if numel == 0, caught by callers)
            return StridedPlan {
                outer: Vec::new(),
                outer_strides: std::array::from_fn(|_| Vec::new()),
                inner_len: if dims.contains(&0) { 0 } else { 1 },
                inner_strides: [1; N],
                offsets,
            };
        }
        let inner_len = cd.pop().unwrap_or(1);
        let inner_strides = std::array::from_fn(|k| cs[k].pop().unwrap_or(1));
        StridedPlan {
            outer: cd,
            outer_strides: cs,
            inner_len,
            inner_strides,
            offsets,
        }
    }

    /// Number of inner runs.
    pub fn outer_count(&self) -> usize {
        self.outer.iter().product()
    }

    /// Starting offsets of the `i`-th inner run (row-major order over the outer dims).
    #[allow(clippy::needless_range_loop)] // k walks N operands' offsets and strides together
    pub fn offsets_at(&self, mut i: usize) -> [usize; N] {
        let mut offs = self.offsets;
        for d in (0..self.outer.len()).rev() {
            let ext = self.outer[d];
            let idx = i % ext;
            i /= ext;
            for k in 0..N {
                offs[k] += idx * self.outer_strides[k][d];
            }
        }
        offs
    }

    /// Calls `f(offsets, run_index)` for runs `start..end`, advancing offsets incrementally.
    #[allow(clippy::needless_range_loop)] // k walks N operands' offsets and strides together
    pub fn for_each_run(&self, start: usize, end: usize, mut f: impl FnMut([usize; N], usize)) {
        if start >= end {
            return;
        }
        let nd = self.outer.len();
        let mut idx = vec![0usize; nd];
        let mut rem = start;
        for d in (0..nd).rev() {
            idx[d] = rem % self.outer[d];
            rem /= self.outer[d];
        }
        let mut offs = self.offsets_at(start);
        for run in start..end {
            f(offs, run);
            // increment the multi-index
            for d in (0..nd).rev() {
                idx[d] += 1;
                for k in 0..N {
                    offs[k] += self.outer_strides[k][d];
                }
                if idx[d] < self.outer[d] {
                    break;
                }
                for k in 0..N {
                    offs[k] -= self.outer_strides[k][d] * self.outer[d];
                }
                idx[d] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(l: &Layout) -> Vec<usize> {
        let plan = StridedPlan::new([l]);
        let mut out = Vec::new();
        plan.for_each_run(0, plan.outer_count(), |[o], _| {
            for j in 0..plan.inner_len {
                out.push(o + j * plan.inner_strides[0]);
            }
        });
        out
    }

    #[test]
    fn transpose_iterates_in_logical_order() {
        let l = Layout::contiguous([2, 3]).permute(&[1, 0]).unwrap();
        assert_eq!(offsets(&l), vec![0, 3, 1, 4, 2, 5]);
        assert!(!l.is_contiguous());
    }

    #[test]
    fn broadcast_has_zero_strides() {
        let l = Layout::contiguous([3])
            .broadcast_as(&Shape::from([2, 3]))
            .unwrap();
        assert_eq!(l.strides(), &[0, 1]);
        assert_eq!(offsets(&l), vec![0, 1, 2, 0, 1, 2]);
        assert!(Layout::contiguous([3])
            .broadcast_as(&Shape::from([4]))
            .is_err());
    }

    #[test]
    fn slicing_with_steps() {
        let l = Layout::contiguous([4, 6]).slice(1, 1, 3, 2);
        assert_eq!(offsets(&l), vec![1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23]);
        let s = Layout::contiguous([4, 6]).select(0, 2);
        assert_eq!(offsets(&s), (12..18).collect::<Vec<_>>());
    }

    #[test]
    fn reshape_views_when_strides_allow() {
        let l = Layout::contiguous([2, 3, 4]);
        assert_eq!(l.reshape(&Shape::from([6, 4])).unwrap().strides(), &[4, 1]);
        // transposed inner dims cannot be merged
        let t = l.permute(&[0, 2, 1]).unwrap();
        assert!(t.reshape(&Shape::from([2, 12])).is_none());
        // but splitting the untouched leading dim works
        let v = t.reshape(&Shape::from([1, 2, 4, 3])).unwrap();
        assert_eq!(offsets(&v), offsets(&t));
        // slicing keeps inner contiguity; merging the outer dims is still a view
        let s = Layout::contiguous([4, 6]).slice(1, 0, 3, 1);
        assert!(s.reshape(&Shape::from([12])).is_none());
        let s2 = Layout::contiguous([4, 2, 3]).slice(0, 1, 2, 1);
        assert_eq!(
            offsets(&s2.reshape(&Shape::from([12])).unwrap()),
            (6..18).collect::<Vec<_>>()
        );
    }

    #[test]
    fn plan_coalesces_contiguous_dims() {
        let l = Layout::contiguous([2, 3, 4]);
        let p = StridedPlan::new([&l]);
        assert_eq!(p.outer_count(), 1);
        assert_eq!(p.inner_len, 24);
    }
}
