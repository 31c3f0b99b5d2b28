// Fused optimizer updates: one thread per element reads the gradient and updates the parameter
// and its optimizer state in place, so a step costs one dispatch per parameter instead of the
// ten or so elementwise kernels (and temporaries) of the same rule written with tensor ops.
// One entry point per rule of `optim::update::Rule` (PyTorch's update rules, term for term),
// with the same f32 arithmetic, in the same order, as the CPU's fused kernel
// (rust/backprop/src/optim/update.rs), including its flushing of denormal state to zero.
//
// Storage convention as in every file of shaders/: buffers are array<u32>, float32 as its bits.
// The host binds float32 tensors only (the optimizer runs on float parameters).
//
// Bindings: 1 the gradient (read), 2 the parameter (read_write), 3, 4, 5 the state buffers
// (read_write). A state the rule does not use this step is bound to a placeholder buffer that
// the kernel never touches (its flag is off).
//
// Parameters (binding 0, u32 words; scalars are f32 bits, precomputed by the host in f64 where
// the CPU kernel does so):
//   [0] n       number of elements (all operands are contiguous)
//   [1] flags   OPT_MAXIMIZE: the gradient is negated; the rule's flags below (the OPT_*
//               constants are generated from backprop::wgsl::optim_flags)
//   [2] offset of the gradient, [3] of the parameter, [4] [5] [6] of the states at bindings 3 4 5
//   [7...]      the rule's scalars:
//
//   sgd      OPT_MOMENTUM: has a momentum buffer (binding 3); OPT_VARIANT: nesterov;
//            OPT_FIRST_OR_DECOUPLED: first step (the
//            buffer is set to the gradient itself, as PyTorch does)
//            [7] lr  [8] momentum  [9] 1 - dampening  [10] weight_decay
//   adam     bindings 3 exp_avg, 4 exp_avg_sq, 5 max_exp_avg_sq; OPT_VARIANT: amsgrad;
//            OPT_FIRST_OR_DECOUPLED: decoupled weight decay (AdamW)
//            [7] beta1  [8] beta2  [9] eps  [10] weight_decay  [11] lr / (1 - beta1^t)
//            [12] 1 / sqrt(1 - beta2^t)  [13] 1 - lr * weight_decay  [14] 1 - beta1  [15] 1 - beta2
//   rmsprop  binding 3 square_avg; OPT_MOMENTUM: momentum (buffer at binding 4); OPT_VARIANT:
//            centered
//            (grad_avg at binding 5)
//            [7] lr  [8] alpha  [9] eps  [10] weight_decay  [11] momentum  [12] 1 - alpha
//   adagrad  binding 3 the sum of squares
//            [7] lr (already decayed)  [8] weight_decay  [9] eps
//
// Grid: workgroups of 256 along x, and y beyond 65535 groups; the element index is
// (wid.y * nwg.x + wid.x) * 256 + lid.

@group(0) @binding(1) var<storage, read> grad: array<u32>;
@group(0) @binding(2) var<storage, read_write> param: array<u32>;
@group(0) @binding(3) var<storage, read_write> st0: array<u32>;
@group(0) @binding(4) var<storage, read_write> st1: array<u32>;
@group(0) @binding(5) var<storage, read_write> st2: array<u32>;

// The smallest positive normal f32 (f32::MIN_POSITIVE on the host).
const MIN_NORMAL: f32 = 1.17549435e-38;

fn scalar(k: u32) -> f32 {
    return bitcast<f32>(params[7u + k]);
}

fn has(flag: u32) -> bool {
    return (params[1] & flag) != 0u;
}

// Optimizer state that decays geometrically ends up denormal, which some hardware computes on
// very slowly; such values move no parameter by a representable amount, so the state is flushed
// to zero (as on the CPU). NaN stays NaN (the comparison is false).
fn ftz(v: f32) -> f32 {
    return select(v, 0.0, abs(v) < MIN_NORMAL);
}

