//! Fuzz targets shared by the proptest driver (`tests/fuzz_parsers.rs`, in `cargo test`) and the
//! coverage-guided AFL++ driver (`fuzz/`, see its README): each takes arbitrary bytes and must
//! return without panicking; where a reference exists the target also checks the result and
//! panics on a disagreement (which both drivers report as a crash).

use backprop::{io, DType, Device, Indexer, Tensor};

/// Reads bounded values out of the fuzzer's bytes (zeros once they run out).
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn i64(&mut self) -> i64 {
        // mostly small values, sometimes the extremes that overflow careless arithmetic
        match self.u8() % 8 {
            0 => i64::MAX - self.u8() as i64,
            1 => i64::MIN + self.u8() as i64,
            2 => (self.u8() as i64) << 40,
            _ => self.u8() as i8 as i64,
        }
    }
    pub fn usize(&mut self) -> usize {
        match self.u8() % 8 {
            0 => usize::MAX - self.u8() as usize,
            1 => (self.u8() as usize) << 40,
            2 => 1usize << 62,
            _ => (self.u8() % 6) as usize,
        }
    }
}

/// The checkpoint loader on arbitrary bytes: an error or a checkpoint whose tensors read back
/// and survive a save/load round trip unchanged.
pub fn checkpoint(data: &[u8]) {
    let Ok(ck) = io::load_from_bytes(data) else {
        return;
    };
    for (name, t) in &ck.tensors {
        let bits = bits_of(t);
        let again = io::save_to_bytes(&[(name.clone(), t.clone())], Some(&ck.metadata))
            .unwrap_or_else(|e| panic!("a loaded tensor {name:?} does not save: {e}"));
        let back = io::load_from_bytes(&again)
            .unwrap_or_else(|e| panic!("a saved checkpoint does not load: {e}"));
        let t2 = back
            .get(name)
            .expect("the saved tensor is in the reloaded checkpoint");
        assert_eq!(t.dims(), t2.dims(), "{name}: shape changed in a round trip");
        assert_eq!(bits, bits_of(t2), "{name}: values changed in a round trip");
    }
}

fn bits_of(t: &Tensor) -> Vec<u64> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits() as u64)
            .collect(),
        DType::F64 => t
            .to_vec::<f64>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        DType::I64 => t
            .to_vec::<i64>()
            .unwrap()
            .iter()
            .map(|&v| v as u64)
            .collect(),
        DType::Bool => t
            .to_vec::<u8>()
            .unwrap()
            .iter()
            .map(|&v| v as u64)
            .collect(),
        DType::F16 => t
            .to_vec::<half::f16>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits() as u64)
            .collect(),
        DType::BF16 => t
            .to_vec::<half::bf16>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits() as u64)
            .collect(),
        // the narrow ints: their widened values hold every bit pattern exactly
        _ => t
            .to_dtype(DType::I64)
            .unwrap()
            .to_vec::<i64>()
            .unwrap()
            .iter()
            .map(|&v| v as u64)
            .collect(),
    }
}

/// A well-formed checkpoint to seed the fuzzers with (mutations of it reach deep into the
/// parser, where random bytes stop at the header length).
pub fn seed_checkpoint() -> Vec<u8> {
    let a = Tensor::from_vec(
        vec![1.5f32, -2.0, 3.25, 0.0, 7.0, -1.0],
        [2, 3],
        Device::Cpu,
    )
    .unwrap();
    let b = Tensor::from_vec(vec![1i64, -9, 1 << 40], [3], Device::Cpu).unwrap();
    let c = Tensor::from_vec(vec![0.5f64], [1, 1], Device::Cpu).unwrap();
    io::save_to_bytes(&[("a".into(), a), ("b".into(), b), ("c".into(), c)], None).unwrap()
}

/// One key entry as the reference models it.
#[derive(Debug, Clone)]
enum Basic {
    Select(i64),
    Slice(Option<i64>, Option<i64>, i64),
    NewAxis,
    Ellipsis,
}

