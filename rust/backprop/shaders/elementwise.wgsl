// Elementwise kernels over strided operands: unary, binary, compare, where, cast, copy,
// copy_into and fill, for every dtype (float32, int64 as two words, bool; see common.wgsl).
// One kernel serves every op and dtype: the op and dtypes are pipeline-overridable constants
// (OP, DT, DT_OUT), so each specialisation compiles down to just its own branch.
//
// Parameters: the strided-operand block of common.wgsl over the output's shape, operands in
// binding order (in0, in1, in2; copy_into: source, then the destination view inside `out`).
//
// Grid: workgroups of 256 along x, and y when x would exceed 65535 groups; the element index is
// (wid.y * nwg.x + wid.x) * 256 + lid, so sizes beyond 65535 * 256 need no second dispatch.

override OP: u32 = 0u;
// dtype of the operands (where: of in1 and in2; the condition in0 is always bool)
override DT: u32 = 0u;
// dtype of the output
override DT_OUT: u32 = 0u;

@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(2) var<storage, read> in1: array<u32>;
@group(0) @binding(3) var<storage, read> in2: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
// the LSTM cell kernels' further operands
@group(0) @binding(5) var<storage, read_write> out2: array<u32>;
@group(0) @binding(6) var<storage, read_write> out3: array<u32>;
@group(0) @binding(7) var<storage, read> in3: array<u32>;
@group(0) @binding(8) var<storage, read> in4: array<u32>;

const FRAC_1_SQRT_2: f32 = 0.70710678118654752;

// Element `e` of each input, read as a value of dtype DT.
fn ld0(e: u32) -> vec2<u32> {
    if (DT == DT_I64) {
        return vec2<u32>(in0[2u * e], in0[2u * e + 1u]);
    }
    return vec2<u32>(in0[e], 0u);
}

fn ld1(e: u32) -> vec2<u32> {
    if (DT == DT_I64) {
        return vec2<u32>(in1[2u * e], in1[2u * e + 1u]);
    }
    return vec2<u32>(in1[e], 0u);
}

fn ld2(e: u32) -> vec2<u32> {
    if (DT == DT_I64) {
        return vec2<u32>(in2[2u * e], in2[2u * e + 1u]);
    }
    return vec2<u32>(in2[e], 0u);
}