// The gradient (denormals flushed, as on the CPU), negated under maximize.
fn signed_grad(i: u32) -> f32 {
    let g = ftz(bitcast<f32>(grad[params[2] + i]));
    return select(g, -g, has(OPT_MAXIMIZE));
}

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= params[0] {
        return;
    }
    let lr = scalar(0u);
    let mom = scalar(1u);
    let damp = scalar(2u);
    let wd = scalar(3u);
    let pi = params[3] + i;
    let p = bitcast<f32>(param[pi]);
    let d = signed_grad(i) + wd * p;
    var step = d;
    if has(OPT_MOMENTUM) {
        let bi = params[4] + i;
        var b = d;
        if !has(OPT_FIRST_OR_DECOUPLED) {
            b = ftz(mom * bitcast<f32>(st0[bi]) + damp * d);
        }
        st0[bi] = bitcast<u32>(b);
        step = select(b, d + mom * b, has(OPT_VARIANT));
    }
    param[pi] = bitcast<u32>(p - lr * step);
}

@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= params[0] {
        return;
    }
    let b1 = scalar(0u);
    let b2 = scalar(1u);
    let eps = scalar(2u);
    let wd = scalar(3u);
    let step_size = scalar(4u);
    let inv_sqrt_b2 = scalar(5u);
    let decay = scalar(6u);
    // 1 - beta, computed by the host in f64 (from the f32-rounded beta it would not be
    // PyTorch's: the first step would exceed lr)
    let ob1 = scalar(7u);
    let ob2 = scalar(8u);
    let pi = params[3] + i;
    let mi = params[4] + i;
    let vi = params[5] + i;
    var p = bitcast<f32>(param[pi]);
    var g = signed_grad(i);
    if has(OPT_FIRST_OR_DECOUPLED) {
        p = p * decay;
    } else {
        g = g + wd * p;
    }
    let m = ftz(b1 * bitcast<f32>(st0[mi]) + ob1 * g);
    let v = ftz(b2 * bitcast<f32>(st1[vi]) + ob2 * g * g);
    st0[mi] = bitcast<u32>(m);
    st1[vi] = bitcast<u32>(v);
    var vv = v;
    if has(OPT_VARIANT) {
        let xi = params[6] + i;
        vv = bitcast<f32>(st2[xi]);
        // written as a comparison (not max()) so that a NaN leaves the maximum as the CPU does
        if v > vv {
            vv = v;
        }
        st2[xi] = bitcast<u32>(vv);
    }
    param[pi] = bitcast<u32>(p - step_size * m / (sqrt(vv) * inv_sqrt_b2 + eps));
}

@compute @workgroup_size(256)
fn rmsprop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= params[0] {
        return;
    }
    let lr = scalar(0u);
    let a = scalar(1u);
    let eps = scalar(2u);
    let wd = scalar(3u);
    let mom = scalar(4u);
    let pi = params[3] + i;
    let si = params[4] + i;
    let p = bitcast<f32>(param[pi]);
    let g = signed_grad(i) + wd * p;
    let oa = scalar(5u); // 1 - alpha, from the host's f64
    let sq = ftz(a * bitcast<f32>(st0[si]) + oa * g * g);
    st0[si] = bitcast<u32>(sq);
    var avg = sqrt(sq) + eps;
    if has(OPT_VARIANT) {
        let gi = params[6] + i;
        let ga = ftz(a * bitcast<f32>(st2[gi]) + oa * g);
        st2[gi] = bitcast<u32>(ga);
        avg = sqrt(sq - ga * ga) + eps;
    }
    if has(OPT_MOMENTUM) {
        let bi = params[5] + i;
        let b = ftz(mom * bitcast<f32>(st1[bi]) + g / avg);
        st1[bi] = bitcast<u32>(b);
        param[pi] = bitcast<u32>(p - lr * b);
    } else {
        param[pi] = bitcast<u32>(p - lr * g / avg);
    }
}

@compute @workgroup_size(256)
fn adagrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= params[0] {
        return;
    }
    let lr = scalar(0u);
    let wd = scalar(1u);
    let eps = scalar(2u);
    let pi = params[3] + i;
    let si = params[4] + i;
    let p = bitcast<f32>(param[pi]);
    let g = signed_grad(i) + wd * p;
    let s = bitcast<f32>(st0[si]) + g * g;
    st0[si] = bitcast<u32>(s);
    param[pi] = bitcast<u32>(p - lr * g / (sqrt(s) + eps));
}
