// Fused scaled dot-product attention (flash attention): softmax(q k^T * scale) v without the
// L x S score matrix in memory. One workgroup of 256 threads per query row (forward, dQ) or per
// key row (dK, dV); the other sequence is walked in tiles of 256, one element per thread, with
// an online softmax (forward) or the saved log-sum-exp (backward). Thread `t` owns output
// column `t`, so the head dims must be at most 256 (the host checks, and composes larger heads
// from matmul and softmax).
//
// Operands are contiguous f32: q [B, L, E], k [B, S, E], v [B, S, Ev], the output's gradient
// g [B, L, Ev], stats [2, B, L] (log-sum-exp, then D = rowsum(g * out)).
//
// Parameters:
//   [0] rows (B*L for attn_fwd / attn_dq, B*S for attn_dkv)  [1] L  [2] S  [3] E  [4] Ev
//   [5] causal (row i sees keys j <= i)  [6] scale (f32 bits)
//   [7] q offset  [8] k offset  [9] v offset  [10] g offset  [11] stats offset
//
// Loop bounds: per invocation, tiles x (E + Ev + 256 + 16) iterations; the host keeps that
// under the budget of common.wgsl.

@group(0) @binding(1) var<storage, read> q: array<u32>;
@group(0) @binding(2) var<storage, read> k: array<u32>;
@group(0) @binding(3) var<storage, read> v: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<storage, read_write> out2: array<u32>;
@group(0) @binding(6) var<storage, read> g: array<u32>;
@group(0) @binding(7) var<storage, read> stats: array<u32>;

var<workgroup> red: array<f32, 256>;
var<workgroup> t0_sh: array<f32, 256>;
var<workgroup> t1_sh: array<f32, 256>;

// One loader per operand: an entry point's layout holds only the bindings it reaches.
fn ldq(i: u32) -> f32 {
    return bitcast<f32>(q[params[7] + i]);
}

fn ldk(i: u32) -> f32 {
    return bitcast<f32>(k[params[8] + i]);
}

fn ldv(i: u32) -> f32 {
    return bitcast<f32>(v[params[9] + i]);
}

fn ldg(i: u32) -> f32 {
    return bitcast<f32>(g[params[10] + i]);
}

fn lds(i: u32) -> f32 {
    return bitcast<f32>(stats[params[11] + i]);
}

// The max (`is_max`) or sum of every invocation's `x` over the workgroup; uniform control flow.
fn wg_reduce(lid: u32, x: f32, is_max: bool) -> f32 {
    red[lid] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let a = red[lid];
            let b = red[lid + s];
            red[lid] = select(a + b, select(b, a, a > b || is_nan(a)), is_max);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// q row `qi` (global row in [0, B*L)) . k row `kj` (global row in [0, B*S)), times the scale.
fn score(qi: u32, kj: u32) -> f32 {
    let e = params[3];
    var acc = 0.0;
    for (var d = 0u; d < e; d++) {
        acc += ldq(qi * e + d) * ldk(kj * e + d);
    }
    return acc * bitcast<f32>(params[6]);
}

// g row `qi` . v row `kj`.
fn grad_dot_v(qi: u32, kj: u32) -> f32 {
    let ev = params[4];
    var acc = 0.0;
    for (var d = 0u; d < ev; d++) {
        acc += ldg(qi * ev + d) * ldv(kj * ev + d);
    }
    return acc;
}

// Keys query row `i` (within its batch) sees.
fn key_end(i: u32) -> u32 {
    return select(params[2], min(params[2], i + 1u), params[5] == 1u);
}

@compute @workgroup_size(256)
fn attn_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params[0]) {
        return;
    }
    let L = params[1];
    let S = params[2];
    let ev = params[4];
    let b = row / L;
    let kend = key_end(row % L);
    var m = from_bits(0xff800000u);
    var l = 0.0;
    var acc = 0.0;
    for (var t0 = 0u; t0 < kend; t0 += WG) {
        let j = t0 + lid;
        var s = from_bits(0xff800000u);
        if (j < kend) {
            s = score(row, b * S + j);
        }
        let m_new = max_nan(m, wg_reduce(lid, s, true));
        // m = -inf only before the first tile (every tile has a visible key)
        let corr = select(exp(m - m_new), 0.0, m == from_bits(0xff800000u));
        var p = 0.0;
        if (j < kend) {
            p = exp(s - m_new);
        }
        t0_sh[lid] = p;
        l = l * corr + wg_reduce(lid, p, false);
        m = m_new;
        let n = min(WG, kend - t0);
        if (lid < ev) {
            var a = acc * corr;
            for (var jj = 0u; jj < n; jj++) {
                a += t0_sh[jj] * ldv((b * S + t0 + jj) * ev + lid);
            }
            acc = a;
        }
        workgroupBarrier();
    }
    if (lid < ev) {
        out[row * ev + lid] = bitcast<u32>(acc / l);
    }
    if (lid == 0u) {
        out2[row] = bitcast<u32>(m + log(l));
    }
}

@compute @workgroup_size(256)
fn attn_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params[0]) {
        return;
    }
    let L = params[1];
    let S = params[2];
    let e = params[3];
    let b = row / L;
    let kend = key_end(row % L);
    let lse = lds(row);
    let dd = lds(params[0] + row);
    let scale = bitcast<f32>(params[6]);
    var acc = 0.0;
    for (var t0 = 0u; t0 < kend; t0 += WG) {
        let j = t0 + lid;
        var ds = 0.0;
        if (j < kend) {
            let p = exp(score(row, b * S + j) - lse);
            ds = p * (grad_dot_v(row, b * S + j) - dd) * scale;
        }
        t0_sh[lid] = ds;
        workgroupBarrier();
        let n = min(WG, kend - t0);
        if (lid < e) {
            for (var jj = 0u; jj < n; jj++) {
                acc += t0_sh[jj] * ldk((b * S + t0 + jj) * e + lid);
            }
        }
        workgroupBarrier();
    }
    if (lid < e) {
        out[row * e + lid] = bitcast<u32>(acc);
    }
}

@compute @workgroup_size(256)
fn attn_dkv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params[0]) {
        return;
    }
    let L = params[1];
    let S = params[2];
    let e = params[3];
    let ev = params[4];
    let b = row / S;
    let j = row % S;
    let rows_q = params[0] / S * L;
    // causal: only queries i >= j see key j
    let first = select(0u, j, params[5] == 1u);
    let scale = bitcast<f32>(params[6]);
    var dk = 0.0;
    var dv = 0.0;
    for (var t0 = first; t0 < L; t0 += WG) {
        let i = t0 + lid;
        var p = 0.0;
        var ds = 0.0;
        if (i < L) {
            let qi = b * L + i;
            p = exp(score(qi, row) - lds(qi));
            ds = p * (grad_dot_v(qi, row) - lds(rows_q + qi)) * scale;
        }
        t0_sh[lid] = p;
        t1_sh[lid] = ds;
        workgroupBarrier();
        let n = min(WG, L - t0);
        if (lid < ev) {
            for (var ii = 0u; ii < n; ii++) {
                dv += t0_sh[ii] * ldg((b * L + t0 + ii) * ev + lid);
            }
        }
        if (lid < e) {
            for (var ii = 0u; ii < n; ii++) {
                dk += t1_sh[ii] * ldq((b * L + t0 + ii) * e + lid);
            }
        }
        workgroupBarrier();
    }
    if (lid < e) {
        out[row * e + lid] = bitcast<u32>(dk);
    }
    if (lid < ev) {
        out2[row * ev + lid] = bitcast<u32>(dv);
    }
}
