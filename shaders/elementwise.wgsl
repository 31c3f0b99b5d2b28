// Elementwise kernels over strided operands: unary, binary, compare, where, cast, copy, copy_into
// and fill.
//
// Storage convention (shared by every file in shaders/): each tensor buffer is an array<u32>.
// float32 values are stored as their bits, int64 tensors as i32 (the host rejects values outside
// the i32 range on upload) and bool as 0/1. The `DT` override says how to read the words
// (0 = f32, 1 = i32, 2 = bool); one kernel then serves every dtype and `bitcast` costs nothing.
//
// Parameters (binding 0, u32 words written by the host for each dispatch):
//   [0] n      number of elements of the output (C-contiguous)
//   [1] r      rank of the (coalesced) iteration shape
//   [2, 2+r)   its dims
//   then, for each strided operand k in binding order: offset, strides[r]   (r + 1 words)
// Broadcasting is a stride of 0, transposes are permuted strides: the kernels only ever see
// (offset, strides), never a layout kind.
//
// Grid: workgroups of 256 along x, and y when x would exceed 65535 groups; the element index is
// (wid.y * nwg.x + wid.x) * 256 + lid, so sizes beyond 65535 * 256 need no second dispatch.

override OP: u32 = 0u;
override DT: u32 = 0u;
// Target dtype of `cast_dtype`.
override DT_OUT: u32 = 0u;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(2) var<storage, read> in1: array<u32>;
@group(0) @binding(3) var<storage, read> in2: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

const WG: u32 = 256u;
const FRAC_1_SQRT_2: f32 = 0.70710678118654752;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// Storage offset of output element `i` (row-major over the dims) in strided operand `k`.
fn offset_of(i: u32, k: u32) -> u32 {
    let r = params[1];
    let base = 2u + r + k * (r + 1u);
    var off = params[base];
    var rem = i;
    for (var d = r; d > 0u; d--) {
        let size = params[1u + d];
        off += (rem % size) * params[base + d];
        rem = rem / size;
    }
    return off;
}

// Non-finite constants built at run time: WGSL forbids them as constant expressions, and a
// function argument is never constant-folded.
fn from_bits(b: u32) -> f32 {
    return bitcast<f32>(b);
}

// NaN test on the bits: fast-math may fold `x != x` to false, integer ops are never folded.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// ---------------------------------------------------------------- float functions

fn sign_f32(x: f32) -> f32 {
    if (x > 0.0) {
        return 1.0;
    }
    if (x < 0.0) {
        return -1.0;
    }
    return x; // 0, -0 and NaN map to themselves
}

// log with the IEEE edge cases made explicit (WGSL leaves log(x <= 0) unspecified).
fn log_f32(x: f32) -> f32 {
    if (is_nan(x) || x < 0.0) {
        return from_bits(0x7fc00000u);
    }
    if (x == 0.0) {
        return from_bits(0xff800000u);
    }
    return log(x);
}

fn sqrt_f32(x: f32) -> f32 {
    if (x < 0.0) {
        return from_bits(0x7fc00000u);
    }
    return sqrt(x);
}

// sin/cos builtins are only accurate near [-pi, pi] on many GPUs: reduce by 2*pi first, in two
// parts (C1 has few mantissa bits so k * C1 is exact for |k| < 2^15).
fn reduce_angle(x: f32) -> f32 {
    if (abs(x) <= 3.14159265) {
        return x;
    }
    let k = round(x * 0.15915494309189535);
    return (x - k * 6.28125) - k * 0.0019353071795864769;
}

// tanh saturates to +-1 in f32 beyond |x| = 9.01; clamping keeps exp-based implementations from
// overflowing into inf/inf.
fn tanh_f32(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    return tanh(clamp(x, -10.0, 10.0));
}

