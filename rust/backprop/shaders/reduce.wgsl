// Reductions: sum / max / min over any set of dims, and argmax / argmin along one dim, for
// float32, int64 (two words per value) and bool.
//
// The host splits the input view into "kept" dims (one output each) and "reduced" dims
// (combined into that output), both as (dims, strides) lists, so any set of dims, transposed or
// broadcast, reduces without a copy.
//
// `reduce` / `arg_reduce`: one workgroup per (output, chunk of the reduced elements); the 256
// threads stride through the chunk, then combine in a workgroup tree. When a reduction has
// several chunks the host reduces the [outputs, chunks] partials again with the same kernel,
// until one chunk remains (a multi-pass tree, so huge reductions keep the whole GPU busy).
// `reduce_thin` / `arg_reduce_thin`: one thread per output, for many short reductions.
// Long arg-reductions run in two passes: `arg_reduce_partial` writes each chunk's winner (value
// and index), `arg_reduce_combine` picks among them. The host bounds every loop (see common.wgsl).
//
// Parameters of reduce / reduce_thin:
//   [0] n_out  [1] red_n  [2] chunk (elements per workgroup)  [3] n_chunks
//   [4] kr (kept rank)  [5] rr (reduced rank)  [6] offset
//   [7, 7+kr) kept dims, then kept strides[kr], then reduced dims[rr], then reduced strides[rr]
// The output is [n_out, n_chunks], C-contiguous, of the input's dtype.
//
// Parameters of arg_reduce / arg_reduce_partial / arg_reduce_thin:
//   [0] n_out  [1] len (extent of the dim)  [2] stride of the dim  [3] chunk  [4] n_chunks
//   [5] kr  [6] offset  [7, 7+kr) kept dims, then kept strides[kr]
// The output holds int64 indices. Ties give the first index; NaN counts as the extreme, as on
// the CPU and in PyTorch. arg_reduce_partial writes u32 indices to `out` and values to `out_v`;
// arg_reduce_combine ([0] n_out [1] n_chunks) reads them back (values in0, indices in1).

override OP: u32 = 0u;
override DT: u32 = 0u;

@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(2) var<storage, read> in1: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_v: array<u32>;

var<workgroup> sh_v: array<vec2<u32>, 256>;
var<workgroup> sh_i: array<u32, 256>;

fn ld(e: u32) -> vec2<u32> {
    if (DT == DT_I64) {
        return vec2<u32>(in0[2u * e], in0[2u * e + 1u]);
    }
    return vec2<u32>(in0[e], 0u);
}

fn st_out(e: u32, v: vec2<u32>) {
    if (DT == DT_I64) {
        out[2u * e] = v.x;
        out[2u * e + 1u] = v.y;
    } else {
        out[e] = v.x;
    }
}

fn st_out_v(e: u32, v: vec2<u32>) {
    if (DT == DT_I64) {
        out_v[2u * e] = v.x;
        out_v[2u * e + 1u] = v.y;
    } else {
        out_v[e] = v.x;
    }
}

// An int64 index as two words.
fn st_index(e: u32, i: u32) {
    out[2u * e] = i;
    out[2u * e + 1u] = 0u;
}

// The identity of the reduction.
fn identity() -> vec2<u32> {
    if (OP == REDUCE_SUM) {
        return I64_ZERO; // 0.0, 0, false
    }
    let is_max = OP == REDUCE_MAX;
    if (DT == DT_F32) {
        return vec2<u32>(select(0x7f800000u, 0xff800000u, is_max), 0u); // -inf for max, +inf for min
    }
    if (DT == DT_I64) {
        return select(vec2<u32>(0xffffffffu, 0x7fffffffu), I64_MIN, is_max);
    }
    return vec2<u32>(select(1u, 0u, is_max), 0u); // bool: max is any, min is all
}

fn combine(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (DT == DT_F32) {
        let x = bitcast<f32>(a.x);
        let y = bitcast<f32>(b.x);
        if (OP == REDUCE_SUM) {
            return vec2<u32>(bitcast<u32>(x + y), 0u);
        }
        if (OP == REDUCE_MAX) {
            return vec2<u32>(bitcast<u32>(max_nan(x, y)), 0u);
        }
        return vec2<u32>(bitcast<u32>(min_nan(x, y)), 0u);
    }
    if (DT == DT_I64) {
        if (OP == REDUCE_SUM) {
            return i64_add(a, b); // wraps, as the CPU's wrapping_add
        }
        if (OP == REDUCE_MAX) {
            return i64_max(a, b);
        }
        return i64_min(a, b);
    }
    // bool: sum is any (as on the CPU), max is any, min is all
    if (OP == REDUCE_MIN) {
        return a & b;
    }
    return a | b;
}

// Storage offset of (kept index o, reduced index r).
fn reduce_offset(o: u32, r: u32) -> u32 {
    let kr = params[4];
    let rr = params[5];
    var off = params[6];
    var rem = o;
    for (var d = kr; d > 0u; d--) {
        let size = params[6u + d];
        off += (rem % size) * params[6u + kr + d];
        rem = rem / size;
    }
    let rbase = 7u + 2u * kr;
    rem = r;
    for (var d = rr; d > 0u; d--) {
        let size = params[rbase + d - 1u];
        off += (rem % size) * params[rbase + rr + d - 1u];
        rem = rem / size;
    }
    return off;
}

