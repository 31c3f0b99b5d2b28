// Layer normalisation of contiguous f32 rows (Op::LayerNorm): one workgroup of 256 threads per
// row, as the CPU kernel (cpu/layer_norm.rs) computes it: a first mean m0, then the sums of
// d = x - m0 and d^2, which correct the mean (mean = m0 + mean(d)) and give the variance of the
// shifted data (var = mean(d^2) - mean(d)^2, no cancellation, and a constant row normalises to
// exactly 0), then the write. The statistics [2, rows] (means, then 1/sqrt(var + eps)) are kept
// for the backward, which reads the input again.
//
// Parameters (both entries):
//   [0] rows  [1] len  [2] eps (f32 bits)  [3] x offset  [4] g offset  [5] stats offset
// Loop bounds: three strided passes of len / 256 iterations; the host keeps len within the
// budget of common.wgsl (longer rows are composed from the reduce and elementwise kernels).

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> g: array<u32>;
@group(0) @binding(3) var<storage, read> stats_in: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<storage, read_write> stats_out: array<u32>;

var<workgroup> sh: array<vec2<f32>, 256>;

fn ldx(i: u32) -> f32 {
    return bitcast<f32>(x[params[3] + i]);
}

fn ldg(i: u32) -> f32 {
    return bitcast<f32>(g[params[4] + i]);
}

// The sums of both components of every invocation's `v` over the workgroup (a fixed tree, so
// the result does not depend on scheduling), the same in every invocation. Uniform control
// flow only: it has barriers.
fn workgroup_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
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

@compute @workgroup_size(256)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params[0]) {
        return;
    }
    let rows = params[0];
    let len = params[1];
    let eps = bitcast<f32>(params[2]);
    let base = row * len;
    let n = f32(len);

    var acc = 0.0;
    for (var i = lid; i < len; i += WG) {
        acc += ldx(base + i);
    }
    let m0 = workgroup_sum2(lid, vec2<f32>(acc, 0.0)).x / n;

    var s = vec2<f32>(0.0, 0.0);
    for (var i = lid; i < len; i += WG) {
        let d = ldx(base + i) - m0;
        s += vec2<f32>(d, d * d);
    }
    let tot = workgroup_sum2(lid, s) / n;
    let mean = m0 + tot.x;
    let rstd = 1.0 / sqrt(max(tot.y - tot.x * tot.x, 0.0) + eps);
    if (lid == 0u) {
        stats_out[row] = bitcast<u32>(mean);
        stats_out[rows + row] = bitcast<u32>(rstd);
    }
    for (var i = lid; i < len; i += WG) {
        out[base + i] = bitcast<u32>((ldx(base + i) - mean) * rstd);
    }
}

// dx = rstd (g - mean(g) - xhat mean(g xhat)), xhat = (x - mean) rstd.
@compute @workgroup_size(256)
fn layer_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= params[0]) {
        return;
    }
    let rows = params[0];
    let len = params[1];
    let base = row * len;
    let mean = bitcast<f32>(stats_in[params[5] + row]);
    let rstd = bitcast<f32>(stats_in[params[5] + rows + row]);

    var s = vec2<f32>(0.0, 0.0);
    for (var i = lid; i < len; i += WG) {
        let gv = ldg(base + i);
        s += vec2<f32>(gv, gv * ((ldx(base + i) - mean) * rstd));
    }
    let tot = workgroup_sum2(lid, s) / f32(len);
    for (var i = lid; i < len; i += WG) {
        let xhat = (ldx(base + i) - mean) * rstd;
        out[base + i] = bitcast<u32>(rstd * (ldg(base + i) - tot.x - xhat * tot.y));
    }
}
