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
    sh[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            sh[lid] = sh[lid] + sh[lid + s];
        }
        workgroupBarrier();
    }
    let total = sh[0];
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