// Stores a value of dtype DT_OUT at element `e` of the output.
fn st(e: u32, v: vec2<u32>) {
    if (DT_OUT == DT_I64) {
        out[2u * e] = v.x;
        out[2u * e + 1u] = v.y;
    } else {
        out[e] = v.x;
    }
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

// sin/cos builtins are only accurate near [-pi, pi] on many GPUs: reduce by 2*pi first.
// Cody-Waite in three 8-bit pieces of 2*pi (and a last, rounded one), with k split as
// k1 + k0 (k1 a multiple of 256, |k0| < 256) so that every product k * piece is exact for
// |k| < 2^24 (|x| up to ~1e8); each subtraction is then exact too.
fn reduce_angle(x: f32) -> f32 {
    if (abs(x) <= 3.14159265) {
        return x;
    }
    let k = round(x * 0.15915494309189535);
    let k1 = trunc(k * 0.00390625) * 256.0;
    let k0 = k - k1;
    var r = x - k1 * 6.28125;
    r = r - k0 * 6.28125;
    r = r - k1 * 0.00193023681640625;
    r = r - k0 * 0.00193023681640625;
    r = r - k1 * 5.066394805908203e-06;
    r = r - k0 * 5.066394805908203e-06;
    return r - k * 3.9683745e-09;
}

// expm1 as the CPU's (cpu/vmath.rs): x = n ln2 + r, expm1(x) = 2^n expm1(r) + (2^n - 1) with a
// Taylor polynomial for expm1(r) that starts at r, so nothing cancels near 0.
fn expm1_f32(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    let xc = clamp(x, -104.0, 89.0);
    let n = round(xc * 1.4426950408889634);
    let r = xc - n * 0.6933594 - n * -2.1219444e-4;
    let q = ((((((1.0 / 40320.0 * r + 1.0 / 5040.0) * r + 1.0 / 720.0) * r + 1.0 / 120.0) * r
        + 1.0 / 24.0) * r + 1.0 / 6.0) * r) + 0.5;
    let p = r + r * r * q;
    // 2^n as two factors so that n down to -150 stays representable
    let ni = i32(n);
    let n1 = ni >> 1u;
    let s = ldexp(1.0, n1) * ldexp(1.0, ni - n1);
    return p * s + (s - 1.0);
}

// tanh(x) = sign(x) * e / (e + 2) with e = expm1(2|x|), the CPU's formula: accurate from the
// denormals (where it returns x) to saturation; the builtin tanh of some drivers loses all
// relative accuracy for small |x|.
fn tanh_f32(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    let e = expm1_f32(2.0 * min(abs(x), 20.0));
    let t = e / (e + 2.0);
    return bitcast<f32>(bitcast<u32>(t) | (bitcast<u32>(x) & 0x80000000u));
}

// Stable logistic function: never takes exp of a large positive number.
fn sigmoid_f32(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

// log(1 + y) accurate for small y, without relying on (1 + y) - 1 being computed as written
// (some drivers fold it to y): log1p(y) = 2 atanh(y / (2 + y)), atanh by its series where the
// argument is small, the plain log elsewhere.
fn log1p_f32(y: f32) -> f32 {
    if (abs(y) < 0.4) {
        let z = y / (2.0 + y);
        let z2 = z * z;
        return 2.0 * z * (1.0 + z2 * (1.0 / 3.0 + z2 * (0.2 + z2 * (1.0 / 7.0 + z2 * (1.0 / 9.0 + z2 / 11.0)))));
    }
    return log(1.0 + y);
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

// log1p with the IEEE edge cases (log1p_f32 above serves softplus, whose argument is in (0, 1]).
fn log1p_full_f32(y: f32) -> f32 {
    if (is_nan(y) || y < -1.0) {
        return from_bits(0x7fc00000u);
    }
    if (y == -1.0) {
        return from_bits(0xff800000u);
    }
    if (y == from_bits(0x7f800000u)) {
        return y;
    }
    return log1p_f32(y);
}

// log2 with the IEEE edge cases made explicit (see log_f32).
fn log2_f32(x: f32) -> f32 {
    if (is_nan(x) || x < 0.0) {
        return from_bits(0x7fc00000u);
    }
    if (x == 0.0) {
        return from_bits(0xff800000u);
    }
    return log2(x);
}

// asin / acos are unspecified outside [-1, 1] in WGSL: NaN there, as on the CPU.
// (Cephes' asinf, not the builtin: llvmpipe's builtin asin is off by ~4e-4 near 0.55)
fn asin_f32(x: f32) -> f32 {
    if (is_nan(x) || abs(x) > 1.0) {
        return from_bits(0x7fc00000u);
    }
    let a = abs(x);
    var r: f32;
    if (a > 0.5) {
        let z = 0.5 * (1.0 - a);
        let s = sqrt(z);
        let p = (((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z + 7.4953002686e-2) * z + 1.6666752422e-1;
        r = 1.5707963267948966 - 2.0 * (s + s * z * p);
    } else {
        let z = a * a;
        let p = (((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z + 7.4953002686e-2) * z + 1.6666752422e-1;
        r = a + a * z * p;
    }
    return select(r, -r, x < 0.0);
}

fn acos_f32(x: f32) -> f32 {
    if (is_nan(x) || abs(x) > 1.0) {
        return from_bits(0x7fc00000u);
    }
    return acos(x);
}

// sinh(x) = (e + e / (e + 1)) / 2 with e = expm1(x): no cancellation near 0; beyond |x| = 20,
// exp(|x| - ln 2) (so the result overflows where sinh does, not where exp does).
fn sinh_f32(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    let a = abs(x);
    var r: f32;
    if (a > 20.0) {
        r = exp(a - 0.69314718);
    } else {
        let e = expm1_f32(a);
        r = 0.5 * (e + e / (e + 1.0));
    }
    return select(r, -r, x < 0.0);
}

fn cosh_f32(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    let a = abs(x);
    if (a > 20.0) {
        return exp(a - 0.69314718);
    }
    let e = exp(a);
    return 0.5 * (e + 1.0 / e);
}

fn tan_f32(x: f32) -> f32 {
    let r = reduce_angle(x);
    return sin(r) / cos(r);
}

// ---- erfc and the gamma family (f32 versions of the CPU's f64 definitions in cpu/math.rs)

const PI_F: f32 = 3.14159265358979324;

// erfc from the same s_erff.c pieces as erf: 1 - erf near zero (no cancellation there: the
// result is in [0.23, 1.77]), the tail formula beyond, and 2 - erfc(|x|) for negative x.
fn erfc_f32(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    let ix = bits & 0x7fffffffu;
    let neg = (bits >> 31u) != 0u;
    if (ix > 0x7f800000u) {
        return x; // NaN
    }
    if (ix < 0x3f580000u) {
        return 1.0 - erf_f32(x);
    }
    if (ix >= 0x41200000u) {
        return select(0.0, 2.0, neg); // erfc(10) is already below f32's normal range
    }
    let t = erfc2_f32(ix, x);
    return select(t, 2.0 - t, neg);
}

// ln|Gamma|: reflection below 1/2, the recurrence up to 8, Stirling's series there.
fn lgamma_f32(x0: f32) -> f32 {
    if (is_nan(x0)) {
        return x0;
    }
    if (abs(x0) == from_bits(0x7f800000u) || (x0 <= 0.0 && x0 == trunc(x0))) {
        return from_bits(0x7f800000u); // +inf at the poles and at both infinities
    }
    var x = x0;
    var refl = 0.0;
    var reflected = false;
    if (x < 0.5) {
        // |sin(pi x)| has period 1: reduce to [-1/2, 1/2] first (exactly; a tiny x stays itself)
        let s = sin(PI_F * (x - round(x)));
        refl = log(PI_F / abs(s));
        reflected = true;
        x = 1.0 - x;
    }
    var prod = 1.0;
    loop {
        if (x >= 8.0) {
            break;
        }
        prod = prod * x;
        x = x + 1.0;
    }
    let w = 1.0 / (x * x);
    let series = (1.0 / 12.0 - w * (1.0 / 360.0 - w * (1.0 / 1260.0 - w * (1.0 / 1680.0)))) / x;
    let lg = (x - 0.5) * log(x) - x + 0.91893853320467274 + series - log(prod);
    return select(lg, refl - lg, reflected);
}

fn digamma_f32(x0: f32) -> f32 {
    if (is_nan(x0)) {
        return x0;
    }
    if (x0 == 0.0) {
        // -inf at +0, +inf at -0 (PyTorch's convention)
        return select(from_bits(0xff800000u), from_bits(0x7f800000u), (bitcast<u32>(x0) >> 31u) != 0u);
    }
    if (x0 == from_bits(0x7f800000u)) {
        return x0;
    }
    if (x0 < 0.0 && x0 == trunc(x0)) {
        return from_bits(0x7fc00000u); // the negative poles (and -inf)
    }
    var x = x0;
    var acc = 0.0;
    if (x < 0.0) {
        let r = x - round(x);
        acc = -PI_F * cos(PI_F * r) / sin(PI_F * r);
        x = 1.0 - x;
    }
    loop {
        if (x >= 6.0) {
            break;
        }
        acc = acc - 1.0 / x;
        x = x + 1.0;
    }
    let w = 1.0 / (x * x);
    let series = w * (1.0 / 12.0 - w * (1.0 / 120.0 - w * (1.0 / 252.0 - w * (1.0 / 240.0 - w * (1.0 / 132.0)))));
    return acc + log(x) - 0.5 / x - series;
}

fn trigamma_f32(x0: f32) -> f32 {
    if (is_nan(x0) || x0 == from_bits(0xff800000u)) {
        return from_bits(0x7fc00000u);
    }
    if (x0 <= 0.0 && x0 == trunc(x0)) {
        return from_bits(0x7f800000u);
    }
    var x = x0;
    var acc = 0.0;
    var sign = 1.0;
    if (x < 0.5) {
        let s = sin(PI_F * (x - round(x)));
        acc = PI_F * PI_F / (s * s);
        sign = -1.0;
        x = 1.0 - x;
    }
    var tail = 0.0;
    loop {
        if (x >= 6.0) {
            break;
        }
        tail = tail + 1.0 / (x * x);
        x = x + 1.0;
    }
    let w = 1.0 / (x * x);
    let series = (1.0 + w * (1.0 / 6.0 - w * (1.0 / 30.0 - w * (1.0 / 42.0 - w * (1.0 / 30.0 - w * (5.0 / 66.0)))))) / x + 0.5 * w;
    return acc + sign * (tail + series);
}

fn unary_f32(x: f32) -> f32 {
    switch OP {
        case UNARY_NEG: { return -x; }
        case UNARY_ABS: { return abs(x); }
        case UNARY_SIGN: { return sign_f32(x); }
        case UNARY_EXP: { return exp(x); }
        case UNARY_LOG: { return log_f32(x); }
        case UNARY_SQRT: { return sqrt_f32(x); }
        case UNARY_SIN: { return sin(reduce_angle(x)); }
        case UNARY_COS: { return cos(reduce_angle(x)); }
        case UNARY_TANH: { return tanh_f32(x); }
        case UNARY_SIGMOID: { return sigmoid_f32(x); }
        // NaN stays NaN, as in PyTorch; tested on the bits because compilers may turn
        // `select(x, 0, x < 0)` into max(x, 0), which drops NaN (Mesa's GL driver does).
        case UNARY_RELU: { return select(select(x, 0.0, x < 0.0), x, is_nan(x)); }
        case UNARY_GELU: { return 0.5 * x * (1.0 + erf_f32(x * FRAC_1_SQRT_2)); }
        case UNARY_ERF: { return erf_f32(x); }
        case UNARY_SOFTPLUS: { return softplus_f32(x); }
        case UNARY_LOG1P: { return log1p_full_f32(x); }
        case UNARY_EXPM1: { return expm1_f32(x); }
        case UNARY_LOG2: { return log2_f32(x); }
        case UNARY_LOG10: { return log2_f32(x) * 0.30102999566398120; }
        case UNARY_TAN: { return tan_f32(x); }
        case UNARY_ASIN: { return asin_f32(x); }
        case UNARY_ACOS: { return acos_f32(x); }
        // llvmpipe's atan(NaN) is 0: NaN is passed through by hand
        case UNARY_ATAN: { return select(atan(x), x, is_nan(x)); }
        case UNARY_SINH: { return sinh_f32(x); }
        case UNARY_COSH: { return cosh_f32(x); }
        case UNARY_FLOOR: { return floor(x); }
        case UNARY_CEIL: { return ceil(x); }
        // WGSL's round is half to even, as torch.round
        case UNARY_ROUND: { return round(x); }
        case UNARY_TRUNC: { return trunc(x); }
        case UNARY_ERFC: { return erfc_f32(x); }
        case UNARY_LGAMMA: { return lgamma_f32(x); }
        case UNARY_DIGAMMA: { return digamma_f32(x); }
        case UNARY_TRIGAMMA: { return trigamma_f32(x); }
        default: { return x; }
    }
}

// The integer ops (the others never reach an int tensor: the engine promotes to float first).
// Arithmetic wraps, like the CPU's wrapping_* ops.
fn unary_i64(x: vec2<u32>) -> vec2<u32> {
    switch OP {
        case UNARY_NEG: { return i64_neg(x); }
        case UNARY_ABS: { return i64_abs(x); }
        case UNARY_SIGN: { return i64_sign(x); }
        case UNARY_RELU: { return i64_max(x, I64_ZERO); }
        default: { return x; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let x = ld0(offset_of(i, 0u));
    if (DT == DT_F32) {
        st(i, vec2<u32>(bitcast<u32>(unary_f32(bitcast<f32>(x.x))), 0u));
    } else {
        st(i, unary_i64(x));
    }
}

// `g * f'(a)` for the ops with a fused derivative (UnaryOp::fused_grad_input): `a` is the input
// (gelu, erf, softplus) or the forward's output (tanh, sigmoid). One pass instead of the composed
// rule's chain of full-size temporaries.
fn unary_grad_f32(a: f32, g: f32) -> f32 {
    switch OP {
        case UNARY_GELU: {
            let cdf = 0.5 * (1.0 + erf_f32(a * FRAC_1_SQRT_2));
            return g * (cdf + a * 0.3989422804014327 * exp(-0.5 * a * a));
        }
        case UNARY_ERF: { return g * 1.1283791670955126 * exp(-(a * a)); }
        case UNARY_SOFTPLUS: { return g * sigmoid_f32(a); }
        case UNARY_TANH: { return g * (1.0 - a * a); }
        case UNARY_SIGMOID: { return g * (a * (1.0 - a)); }
        default: { return g; }
    }
}

@compute @workgroup_size(256)
fn unary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let a = bitcast<f32>(ld0(offset_of(i, 0u)).x);
    let g = bitcast<f32>(ld1(offset_of(i, 1u)).x);
    st(i, vec2<u32>(bitcast<u32>(unary_grad_f32(a, g)), 0u));
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

// atan2 with the quadrant and signed-zero cases spelled out (WGSL leaves atan2(0, 0) and the
// infinities to the driver).
fn atan2_f32(y: f32, x: f32) -> f32 {
    if (is_nan(x) || is_nan(y)) {
        return from_bits(0x7fc00000u);
    }
    let pi = 3.14159265358979;
    let ysign = bitcast<u32>(y) & 0x80000000u;
    if (y == 0.0) {
        // atan2(+-0, x) = +-0 for x > 0 or x = +0, +-pi for x < 0 or x = -0
        let x_neg = x < 0.0 || (x == 0.0 && (bitcast<u32>(x) & 0x80000000u) != 0u);
        let r = select(0.0, pi, x_neg);
        return bitcast<f32>(bitcast<u32>(r) | ysign);
    }
    let inf = from_bits(0x7f800000u);
    if (abs(x) == inf || abs(y) == inf) {
        var r: f32;
        if (abs(y) == inf) {
            if (x == inf) { r = pi / 4.0; } else if (x == -inf) { r = 3.0 * pi / 4.0; } else { r = pi / 2.0; }
        } else {
            r = select(0.0, pi, x < 0.0);
        }
        return bitcast<f32>(bitcast<u32>(r) | ysign);
    }
    return atan2(y, x);
}

// C's fmod: a - trunc(a / b) * b, exact while the quotient is exactly representable; NaN for a
// zero divisor or an infinite dividend, the dividend itself for an infinite divisor.
fn fmod_f32(a: f32, b: f32) -> f32 {
    let inf = from_bits(0x7f800000u);
    if (is_nan(a) || is_nan(b) || b == 0.0 || abs(a) == inf) {
        return from_bits(0x7fc00000u);
    }
    if (abs(b) == inf) {
        return a;
    }
    let r = a - trunc(a / b) * b;
    // keep the sign of the dividend (a zero result too) and |r| < |b|
    var m = r;
    if (abs(m) >= abs(b)) {
        m = m - trunc(m / b) * b;
    }
    if (m != 0.0 && ((m < 0.0) != (a < 0.0))) {
        m = m + select(abs(b), -abs(b), m > 0.0);
    }
    return bitcast<f32>((bitcast<u32>(m) & 0x7fffffffu) | (bitcast<u32>(a) & 0x80000000u));
}

fn binary_f32(a: f32, b: f32) -> f32 {
    switch OP {
        case BINARY_ADD: { return a + b; }
        case BINARY_SUB: { return a - b; }
        case BINARY_MUL: { return a * b; }
        case BINARY_DIV: { return a / b; }
        case BINARY_POW: { return pow_f32(a, b); }
        case BINARY_MAXIMUM: { return max_nan(a, b); }
        case BINARY_MINIMUM: { return min_nan(a, b); }
        case BINARY_ATAN2: { return atan2_f32(a, b); }
        case BINARY_FMOD: { return fmod_f32(a, b); }
        case BINARY_REMAINDER: {
            let m = fmod_f32(a, b);
            return select(m, m + b, m != 0.0 && ((b < 0.0) != (m < 0.0)));
        }
        default: { return a; }
    }
}

fn binary_i64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    switch OP {
        case BINARY_ADD: { return i64_add(a, b); }
        case BINARY_SUB: { return i64_sub(a, b); }
        case BINARY_MUL: { return i64_mul(a, b); }
        case BINARY_DIV: { return i64_div(a, b); }
        case BINARY_POW: { return i64_pow(a, b); }
        case BINARY_MAXIMUM: { return i64_max(a, b); }
        case BINARY_MINIMUM: { return i64_min(a, b); }
        case BINARY_BIT_AND: { return a & b; }
        case BINARY_BIT_OR: { return a | b; }
        case BINARY_BIT_XOR: { return a ^ b; }
        // a - trunc(a / b) * b; by zero gives 0, as on the CPU (the engine refuses it first)
        case BINARY_FMOD: { return i64_fmod(a, b); }
        case BINARY_REMAINDER: {
            let m = i64_fmod(a, b);
            let nz = !(m.x == 0u && m.y == 0u);
            return select(m, i64_add(m, b), nz && (i64_is_neg(b) != i64_is_neg(m)));
        }
        default: { return a; }
    }
}

fn i64_fmod(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    // x % -1 is 0 for every x; i64_div(MIN, -1) is 0 (it overflows), which would make it MIN
    if ((b.x == 0u && b.y == 0u) || (b.x == 0xffffffffu && b.y == 0xffffffffu)) {
        return I64_ZERO;
    }
    return i64_sub(a, i64_mul(i64_div(a, b), b));
}

// Bool arithmetic on 0/1 words, as the CPU's binary_bool.
fn binary_bool(a: u32, b: u32) -> u32 {
    switch OP {
        case BINARY_ADD, BINARY_MAXIMUM, BINARY_BIT_OR: { return a | b; }
        case BINARY_MUL, BINARY_MINIMUM, BINARY_BIT_AND: { return a & b; }
        case BINARY_SUB, BINARY_BIT_XOR: { return a ^ b; }
        case BINARY_POW: { return a | (b ^ 1u); }
        default: { return a; }
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let a = ld0(offset_of(i, 0u));
    let b = ld1(offset_of(i, 1u));
    if (DT == DT_F32) {
        st(i, vec2<u32>(bitcast<u32>(binary_f32(bitcast<f32>(a.x), bitcast<f32>(b.x))), 0u));
    } else if (DT == DT_I64) {
        st(i, binary_i64(a, b));
    } else {
        st(i, vec2<u32>(binary_bool(a.x, b.x), 0u));
    }
}

// ---------------------------------------------------------------- compare

// Any comparison with NaN is false except `ne`.
fn compare_f32(a: f32, b: f32) -> bool {
    let ordered = !is_nan(a) && !is_nan(b);
    switch OP {
        case CMP_EQ: { return ordered && a == b; }
        case CMP_NE: { return !(ordered && a == b); }
        case CMP_LT: { return ordered && a < b; }
        case CMP_LE: { return ordered && a <= b; }
        case CMP_GT: { return ordered && a > b; }
        case CMP_GE: { return ordered && a >= b; }
        default: { return false; }
    }
}

// int64, and bool (0/1 words, high word 0) compared as integers.
fn compare_i64(a: vec2<u32>, b: vec2<u32>) -> bool {
    switch OP {
        case CMP_EQ: { return i64_eq(a, b); }
        case CMP_NE: { return !i64_eq(a, b); }
        case CMP_LT: { return i64_lt(a, b); }
        case CMP_LE: { return !i64_lt(b, a); }
        case CMP_GT: { return i64_lt(b, a); }
        case CMP_GE: { return !i64_lt(a, b); }
        default: { return false; }
    }
}

@compute @workgroup_size(256)
fn compare(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let a = ld0(offset_of(i, 0u));
    let b = ld1(offset_of(i, 1u));
    var r: bool;
    if (DT == DT_F32) {
        r = compare_f32(bitcast<f32>(a.x), bitcast<f32>(b.x));
    } else {
        r = compare_i64(a, b);
    }
    st(i, vec2<u32>(select(0u, 1u, r), 0u));
}

// ---------------------------------------------------------------- where, cast, copies, fill

// out = cond ? on_true : on_false. Operands: 0 condition (bool words), 1 on_true, 2 on_false.
@compute @workgroup_size(256)
fn where_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    if (in0[offset_of(i, 0u)] != 0u) {
        st(i, ld1(offset_of(i, 1u)));
    } else {
        st(i, ld2(offset_of(i, 2u)));
    }
}

// dtype conversion DT -> DT_OUT with the CPU's rules (common.wgsl's `convert`).
@compute @workgroup_size(256)
fn cast_dtype(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    st(i, convert(ld0(offset_of(i, 0u)), DT, DT_OUT));
}

// A C-contiguous copy of a strided view.
@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    st(i, ld0(offset_of(i, 0u)));
}

// Strided write: operand 0 is the source view, operand 1 the destination view inside `out`.
@compute @workgroup_size(256)
fn copy_into(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    st(offset_of(i, 1u), ld0(offset_of(i, 0u)));
}

// params: [0] n (words to set), [1] the word to store at even positions, [2] at odd positions
// (an int64 fill is a pattern of two words; other dtypes pass the same word twice).
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    out[i] = params[1u + (i & 1u)];
}

// ---------------------------------------------------------------- the LSTM cell (one thread per (row, unit))
// Parameters: [0] B*H  [1] H  [2] offset of in0  [3] of in1  [4] of in2  [5] of in3  [6] of in4.
// lstm_cell: in0 = pre-activations [B, 4H] (gates i, f, g, o), in1 = previous cell [B, H];
//   out = h [B, H], out2 = c [B, H], out3 = activations [B, 4H].
// lstm_cell_backward: in0 = activations, in1 = c, in2 = previous cell, in3 = dh, in4 = dc;
//   out = d(pre-activations) [B, 4H], out2 = d(previous cell) [B, H].

@compute @workgroup_size(256)
fn lstm_cell(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = linear_id(wid, nwg, lid);
    if (t >= params[0]) {
        return;
    }
    let h = params[1];
    let r = t / h;
    let j = t % h;
    let base = params[2] + r * 4u * h + j;
    let i = sigmoid_f32(bitcast<f32>(in0[base]));
    let f = sigmoid_f32(bitcast<f32>(in0[base + h]));
    let g = tanh_f32(bitcast<f32>(in0[base + 2u * h]));
    let o = sigmoid_f32(bitcast<f32>(in0[base + 3u * h]));
    let c = f * bitcast<f32>(in1[params[3] + t]) + i * g;
    out[t] = bitcast<u32>(o * tanh_f32(c));
    out2[t] = bitcast<u32>(c);
    let a = r * 4u * h + j;
    out3[a] = bitcast<u32>(i);
    out3[a + h] = bitcast<u32>(f);
    out3[a + 2u * h] = bitcast<u32>(g);
    out3[a + 3u * h] = bitcast<u32>(o);
}

@compute @workgroup_size(256)
fn lstm_cell_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = linear_id(wid, nwg, lid);
    if (t >= params[0]) {
        return;
    }
    let h = params[1];
    let r = t / h;
    let j = t % h;
    let base = params[2] + r * 4u * h + j;
    let i = bitcast<f32>(in0[base]);
    let f = bitcast<f32>(in0[base + h]);
    let g = bitcast<f32>(in0[base + 2u * h]);
    let o = bitcast<f32>(in0[base + 3u * h]);
    let tc = tanh_f32(bitcast<f32>(in1[params[3] + t]));
    let dh = bitcast<f32>(in3[params[5] + t]);
    let dc = bitcast<f32>(in4[params[6] + t]) + dh * o * (1.0 - tc * tc);
    let a = r * 4u * h + j;
    out[a] = bitcast<u32>(dc * g * i * (1.0 - i));
    out[a + h] = bitcast<u32>(dc * bitcast<f32>(in2[params[4] + t]) * f * (1.0 - f));
    out[a + 2u * h] = bitcast<u32>(dc * i * (1.0 - g * g));
    out[a + 3u * h] = bitcast<u32>(dh * tc * o * (1.0 - o));
    out2[t] = bitcast<u32>(dc * f);
}