// Stable logistic function: never takes exp of a large positive number.
fn sigmoid_f32(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// log(1 + y) accurate for small y (Goldberg's trick: the rounding error of 1 + y cancels).
fn log1p_f32(y: f32) -> f32 {
    let u = 1.0 + y;
    if (u == 1.0) {
        return y;
    }
    return log(u) * (y / (u - 1.0));
}

// log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|. As on the CPU (and
// in PyTorch): NaN stays NaN, +inf gives +inf, -inf gives 0.
fn softplus_f32(x: f32) -> f32 {
    let bits = bitcast<u32>(x) & 0x7fffffffu;
    if (bits > 0x7f800000u) {
        return x;
    }
    if (bits == 0x7f800000u) {
        return max(x, 0.0);
    }
    return max(x, 0.0) + log1p_f32(exp(-abs(x)));
}

// erf: FreeBSD's s_erff.c (as in the `libm` crate the CPU backend uses), so both backends agree
// to a few ulp.
fn erfc1_f32(x: f32) -> f32 {
    let s = abs(x) - 1.0;
    let p = -2.3621185683e-03 + s * (4.1485610604e-01 + s * (-3.7220788002e-01 + s * (3.1834661961e-01 + s * (-1.1089469492e-01 + s * (3.5478305072e-02 + s * -2.1663755178e-03)))));
    let q = 1.0 + s * (1.0642088205e-01 + s * (5.4039794207e-01 + s * (7.1828655899e-02 + s * (1.2617121637e-01 + s * (1.3637083583e-02 + s * 1.1984500103e-02)))));
    return 1.0 - 8.4506291151e-01 - p / q;
}

fn erfc2_f32(ix: u32, x0: f32) -> f32 {
    if (ix < 0x3fa00000u) {
        return erfc1_f32(x0);
    }
    let x = abs(x0);
    let s = 1.0 / (x * x);
    var r: f32;
    var big_s: f32;
    if (ix < 0x4036db6du) {
        r = -9.8649440333e-03 + s * (-6.9385856390e-01 + s * (-1.0558626175e+01 + s * (-6.2375331879e+01 + s * (-1.6239666748e+02 + s * (-1.8460508728e+02 + s * (-8.1287437439e+01 + s * -9.8143291473e+00))))));
        big_s = 1.0 + s * (1.9651271820e+01 + s * (1.3765776062e+02 + s * (4.3456588745e+02 + s * (6.4538726807e+02 + s * (4.2900814819e+02 + s * (1.0863500214e+02 + s * (6.5702495575e+00 + s * -6.0424413532e-02)))))));
    } else {
        r = -9.8649431020e-03 + s * (-7.9928326607e-01 + s * (-1.7757955551e+01 + s * (-1.6063638306e+02 + s * (-6.3756646729e+02 + s * (-1.0250950928e+03 + s * -4.8351919556e+02)))));
        big_s = 1.0 + s * (3.0338060379e+01 + s * (3.2579251099e+02 + s * (1.5367296143e+03 + s * (3.1998581543e+03 + s * (2.5530502930e+03 + s * (4.7452853394e+02 + s * -2.2440952301e+01))))));
    }
    let z = bitcast<f32>(bitcast<u32>(x) & 0xffffe000u);
    return exp(-z * z - 0.5625) * exp((z - x) * (z + x) + r / big_s) / x;
}

fn erf_f32(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    let ix = bits & 0x7fffffffu;
    let neg = (bits >> 31u) != 0u;
    if (ix > 0x7f800000u) {
        return x; // NaN
    }
    if (ix == 0x7f800000u) {
        return select(1.0, -1.0, neg);
    }
    if (ix < 0x3f580000u) {
        // |x| < 0.84375
        if (ix < 0x31800000u) {
            return 0.125 * (8.0 * x + 1.0270333290e+00 * x);
        }
        let z = x * x;
        let r = 1.2837916613e-01 + z * (-3.2504209876e-01 + z * (-2.8481749818e-02 + z * (-5.7702702470e-03 + z * -2.3763017452e-05)));
        let s = 1.0 + z * (3.9791721106e-01 + z * (6.5022252500e-02 + z * (5.0813062117e-03 + z * (1.3249473704e-04 + z * -3.9602282413e-06))));
        return x + x * (r / s);
    }
    var y: f32;
    if (ix < 0x40c00000u) {
        y = 1.0 - erfc2_f32(ix, x);
    } else {
        y = 1.0;
    }
    return select(y, -y, neg);
}

fn unary_f32(x: f32) -> f32 {
    switch OP {
        case 0u: { return -x; }
        case 1u: { return abs(x); }
        case 2u: { return sign_f32(x); }
        case 3u: { return exp(x); }
        case 4u: { return log_f32(x); }
        case 5u: { return sqrt_f32(x); }
        case 6u: { return sin(reduce_angle(x)); }
        case 7u: { return cos(reduce_angle(x)); }
        case 8u: { return tanh_f32(x); }
        case 9u: { return sigmoid_f32(x); }
        // NaN stays NaN, as in PyTorch; tested on the bits because compilers may turn
        // `select(x, 0, x < 0)` into max(x, 0), which drops NaN (Mesa's GL driver does).
        case 10u: { return select(select(x, 0.0, x < 0.0), x, is_nan(x)); }
        case 11u: { return 0.5 * x * (1.0 + erf_f32(x * FRAC_1_SQRT_2)); }
        case 12u: { return erf_f32(x); }
        case 13u: { return softplus_f32(x); }
        default: { return x; }
    }
}

// The integer ops (the others never reach an int tensor: the engine promotes to float first).
// WGSL integer arithmetic wraps, like the CPU's wrapping_* ops.
fn unary_i32(x: i32) -> i32 {
    switch OP {
        case 0u: { return -x; }
        case 1u: { return abs(x); }
        case 2u: { return sign(x); }
        case 10u: { return max(x, 0); }
        default: { return x; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let x = in0[offset_of(i, 0u)];
    if (DT == 0u) {
        out[i] = bitcast<u32>(unary_f32(bitcast<f32>(x)));
    } else {
        out[i] = bitcast<u32>(unary_i32(bitcast<i32>(x)));
    }
}

// ---------------------------------------------------------------- binary

fn is_odd_integer(y: f32) -> bool {
    // |y| >= 2^24: every f32 is an even integer.
    if (abs(y) >= 16777216.0) {
        return false;
    }
    return y == trunc(y) && (abs(y) - 2.0 * floor(abs(y) * 0.5)) == 1.0;
}

// powf with C99 semantics (what Rust's powf gives): negative bases with integer exponents work
// (WGSL's pow is undefined for x < 0).
fn pow_f32(x: f32, y: f32) -> f32 {
    if (y == 0.0 || x == 1.0) {
        return 1.0;
    }
    if (is_nan(x) || is_nan(y)) {
        return from_bits(0x7fc00000u);
    }
    let y_int = y == trunc(y);
    if (x < 0.0 && !y_int) {
        return from_bits(0x7fc00000u);
    }
    let odd = is_odd_integer(y);
    if (x == 0.0) {
        if (y > 0.0) {
            return select(0.0, x, odd);
        }
        let inf = from_bits(0x7f800000u);
        return select(inf, select(inf, -inf, bitcast<u32>(x) != 0u), odd);
    }
    let r = exp2(y * log2(abs(x)));
    return select(r, -r, x < 0.0 && odd);
}

fn binary_f32(a: f32, b: f32) -> f32 {
    switch OP {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        case 3u: { return a / b; }
        case 4u: { return pow_f32(a, b); }
        // maximum/minimum propagate NaN from either side, as PyTorch does.
        case 5u: { return select(b, a, a > b || is_nan(a)); }
        case 6u: { return select(b, a, a < b || is_nan(a)); }
        default: { return a; }
    }
}

fn pow_i32(a: i32, b: i32) -> i32 {
    if (b < 0) {
        if (a == 1) {
            return 1;
        }
        if (a == -1) {
            return select(-1, 1, (b & 1) == 0);
        }
        return 0;
    }
    var result = 1;
    var base = a;
    var e = b;
    loop {
        if (e == 0) {
            break;
        }
        if ((e & 1) == 1) {
            result = result * base;
        }
        base = base * base;
        e = e >> 1u;
    }
    return result;
}

fn binary_i32(a: i32, b: i32) -> i32 {
    switch OP {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        // Division by zero (and the one overflowing quotient) gives 0, as on the CPU.
        case 3u: {
            if (b == 0 || (a == i32(-2147483647 - 1) && b == -1)) {
                return 0;
            }
            return a / b;
        }
        case 4u: { return pow_i32(a, b); }
        case 5u: { return max(a, b); }
        case 6u: { return min(a, b); }
        case 7u: { return a & b; }
        case 8u: { return a | b; }
        case 9u: { return a ^ b; }
        default: { return a; }
    }
}

// Bool arithmetic on 0/1 words, as the CPU's binary_bool.
fn binary_bool(a: u32, b: u32) -> u32 {
    switch OP {
        case 0u, 5u, 8u: { return a | b; }
        case 2u, 6u, 7u: { return a & b; }
        case 1u, 9u: { return a ^ b; }
        case 4u: { return a | (b ^ 1u); }
        default: { return a; }
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let a = in0[offset_of(i, 0u)];
    let b = in1[offset_of(i, 1u)];
    if (DT == 0u) {
        out[i] = bitcast<u32>(binary_f32(bitcast<f32>(a), bitcast<f32>(b)));
    } else if (DT == 1u) {
        out[i] = bitcast<u32>(binary_i32(bitcast<i32>(a), bitcast<i32>(b)));
    } else {
        out[i] = binary_bool(a, b);
    }
}

// ---------------------------------------------------------------- compare

// OP: 0 eq, 1 ne, 2 lt, 3 le, 4 gt, 5 ge. Any comparison with NaN is false except `ne`.
fn compare_f32(a: f32, b: f32) -> bool {
    let ordered = !is_nan(a) && !is_nan(b);
    switch OP {
        case 0u: { return ordered && a == b; }
        case 1u: { return !(ordered && a == b); }
        case 2u: { return ordered && a < b; }
        case 3u: { return ordered && a <= b; }
        case 4u: { return ordered && a > b; }
        case 5u: { return ordered && a >= b; }
        default: { return false; }
    }
}

fn compare_i32(a: i32, b: i32) -> bool {
    switch OP {
        case 0u: { return a == b; }
        case 1u: { return a != b; }
        case 2u: { return a < b; }
        case 3u: { return a <= b; }
        case 4u: { return a > b; }
        case 5u: { return a >= b; }
        default: { return false; }
    }
}

@compute @workgroup_size(256)
fn compare(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let a = in0[offset_of(i, 0u)];
    let b = in1[offset_of(i, 1u)];
    var r: bool;
    if (DT == 0u) {
        r = compare_f32(bitcast<f32>(a), bitcast<f32>(b));
    } else {
        // bool words are 0/1, so comparing them as integers is comparing them as bools
        r = compare_i32(bitcast<i32>(a), bitcast<i32>(b));
    }
    out[i] = select(0u, 1u, r);
}

// ---------------------------------------------------------------- where, cast, copies, fill

// out = cond ? on_true : on_false. Operands: 0 condition (bool), 1 on_true, 2 on_false. The
// values are moved as words, so no dtype is needed.
@compute @workgroup_size(256)
fn where_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let c = in0[offset_of(i, 0u)];
    if (c != 0u) {
        out[i] = in1[offset_of(i, 1u)];
    } else {
        out[i] = in2[offset_of(i, 2u)];
    }
}

// dtype conversion DT -> DT_OUT with the CPU's rules: float -> int truncates toward zero and
// saturates (here at the i32 range, the device's int64 representation), NaN -> 0; anything -> bool
// is `!= 0` (NaN is true).
@compute @workgroup_size(256)
fn cast_dtype(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let x = in0[offset_of(i, 0u)];
    var y = x;
    if (DT == 0u && DT_OUT == 1u) {
        let f = bitcast<f32>(x);
        var v: i32;
        if (is_nan(f)) {
            v = 0;
        } else if (f >= 2147483647.0) {
            v = 2147483647;
        } else if (f <= -2147483648.0) {
            v = i32(-2147483647 - 1);
        } else {
            v = i32(f);
        }
        y = bitcast<u32>(v);
    } else if (DT == 0u && DT_OUT == 2u) {
        y = select(0u, 1u, (x & 0x7fffffffu) != 0u);
    } else if (DT == 1u && DT_OUT == 0u) {
        y = bitcast<u32>(f32(bitcast<i32>(x)));
    } else if (DT == 1u && DT_OUT == 2u) {
        y = select(0u, 1u, x != 0u);
    } else if (DT == 2u && DT_OUT == 0u) {
        y = bitcast<u32>(f32(x));
    }
    // bool -> i32 and same-dtype casts keep the word.
    out[i] = y;
}

// A C-contiguous copy of a strided view (any dtype).
@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    out[i] = in0[offset_of(i, 0u)];
}

// Strided write: operand 0 is the source view, operand 1 the destination view inside `out`.
@compute @workgroup_size(256)
fn copy_into(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    out[offset_of(i, 1u)] = in0[offset_of(i, 0u)];
}

// params: [0] n, [1] the word to store.
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    out[i] = params[1];
}
