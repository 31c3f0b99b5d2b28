// Softmax and log-softmax along one dim of a strided f32 view, max-subtracted so nothing
// overflows: y = exp(x - m) / s, or log y = x - m - log(s), with m the row max and
// s = sum(exp(x - m)). A row of all -inf gives NaN, as on the CPU and in PyTorch.
//
// `softmax`: one workgroup of 256 threads per row (three strided passes with tree combines).
// `softmax_thin`: one thread per row, for many short rows (class logits). The host keeps rows
// short enough for either that no invocation loops past the bound of common.wgsl; longer rows
// are composed from the reduce and elementwise kernels.
//
// Parameters:
//   [0] rows  [1] len (extent of the dim)  [2] input stride along the dim
//   [3] output stride along the dim  [4] ro (rank of the other dims)  [5] input offset
//   [6, 6+ro) other dims, then input strides[ro], then output strides[ro]
// The output is C-contiguous in the input's shape.

// 0 = softmax, 1 = log_softmax.
override LOG: u32 = 0u;

@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

var<workgroup> sh: array<f32, 256>;

// (input offset, output offset) of the start of row `row`.
fn row_offsets(row: u32) -> vec2<u32> {
    let ro = params[4];
    var ioff = params[5];
    var ooff = 0u;
    var rem = row;
    for (var d = ro; d > 0u; d--) {
        let size = params[5u + d];
        let c = rem % size;
        rem = rem / size;
        ioff += c * params[5u + ro + d];
        ooff += c * params[5u + 2u * ro + d];
    }
    return vec2<u32>(ioff, ooff);
}

// The sum of every invocation's `v` over the workgroup (a tree in `sh`), the same in every
// invocation. Call it from uniform control flow: it has barriers.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    sh[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sh[lid] = sh[lid] + sh[lid + s];
        }
        workgroupBarrier();
    }
    let total = sh[0];
    // everyone has read the total before `sh` is written again
    workgroupBarrier();
    return total;
}

fn finish(x: f32, m: f32, s: f32, log_s: f32) -> f32 {
    if (LOG == 1u) {
        return x - m - log_s;
    }
    return exp(x - m) / s;
}

fn safe_log(s: f32) -> f32 {
    // s >= 1 whenever the max is finite; NaN/inf rows carry NaN through x - m anyway
    if (s > 0.0) {
        return log(s);
    }
    return from_bits(0x7fc00000u);
}

@compute @workgroup_size(256)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params[0]) {
        return;
    }
    let len = params[1];
    let istr = params[2];
    let ostr = params[3];
    let offs = row_offsets(row);

    var m = from_bits(0xff800000u);
    for (var i = lid; i < len; i += WG) {
        m = max_nan(m, bitcast<f32>(in0[offs.x + i * istr]));
    }
    sh[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sh[lid] = max_nan(sh[lid], sh[lid + s]);
        }
        workgroupBarrier();
    }
    m = sh[0];
    workgroupBarrier();

    var acc = 0.0;
    for (var i = lid; i < len; i += WG) {
        acc += exp(bitcast<f32>(in0[offs.x + i * istr]) - m);
    }
    let total = workgroup_sum(lid, acc);
    let log_total = safe_log(total);
    for (var i = lid; i < len; i += WG) {
        let x = bitcast<f32>(in0[offs.x + i * istr]);
        out[offs.y + i * ostr] = bitcast<u32>(finish(x, m, total, log_total));
    }
}

@compute @workgroup_size(256)
fn softmax_thin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = (wid.y * nwg.x + wid.x) * WG + lid;
    if (row >= params[0]) {
        return;
    }
    let len = params[1];
    let istr = params[2];
    let ostr = params[3];
    let offs = row_offsets(row);
    var m = from_bits(0xff800000u);
    for (var i = 0u; i < len; i++) {
        m = max_nan(m, bitcast<f32>(in0[offs.x + i * istr]));
    }
    var total = 0.0;
    for (var i = 0u; i < len; i++) {
        total += exp(bitcast<f32>(in0[offs.x + i * istr]) - m);
    }
    let log_total = safe_log(total);
    for (var i = 0u; i < len; i++) {
        let x = bitcast<f32>(in0[offs.x + i * istr]);
        out[offs.y + i * ostr] = bitcast<u32>(finish(x, m, total, log_total));
    }
}

// ---------------------------------------------------------------------------------------------
// The gradient: softmax's `y (g - sum(g y))` or log-softmax's `g - exp(y) sum(g)` along the dim,
// from the upstream gradient g (in0) and the forward's output y (in1), into a C-contiguous out.
// `softmax_backward`: one workgroup per row; `softmax_backward_thin`: one thread per row.
//
// Parameters:
//   [0] rows  [1] len  [2] g stride along the dim  [3] y stride  [4] out stride
//   [5] ro (rank of the other dims)  [6] g offset  [7] y offset
//   [8, 8+ro) other dims, then g strides[ro], y strides[ro], out strides[ro]

@group(0) @binding(2) var<storage, read> in1: array<u32>;

// (g offset, y offset, out offset) of the start of row `row`.
fn bwd_row_offsets(row: u32) -> vec3<u32> {
    let ro = params[5];
    var o = vec3<u32>(params[6], params[7], 0u);
    var rem = row;
    for (var d = ro; d > 0u; d--) {
        let size = params[7u + d];
        let c = rem % size;
        rem = rem / size;
        o.x += c * params[7u + ro + d];
        o.y += c * params[7u + 2u * ro + d];
        o.z += c * params[7u + 3u * ro + d];
    }
    return o;
}

// the per-element term of the row sum: g (log) or g y (softmax)
fn bwd_term(o: vec3<u32>, i: u32) -> f32 {
    let g = bitcast<f32>(in0[o.x + i * params[2]]);
    if (LOG == 1u) {
        return g;
    }
    return g * bitcast<f32>(in1[o.y + i * params[3]]);
}

fn bwd_finish(o: vec3<u32>, i: u32, s: f32) {
    let g = bitcast<f32>(in0[o.x + i * params[2]]);
    let y = bitcast<f32>(in1[o.y + i * params[3]]);
    var r: f32;
    if (LOG == 1u) {
        r = g - exp(y) * s;
    } else {
        r = y * (g - s);
    }
    out[o.z + i * params[4]] = bitcast<u32>(r);
}

@compute @workgroup_size(256)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params[0]) {
        return;
    }
    let len = params[1];
    let o = bwd_row_offsets(row);
    var acc = 0.0;
    for (var i = lid; i < len; i += WG) {
        acc += bwd_term(o, i);
    }
    let total = workgroup_sum(lid, acc);
    for (var i = lid; i < len; i += WG) {
        bwd_finish(o, i, total);
    }
}

@compute @workgroup_size(256)
fn softmax_backward_thin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = (wid.y * nwg.x + wid.x) * WG + lid;
    if (row >= params[0]) {
        return;
    }
    let len = params[1];
    let o = bwd_row_offsets(row);
    var total = 0.0;
    for (var i = 0u; i < len; i++) {
        total += bwd_term(o, i);
    }
    for (var i = 0u; i < len; i++) {
        bwd_finish(o, i, total);
    }
}
