// Sliding-window kernels: unfold (im2col) and fold (col2im), the two primitives convolution and
// pooling are composed from.
//
// Words as in elementwise.wgsl: every buffer is u32 words (f32 bits, i32 for the device's int64,
// 0/1 for bool; override DT: 0 f32, 1 i32, 2 bool).
//
// params (both entry points):
//   [0] n (threads = output elements)   [1] N [2] C [3] H [4] W (the image, [N, C, H, W])
//   [5] kh [6] kw [7] sh [8] sw [9] ph [10] pw [11] dh [12] dw [13] oh [14] ow (window positions)
//   [15] offset of the input, [16..20) its 4 (unfold: image) or 3 (fold: columns) strides
//   unfold: [20] the pad word (bits of the value read outside the image)
//
// unfold: out [N, C*kh*kw, oh*ow] contiguous, out[n, (c*kh+ki)*kw+kj, oi*ow+oj] =
//   img[n, c, oi*sh + ki*dh - ph, oj*sw + kj*dw - pw], or the pad word outside the image.
// fold: out [N, C, H, W] contiguous, the adjoint of unfold: each output pixel gathers (in a
//   fixed order, so the result is deterministic and needs no atomics) every column entry that
//   unfold would have read from it. f32 and i32 only.

override DT: u32 = 0u;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

const WG: u32 = 256u;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
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
        out[i] = params[20];
        return;
    }
    out[i] = in0[params[15] + n * params[16] + c * params[17] + u32(hi) * params[18] + u32(wj) * params[19]];
}

fn add_words(a: u32, b: u32) -> u32 {
    if (DT == 0u) {
        return bitcast<u32>(bitcast<f32>(a) + bitcast<f32>(b));
    }
    return bitcast<u32>(bitcast<i32>(a) + bitcast<i32>(b));
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
    var acc = 0u; // 0 is +0.0 for f32 and 0 for i32
    for (var ki = 0u; ki < kh; ki++) {
        // the window row oi that reads image row y through kernel row ki: oi*sh = y + ph - ki*dh
        let t = i32(y + ph) - i32(ki * dh);
        if (t < 0 || u32(t) % sh != 0u) {
            continue;
        }
        let oi = u32(t) / sh;
        if (oi >= oh) {
            continue;
        }
        for (var kj = 0u; kj < kw; kj++) {
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
            acc = add_words(acc, in0[src]);
        }
    }
    out[i] = acc;
}