/// NumPy/PyTorch basic indexing over a row-major arange of `dims`: the result's dims and
/// values, or `None` where PyTorch raises.
fn reference_basic(dims: &[usize], key: &[Basic]) -> Option<(Vec<usize>, Vec<f64>)> {
    let ellipses = key.iter().filter(|k| matches!(k, Basic::Ellipsis)).count();
    if ellipses > 1 {
        return None;
    }
    let consumed = key
        .iter()
        .filter(|k| matches!(k, Basic::Select(_) | Basic::Slice(..)))
        .count();
    if consumed > dims.len() {
        return None;
    }
    // expand the ellipsis (and the implicit trailing one) into full slices
    let mut full = Vec::new();
    for k in key {
        if let Basic::Ellipsis = k {
            full.extend((0..dims.len() - consumed).map(|_| Basic::Slice(None, None, 1)));
        } else {
            full.push(k.clone());
        }
    }
    if ellipses == 0 {
        full.extend((0..dims.len() - consumed).map(|_| Basic::Slice(None, None, 1)));
    }
    // per source dim: the positions taken, and whether the dim stays
    let mut out_dims = Vec::new();
    let mut picks: Vec<Vec<usize>> = Vec::new();
    let mut d = 0;
    for k in &full {
        match k {
            Basic::NewAxis => out_dims.push(1),
            Basic::Select(i) => {
                let n = dims[d] as i64;
                let i = if *i < 0 { i.checked_add(n)? } else { *i };
                if i < 0 || i >= n {
                    return None;
                }
                picks.push(vec![i as usize]);
                d += 1;
            }
            Basic::Slice(start, stop, step) => {
                if *step <= 0 {
                    return None;
                }
                let n = dims[d] as i64;
                let clamp = |v: Option<i64>, default: i64| -> i64 {
                    match v {
                        None => default,
                        Some(v) if v < 0 => v.saturating_add(n).max(0),
                        Some(v) => v.min(n),
                    }
                };
                let (s, e) = (clamp(*start, 0), clamp(*stop, n));
                let taken: Vec<usize> = if s >= e {
                    Vec::new()
                } else {
                    (s..e).step_by(*step as usize).map(|v| v as usize).collect()
                };
                out_dims.push(taken.len());
                picks.push(taken);
                d += 1;
            }
            Basic::Ellipsis => unreachable!(),
        }
    }
    // values: the cartesian product of the picks, in order
    let strides: Vec<usize> = (0..dims.len())
        .map(|i| dims[i + 1..].iter().product())
        .collect();
    let mut values = vec![0.0];
    for (p, s) in picks.iter().zip(&strides) {
        values = values
            .iter()
            .flat_map(|base| p.iter().map(move |&i| base + (i * s) as f64))
            .collect();
    }
    Some((out_dims, values))
}

/// Indexing and index assignment with an arbitrary key on a small tensor: never a panic;
/// basic keys agree with [`reference_basic`], and `t[key] = -1` changes exactly the elements
/// `t[key]` names.
pub fn index(data: &[u8]) {
    let mut b = Bytes(data);
    let rank = (b.u8() % 4) as usize;
    let dims: Vec<usize> = (0..rank).map(|_| (b.u8() % 4) as usize).collect();
    let n: usize = dims.iter().product();
    let t = Tensor::arange(0.0, n as f64, 1.0, DType::F64, Device::Cpu)
        .and_then(|t| t.reshape(dims.clone()))
        .unwrap();
    let len = (b.u8() % 6) as usize;
    let mut key = Vec::new();
    let mut basic = Vec::new();
    let mut all_basic = true;
    for _ in 0..len {
        match b.u8() % 8 {
            0 | 1 => {
                let i = b.i64();
                key.push(Indexer::Select(i));
                basic.push(Basic::Select(i));
            }
            2 | 3 => {
                let opt = |b: &mut Bytes| if b.u8() % 3 == 0 { None } else { Some(b.i64()) };
                let (start, stop) = (opt(&mut b), opt(&mut b));
                let step = if b.u8() % 4 == 0 {
                    b.i64()
                } else {
                    1 + (b.u8() % 3) as i64
                };
                key.push(Indexer::Slice { start, stop, step });
                basic.push(Basic::Slice(start, stop, step));
            }
            4 => {
                key.push(Indexer::NewAxis);
                basic.push(Basic::NewAxis);
            }
            5 => {
                key.push(Indexer::Ellipsis);
                basic.push(Basic::Ellipsis);
            }
            6 => {
                all_basic = false;
                let m = (b.u8() % 4) as usize;
                let idx: Vec<i64> = (0..m).map(|_| b.i64() % 5).collect();
                key.push(Indexer::Tensor(
                    Tensor::from_vec(idx, [m], Device::Cpu).unwrap(),
                ));
            }
            _ => {
                all_basic = false;
                let m = (b.u8() % 4) as usize;
                let mask: Vec<u8> = (0..m).map(|_| b.u8() % 2).collect();
                let mask = Tensor::from_vec(mask, [m], Device::Cpu)
                    .and_then(|t| t.to_dtype(DType::Bool))
                    .unwrap();
                key.push(Indexer::Tensor(mask));
            }
        }
    }
    let got = t.index(&key);
    if all_basic {
        let want = reference_basic(&dims, &basic);
        match (&got, &want) {
            (Ok(g), Some((wd, wv))) => {
                assert_eq!(g.dims(), &wd[..], "t{dims:?}[{basic:?}]: shape");
                assert_eq!(
                    &g.to_vec::<f64>().unwrap(),
                    wv,
                    "t{dims:?}[{basic:?}]: values"
                );
            }
            (Err(_), None) => {}
            (Ok(g), None) => panic!(
                "t{dims:?}[{basic:?}] gave {:?} where PyTorch raises",
                g.dims()
            ),
            (Err(e), Some(_)) => panic!("t{dims:?}[{basic:?}] raised where PyTorch works: {e}"),
        }
    }
    // assignment through the same key: exactly the selected elements change
    let Ok(sel) = got else { return };
    let target = t.contiguous_copy().unwrap();
    let value = Tensor::scalar(-1.0, DType::F64, Device::Cpu).unwrap();
    if target.index_put_(&key, &value, false).is_ok() {
        let picked: std::collections::HashSet<u64> = sel
            .to_vec::<f64>()
            .unwrap()
            .iter()
            .map(|v| *v as u64)
            .collect();
        for (i, v) in target.to_vec::<f64>().unwrap().iter().enumerate() {
            let want = if picked.contains(&(i as u64)) {
                -1.0
            } else {
                i as f64
            };
            assert_eq!(*v, want, "t{dims:?}[{key:?}] = -1: element {i}");
        }
    }
}

