// Reductions: sum / max / min over any set of dims, and argmax / argmin along one dim.
//
// Buffers are array<u32> words read according to `DT` (0 = f32, 1 = i32, 2 = bool; see
// elementwise.wgsl). The host splits the input view into "kept" dims (one output each) and
// "reduced" dims (combined into that output), both as (dims, strides) lists, so any set of dims,
// transposed or broadcast, reduces without a copy.
//
// `reduce` / `arg_reduce`: one workgroup per (output, chunk of the reduced elements); the 256
// threads stride through the chunk, then combine in a workgroup tree. When a reduction has several
// chunks the host reduces the [outputs, chunks] partials again with the same kernel, until one
// chunk remains (a multi-pass tree, so huge reductions keep the whole GPU busy).
// `reduce_thin` / `arg_reduce_thin`: one thread per output, for many short reductions.
// Long arg-reductions run in two passes: `arg_reduce_partial` writes each chunk's winner (value
// and index), `arg_reduce_combine` picks among them.
//
// No thread loops more than a few thousand times: besides keeping the GPU busy, this matters on
// Mesa's llvmpipe/lavapipe (the CI device), which cuts any shader loop off after 65535 iterations.
//
// Parameters of reduce / reduce_thin:
//   [0] n_out  [1] red_n  [2] chunk (elements per workgroup)  [3] n_chunks
//   [4] kr (kept rank)  [5] rr (reduced rank)  [6] offset
//   [7, 7+kr) kept dims, then kept strides[kr], then reduced dims[rr], then reduced strides[rr]
// The output is [n_out, n_chunks], C-contiguous.
//
// Parameters of arg_reduce / arg_reduce_partial / arg_reduce_thin:
//   [0] n_out  [1] len (extent of the dim)  [2] stride of the dim  [3] chunk  [4] n_chunks
//   [5] kr  [6] offset  [7, 7+kr) kept dims, then kept strides[kr]
// The output holds i32 indices (the device's int64 representation). Ties give the first index;
// NaN counts as the extreme, as on the CPU and in PyTorch.

// 0 = sum, 1 = max, 2 = min (ReduceOp); for arg_reduce 0 = argmax, 1 = argmin.
override OP: u32 = 0u;
override DT: u32 = 0u;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(2) var<storage, read> in1: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_v: array<u32>;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

var<workgroup> sh_v: array<u32, 256>;
var<workgroup> sh_i: array<u32, 256>;

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// The identity of the reduction, as a word.
fn identity() -> u32 {
    if (OP == 0u) {
        return 0u; // 0.0, 0, false
    }
    if (DT == 0u) {
        return select(0x7f800000u, 0xff800000u, OP == 1u); // -inf for max, +inf for min
    }
    if (DT == 1u) {
        return select(0x7fffffffu, 0x80000000u, OP == 1u); // i32 min for max, i32 max for min
    }
    return select(1u, 0u, OP == 1u); // bool: max is any, min is all
}

fn combine(a: u32, b: u32) -> u32 {
    if (DT == 0u) {
        let x = bitcast<f32>(a);
        let y = bitcast<f32>(b);
        if (OP == 0u) {
            return bitcast<u32>(x + y);
        }
        // NaN wins, as in the CPU's max_nan / min_nan
        if (is_nan(x)) {
            return a;
        }
        if (is_nan(y)) {
            return b;
        }
        if (OP == 1u) {
            return select(b, a, x > y);
        }
        return select(b, a, x < y);
    }
    if (DT == 1u) {
        let x = bitcast<i32>(a);
        let y = bitcast<i32>(b);
        if (OP == 0u) {
            return bitcast<u32>(x + y); // wraps, as the CPU's wrapping_add
        }
        if (OP == 1u) {
            return bitcast<u32>(max(x, y));
        }
        return bitcast<u32>(min(x, y));
    }
    // bool: sum is any (as on the CPU), max is any, min is all
    if (OP == 2u) {
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
        acc = combine(acc, in0[reduce_offset(o, r)]);
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
        out[g] = sh_v[0];
    }
}

@compute @workgroup_size(256)
fn reduce_thin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let o = (wid.y * nwg.x + wid.x) * WG + lid;
    if (o >= params[0]) {
        return;
    }
    var acc = identity();
    let red_n = params[1];
    for (var r = 0u; r < red_n; r++) {
        acc = combine(acc, in0[reduce_offset(o, r)]);
    }
    out[o] = acc;
}

// ---------------------------------------------------------------- arg reductions

// Whether candidate (v2, i2) beats the current best (v1, i1): NaN first, then the larger (argmax)
// or smaller (argmin) value, then the smaller index. NONE marks "no element yet".
fn arg_better(v1: u32, i1: u32, v2: u32, i2: u32) -> bool {
    if (i2 == NONE) {
        return false;
    }
    if (i1 == NONE) {
        return true;
    }
    var gt: bool;
    var eq: bool;
    if (DT == 0u) {
        let x = bitcast<f32>(v1);
        let y = bitcast<f32>(v2);
        let nx = is_nan(x);
        let ny = is_nan(y);
        if (nx || ny) {
            if (nx && ny) {
                return i2 < i1;
            }
            return ny;
        }
        gt = select(y > x, y < x, OP == 1u);
        eq = x == y;
    } else {
        // i32, and bool words compared as integers
        let x = bitcast<i32>(v1);
        let y = bitcast<i32>(v2);
        gt = select(y > x, y < x, OP == 1u);
        eq = x == y;
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
fn arg_tree(lid: u32, bv: u32, bi: u32) -> vec2<u32> {
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
    return vec2<u32>(sh_v[0], sh_i[0]);
}

// The best (value, index) of chunk c of output o's line.
fn arg_chunk(o: u32, c: u32, lid: u32) -> vec2<u32> {
    let len = params[1];
    let stride = params[2];
    let start = c * params[3];
    let end = min(start + params[3], len);
    let base = arg_offset(o);
    var bv = 0u;
    var bi = NONE;
    for (var r = start + lid; r < end; r += WG) {
        let v = in0[base + r * stride];
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
        out[g] = select(best.y, 0u, best.y == NONE);
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
        out[g] = best.y;
        out_v[g] = best.x;
    }
}

// The second pass: the winners of [n_out, n_chunks] partials (values in0, indices in1).
// Parameters: [0] n_out [1] n_chunks.
@compute @workgroup_size(256)
fn arg_reduce_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let o = wid.y * nwg.x + wid.x;
    if (o >= params[0]) {
        return;
    }
    let n_chunks = params[1];
    var bv = 0u;
    var bi = NONE;
    for (var c = lid; c < n_chunks; c += WG) {
        let v = in0[o * n_chunks + c];
        let i = in1[o * n_chunks + c];
        if (arg_better(bv, bi, v, i)) {
            bv = v;
            bi = i;
        }
    }
    let best = arg_tree(lid, bv, bi);
    if (lid == 0u) {
        out[o] = select(best.y, 0u, best.y == NONE);
    }
}

// One thread per output, for many short lines.
@compute @workgroup_size(256)
fn arg_reduce_thin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let o = (wid.y * nwg.x + wid.x) * WG + lid;
    if (o >= params[0]) {
        return;
    }
    let len = params[1];
    let stride = params[2];
    let base = arg_offset(o);
    var bv = 0u;
    var bi = NONE;
    for (var r = 0u; r < len; r++) {
        let v = in0[base + r * stride];
        if (arg_better(bv, bi, v, r)) {
            bv = v;
            bi = r;
        }
    }
    out[o] = select(bi, 0u, bi == NONE);
}