@compute @workgroup_size(256)
fn reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    let n_chunks = params[3];
    let o = g / n_chunks;
    let c = g % n_chunks;
    // whole workgroups past the end leave together, so the barriers below stay uniform
    if (o >= params[0]) {
        return;
    }
    let red_n = params[1];
    let chunk = params[2];
    let start = c * chunk;
    let end = min(start + chunk, red_n);
    var acc = identity();
    for (var r = start + lid; r < end; r += WG) {
        acc = combine(acc, ld(reduce_offset(o, r)));
    }
    sh_v[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sh_v[lid] = combine(sh_v[lid], sh_v[lid + s]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        st_out(g, sh_v[0]);
    }
}

@compute @workgroup_size(256)
fn reduce_thin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let o = linear_id(wid, nwg, lid);
    if (o >= params[0]) {
        return;
    }
    var acc = identity();
    let red_n = params[1];
    for (var r = 0u; r < red_n; r++) {
        acc = combine(acc, ld(reduce_offset(o, r)));
    }
    st_out(o, acc);
}

// ---------------------------------------------------------------- arg reductions

// Whether candidate (v2, i2) beats the current best (v1, i1): NaN first, then the larger (argmax)
// or smaller (argmin) value, then the smaller index. NONE marks "no element yet".
fn arg_better(v1: vec2<u32>, i1: u32, v2: vec2<u32>, i2: u32) -> bool {
    if (i2 == NONE) {
        return false;
    }
    if (i1 == NONE) {
        return true;
    }
    let want_max = OP == ARG_MAX;
    var gt: bool;
    var eq: bool;
    if (DT == DT_F32) {
        let x = bitcast<f32>(v1.x);
        let y = bitcast<f32>(v2.x);
        let nx = is_nan(x);
        let ny = is_nan(y);
        if (nx || ny) {
            if (nx && ny) {
                return i2 < i1;
            }
            return ny;
        }
        gt = select((y < x), (y > x), want_max);
        eq = x == y;
    } else {
        // int64, and bool words (high word 0) compared as integers
        gt = select(i64_lt(v2, v1), i64_lt(v1, v2), want_max);
        eq = i64_eq(v1, v2);
    }
    return gt || (eq && i2 < i1);
}

fn arg_offset(o: u32) -> u32 {
    let kr = params[5];
    var off = params[6];
    var rem = o;
    for (var d = kr; d > 0u; d--) {
        let size = params[6u + d];
        off += (rem % size) * params[6u + kr + d];
        rem = rem / size;
    }
    return off;
}

// Combines each thread's (value, index) in a workgroup tree; every thread gets the winner.
fn arg_tree(lid: u32, bv: vec2<u32>, bi: u32) -> u32 {
    sh_v[lid] = bv;
    sh_i[lid] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            if (arg_better(sh_v[lid], sh_i[lid], sh_v[lid + s], sh_i[lid + s])) {
                sh_v[lid] = sh_v[lid + s];
                sh_i[lid] = sh_i[lid + s];
            }
        }
        workgroupBarrier();
    }
    return sh_i[0];
}

// The best index of chunk c of output o's line (its value is left in sh_v[0]).
fn arg_chunk(o: u32, c: u32, lid: u32) -> u32 {
    let len = params[1];
    let stride = params[2];
    let start = c * params[3];
    let end = min(start + params[3], len);
    let base = arg_offset(o);
    var bv = I64_ZERO;
    var bi = NONE;
    for (var r = start + lid; r < end; r += WG) {
        let v = ld(base + r * stride);
        if (arg_better(bv, bi, v, r)) {
            bv = v;
            bi = r;
        }
    }
    return arg_tree(lid, bv, bi);
}

// One workgroup per (output, chunk); with one chunk per output this is the whole answer.
@compute @workgroup_size(256)
fn arg_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    let n_chunks = params[4];
    let o = g / n_chunks;
    if (o >= params[0]) {
        return;
    }
    let best = arg_chunk(o, g % n_chunks, lid);
    if (lid == 0u) {
        st_index(g, select(best, 0u, best == NONE));
    }
}

// The first pass of a long arg-reduction: each chunk's winner, value to out_v, index to out.
@compute @workgroup_size(256)
fn arg_reduce_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.y * nwg.x + wid.x;
    let n_chunks = params[4];
    let o = g / n_chunks;
    if (o >= params[0]) {
        return;
    }
    let best = arg_chunk(o, g % n_chunks, lid);
    if (lid == 0u) {
        out[g] = best;
        st_out_v(g, sh_v[0]);
    }
}

// The second pass: the winners of [n_out, n_chunks] partials (values in0, u32 indices in1).
@compute @workgroup_size(256)
fn arg_reduce_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let o = wid.y * nwg.x + wid.x;
    if (o >= params[0]) {
        return;
    }
    let n_chunks = params[1];
    var bv = I64_ZERO;
    var bi = NONE;
    for (var c = lid; c < n_chunks; c += WG) {
        let v = ld(o * n_chunks + c);
        let i = in1[o * n_chunks + c];
        if (arg_better(bv, bi, v, i)) {
            bv = v;
            bi = i;
        }
    }
    let best = arg_tree(lid, bv, bi);
    if (lid == 0u) {
        st_index(o, select(best, 0u, best == NONE));
    }
}

// One thread per output, for many short lines.
@compute @workgroup_size(256)
fn arg_reduce_thin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let o = linear_id(wid, nwg, lid);
    if (o >= params[0]) {
        return;
    }
    let len = params[1];
    let stride = params[2];
    let base = arg_offset(o);
    var bv = I64_ZERO;
    var bi = NONE;
    for (var r = 0u; r < len; r++) {
        let v = ld(base + r * stride);
        if (arg_better(bv, bi, v, r)) {
            bv = v;
            bi = r;
        }
    }
    st_index(o, select(bi, 0u, bi == NONE));
}
