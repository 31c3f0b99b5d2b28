// Sliding-window kernels: unfold (im2col) and fold (col2im), the two primitives convolution and
// pooling are composed from.
//
// Values of any dtype (common.wgsl's storage convention; int64 is two words per value).
//
// params (both entry points):
//   [0] n (threads = output elements)   [1] N [2] C [3] H [4] W (the image, [N, C, H, W])
//   [5] kh [6] kw [7] sh [8] sw [9] ph [10] pw [11] dh [12] dw [13] oh [14] ow (window positions)
//   [15] offset of the input, [16..20) its 4 (unfold: image) or 3 (fold: columns) strides
//   unfold: [20] [21] the pad value's words (low, high) (what is read outside the image)
//   fold: [20] ki_begin [21] ki_end [22] kj_begin [23] kj_end [24] accumulate: the kernel
//         positions this dispatch sums (the host splits large kernels over several dispatches
//         that accumulate, so no invocation loops past the bound of common.wgsl)
//
// unfold: out [N, C*kh*kw, oh*ow] contiguous, out[n, (c*kh+ki)*kw+kj, oi*ow+oj] =
//   img[n, c, oi*sh + ki*dh - ph, oj*sw + kj*dw - pw], or the pad word outside the image.
// fold: out [N, C, H, W] contiguous, the adjoint of unfold: each output pixel gathers (in a
//   fixed order, so the result is deterministic and needs no atomics) every column entry that
//   unfold would have read from it. float32 and int64 only.

override DT: u32 = 0u;

@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

fn ld(e: u32) -> vec2<u32> {
    if (DT == DT_I64) {
        return vec2<u32>(in0[2u * e], in0[2u * e + 1u]);
    }
    return vec2<u32>(in0[e], 0u);
}

fn st(e: u32, v: vec2<u32>) {
    if (DT == DT_I64) {
        out[2u * e] = v.x;
        out[2u * e + 1u] = v.y;
    } else {
        out[e] = v.x;
    }
}

@compute @workgroup_size(256)
fn unfold(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let C = params[2]; let H = params[3]; let W = params[4];
    let kh = params[5]; let kw = params[6];
    let oh = params[13]; let ow = params[14];
    let L = oh * ow;
    let l = i % L;
    let row = (i / L) % (C * kh * kw);
    let n = i / (L * C * kh * kw);
    let kj = row % kw;
    let ki = (row / kw) % kh;
    let c = row / (kw * kh);
    let oi = l / ow;
    let oj = l % ow;
    let hi = i32(oi * params[7] + ki * params[11]) - i32(params[9]);
    let wj = i32(oj * params[8] + kj * params[12]) - i32(params[10]);
    if (hi < 0 || wj < 0 || u32(hi) >= H || u32(wj) >= W) {
        st(i, vec2<u32>(params[20], params[21]));
        return;
    }
    st(i, ld(params[15] + n * params[16] + c * params[17] + u32(hi) * params[18] + u32(wj) * params[19]));
}

fn add_values(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (DT == DT_F32) {
        return vec2<u32>(bitcast<u32>(bitcast<f32>(a.x) + bitcast<f32>(b.x)), 0u);
    }
    return i64_add(a, b);
}

@compute @workgroup_size(256)
fn fold(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let C = params[2]; let H = params[3]; let W = params[4];
    let kh = params[5]; let kw = params[6];
    let sh = params[7]; let sw = params[8];
    let ph = params[9]; let pw = params[10];
    let dh = params[11]; let dw = params[12];
    let oh = params[13]; let ow = params[14];
    let x = i % W;
    let y = (i / W) % H;
    let c = (i / (W * H)) % C;
    let n = i / (W * H * C);
    var acc = I64_ZERO; // +0.0 for float32, 0 for int64
    if (params[24] == 1u) {
        if (DT == DT_I64) {
            acc = vec2<u32>(out[2u * i], out[2u * i + 1u]);
        } else {
            acc = vec2<u32>(out[i], 0u);
        }
    }
    for (var ki = params[20]; ki < params[21]; ki++) {
        // the window row oi that reads image row y through kernel row ki: oi*sh = y + ph - ki*dh
        let t = i32(y + ph) - i32(ki * dh);
        if (t < 0 || u32(t) % sh != 0u) {
            continue;
        }
        let oi = u32(t) / sh;
        if (oi >= oh) {
            continue;
        }
        for (var kj = params[22]; kj < params[23]; kj++) {
            let u = i32(x + pw) - i32(kj * dw);
            if (u < 0 || u32(u) % sw != 0u) {
                continue;
            }
            let oj = u32(u) / sw;
            if (oj >= ow) {
                continue;
            }
            let row = (c * kh + ki) * kw + kj;
            let src = params[15] + n * params[16] + row * params[17] + (oi * ow + oj) * params[18];
            acc = add_values(acc, ld(src));
        }
    }
    st(i, acc);
}

// pool_argmax: max-pooling's choice (BackendStorage::pool_argmax), one invocation per window.
//   params as unfold's ([13] [14] are the output extent, which ceil mode may make larger than
//   the windows that fit); float32 or int64 input; out [N, C, oh, ow] int64: the flat index
//   y * W + x (into the plane) kept by PyTorch's scan: row-major over the in-bounds taps,
//   `v > best || isnan(v)` from -inf at the first in-bounds tap. The host bounds kh * kw.
fn pool_better(v: vec2<u32>, best: vec2<u32>) -> bool {
    if (DT == DT_I64) {
        return i64_lt(best, v);
    }
    let fv = bitcast<f32>(v.x);
    return fv > bitcast<f32>(best.x) || is_nan(fv);
}

@compute @workgroup_size(256)
fn pool_argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let C = params[2]; let H = params[3]; let W = params[4];
    let kh = params[5]; let kw = params[6];
    let oh = params[13]; let ow = params[14];
    let oj = i % ow;
    let oi = (i / ow) % oh;
    let c = (i / (ow * oh)) % C;
    let n = i / (ow * oh * C);
    let base = params[15] + n * params[16] + c * params[17];
    var found = false;
    var best = vec2<u32>(0u, 0u);
    var best_i = 0u;
    for (var ki = 0u; ki < kh; ki++) {
        let y = i32(oi * params[7] + ki * params[11]) - i32(params[9]);
        if (y < 0 || u32(y) >= H) {
            continue;
        }
        for (var kj = 0u; kj < kw; kj++) {
            let x = i32(oj * params[8] + kj * params[12]) - i32(params[10]);
            if (x < 0 || u32(x) >= W) {
                continue;
            }
            let v = ld(base + u32(y) * params[18] + u32(x) * params[19]);
            if (!found || pool_better(v, best)) {
                found = true;
                best = v;
                best_i = u32(y) * W + u32(x);
            }
        }
    }
    out[2u * i] = best_i;
    out[2u * i + 1u] = 0u;
}