/// Shape arguments from arbitrary bytes (huge, negative, -1 inferred, out-of-range dims) on
/// every view and shape op: an error or a result with a consistent element count.
pub fn shapes(data: &[u8]) {
    let mut b = Bytes(data);
    let rank = (b.u8() % 4) as usize;
    let dims: Vec<usize> = (0..rank).map(|_| (b.u8() % 4) as usize).collect();
    let n: usize = dims.iter().product();
    let t = Tensor::arange(0.0, n as f64, 1.0, DType::F32, Device::Cpu)
        .and_then(|t| t.reshape(dims.clone()))
        .unwrap();
    let k = (b.u8() % 4) as usize;
    let args: Vec<i64> = (0..k).map(|_| b.i64()).collect();
    let uargs: Vec<usize> = (0..k).map(|_| b.usize()).collect();
    let check = |r: backprop::Result<Tensor>, same_numel: bool| {
        if let Ok(r) = r {
            let prod = r
                .dims()
                .iter()
                .try_fold(1u128, |a, &d| a.checked_mul(d as u128))
                .expect("dims multiply within u128");
            assert!(
                prod <= i64::MAX as u128,
                "{:?}: extents beyond int64",
                r.dims()
            );
            if same_numel {
                assert_eq!(r.numel(), n, "{dims:?} -> {:?}", r.dims());
            }
            if prod <= 1 << 16 {
                // small enough to materialise: the layout must address only valid memory
                let _ = r.contiguous().map(|c| c.to_vec::<f32>().map(|v| v.len()));
            }
        }
    };
    match b.u8() % 10 {
        0 => check(t.reshape_infer(&args), true),
        1 => check(t.view(&args), true),
        2 => check(t.expand(&args), false),
        3 => check(t.reshape(uargs.clone()), true),
        4 => check(t.broadcast_to(&backprop::Shape::new(uargs.clone())), false),
        5 => {
            // repeat allocates its result: keep what could succeed small (huge products must
            // still fail cleanly, and do before allocating)
            let total = uargs
                .iter()
                .chain(&dims)
                .try_fold(1u128, |a, &d| a.checked_mul(d as u128));
            if total.is_none_or(|p| p <= 1 << 20 || p > i64::MAX as u128) {
                check(t.repeat(&uargs), false)
            }
        }
        6 => check(t.squeeze_dims(&args), true),
        7 => {
            let d = args.first().copied().unwrap_or(0);
            let (s, l) = (b.usize(), b.usize());
            let (d, rest) = (d, (s, l));
            if let Ok(d) = usize::try_from(d) {
                check(
                    t.slice_step(d, rest.0, rest.1, 1 + (b.u8() % 3) as usize),
                    false,
                );
            }
        }
        8 => {
            let perm: Vec<usize> = uargs.clone();
            check(t.permute(&perm[..]), true);
        }
        _ => {
            if let Some(&c) = uargs.first() {
                for piece in t.chunk(c, 0usize).into_iter().flatten() {
                    check(Ok(piece), false);
                }
            }
        }
    }
}
