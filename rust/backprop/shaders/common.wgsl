// Helpers shared by every kernel family. The host compiles each family as
//   <prelude of constants generated from the Rust enums> + common.wgsl + <family>.wgsl
// (see src/wgsl.rs), so no shader carries a numeric op or dtype code, and nothing here is
// written twice.
//
// Storage convention: every tensor buffer is an array<u32>. float32 is one word (its bits),
// bool one word (0 or 1), int64 TWO words, low word first (the CPU's little-endian bytes, so
// uploads and readbacks are plain copies). A value is handled in registers as a vec2<u32>:
// (bits, 0) for float32 and bool, (low, high) for int64; `DT_*` constants name the dtypes.
//
// Parameter block (binding 0, u32 words written by the host per dispatch). The strided-operand
// format used by most kernels:
//   [0] n      number of elements of the iteration (C-contiguous order)
//   [1] r      rank of the (coalesced) iteration shape
//   [2, 2+r)   its dims
//   then, for each strided operand k: offset, strides[r]   (r + 1 words, in elements)
//
// Loop bounds: some conformant drivers stop a shader invocation's loops after a fixed total
// number of iterations (Mesa's llvmpipe/lavapipe, the CI device, after 65535). Every loop in
// these files is bounded by the host: no invocation iterates more than ~40000 times in total.

@group(0) @binding(0) var<storage, read> params: array<u32>;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
const I64_MIN: vec2<u32> = vec2<u32>(0u, 0x80000000u);
const I64_ZERO: vec2<u32> = vec2<u32>(0u, 0u);
const I64_ONE: vec2<u32> = vec2<u32>(1u, 0u);

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// Words per element of a dtype.
fn words_of(dt: u32) -> u32 {
    return select(1u, 2u, dt == DT_I64);
}

// Storage offset (in elements) of iteration element `i` in strided operand `k`.
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

// Index of the first parameter word after `operands` strided operands.
fn tail(operands: u32) -> u32 {
    let r = params[1];
    return 2u + r + operands * (r + 1u);
}

// ---------------------------------------------------------------- float helpers

// Non-finite constants built at run time: WGSL forbids them as constant expressions, and a
// function argument is never constant-folded.
fn from_bits(b: u32) -> f32 {
    return bitcast<f32>(b);
}

// NaN test on the bits: fast-math may fold `x != x` to false, integer ops are never folded.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// maximum / minimum that propagate NaN from either side, as PyTorch's (and the CPU's) do.
fn max_nan(a: f32, b: f32) -> f32 {
    return select(b, a, a > b || is_nan(a));
}

fn min_nan(a: f32, b: f32) -> f32 {
    return select(b, a, a < b || is_nan(a));
}

// ---------------------------------------------------------------- int64 as (low, high) words

fn i64_is_neg(a: vec2<u32>) -> bool {
    return (a.y >> 31u) != 0u;
}

fn i64_from_i32(v: i32) -> vec2<u32> {
    return vec2<u32>(bitcast<u32>(v), select(0u, 0xffffffffu, v < 0));
}

fn i64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn i64_sub(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn i64_neg(a: vec2<u32>) -> vec2<u32> {
    return i64_sub(I64_ZERO, a);
}

// The full 64-bit product of two u32 (from 16-bit halves: WGSL has no wide multiply).
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    return vec2<u32>((p00 & 0xffffu) | (mid << 16u), p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u));
}

// Wrapping 64-bit multiply (the low 64 bits of the product, as the CPU's wrapping_mul).
fn i64_mul(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let p = mul_wide(a.x, b.x);
    return vec2<u32>(p.x, p.y + a.x * b.y + a.y * b.x);
}

fn i64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    let ah = bitcast<i32>(a.y);
    let bh = bitcast<i32>(b.y);
    return ah < bh || (ah == bh && a.x < b.x);
}

fn i64_eq(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x == b.x && a.y == b.y;
}

fn i64_max(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return select(a, b, i64_lt(a, b));
}

fn i64_min(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return select(a, b, i64_lt(b, a));
}

fn i64_abs(a: vec2<u32>) -> vec2<u32> {
    return select(a, i64_neg(a), i64_is_neg(a));
}

fn i64_sign(a: vec2<u32>) -> vec2<u32> {
    if (i64_is_neg(a)) {
        return vec2<u32>(0xffffffffu, 0xffffffffu);
    }
    return select(I64_ONE, I64_ZERO, a.x == 0u && a.y == 0u);
}

fn u64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

// Shifts of 64-bit values by 0..63 (WGSL shifts must stay below 32).
fn u64_shl(a: vec2<u32>, s: u32) -> vec2<u32> {
    if (s == 0u) {
        return a;
    }
    if (s >= 32u) {
        return vec2<u32>(0u, a.x << (s - 32u));
    }
    return vec2<u32>(a.x << s, (a.y << s) | (a.x >> (32u - s)));
}

fn u64_shr(a: vec2<u32>, s: u32) -> vec2<u32> {
    if (s == 0u) {
        return a;
    }
    if (s >= 32u) {
        return vec2<u32>(a.y >> (s - 32u), 0u);
    }
    return vec2<u32>((a.x >> s) | (a.y << (32u - s)), a.y >> s);
}

// Unsigned 64-bit quotient (restoring division, one bit per step: 64 iterations).
fn u64_div(n: vec2<u32>, d: vec2<u32>) -> vec2<u32> {
    var q = I64_ZERO;
    var r = I64_ZERO;
    for (var bit = 63u; bit < 64u; bit--) {
        r = u64_shl(r, 1u);
        r.x = r.x | (u64_shr(n, bit).x & 1u);
        q = u64_shl(q, 1u);
        if (!u64_lt(r, d)) {
            r = i64_sub(r, d);
            q.x = q.x | 1u;
        }
    }
    return q;
}

// Division truncating toward zero; by zero (and MIN / -1, which overflows) gives 0, as on the
// CPU (checked_div(...).unwrap_or(0)).
fn i64_div(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (b.x == 0u && b.y == 0u) {
        return I64_ZERO;
    }
    if (i64_eq(a, I64_MIN) && b.x == 0xffffffffu && b.y == 0xffffffffu) {
        return I64_ZERO;
    }
    let q = u64_div(i64_abs(a), i64_abs(b));
    return select(q, i64_neg(q), i64_is_neg(a) != i64_is_neg(b));
}

// Wrapping integer power (the CPU's rule: a negative exponent gives 1 for 1, +-1 for -1, else 0).
fn i64_pow(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (i64_is_neg(b)) {
        if (i64_eq(a, I64_ONE)) {
            return I64_ONE;
        }
        if (a.x == 0xffffffffu && a.y == 0xffffffffu) {
            return select(a, I64_ONE, (b.x & 1u) == 0u);
        }
        return I64_ZERO;
    }
    var result = I64_ONE;
    var base = a;
    var e = b;
    for (var k = 0u; k < 64u; k++) {
        if (e.x == 0u && e.y == 0u) {
            break;
        }
        if ((e.x & 1u) == 1u) {
            result = i64_mul(result, base);
        }
        base = i64_mul(base, base);
        e = u64_shr(e, 1u);
    }
    return result;
}

// float32 -> int64 as PyTorch gives it on x86: truncation toward zero; NaN, infinities and values
// outside [-2^63, 2^63) give INT64_MIN (the CPU's Element::from_f64 for i64).
fn f32_to_i64(x: f32) -> vec2<u32> {
    let bits = bitcast<u32>(x);
    let e = i32((bits >> 23u) & 0xffu) - 127;
    if (is_nan(x) || e >= 63) {
        return I64_MIN;
    }
    if (e < 0) {
        return I64_ZERO;
    }
    let mant = vec2<u32>((bits & 0x7fffffu) | 0x800000u, 0u);
    var m: vec2<u32>;
    if (e >= 23) {
        m = u64_shl(mant, u32(e - 23));
    } else {
        m = u64_shr(mant, u32(23 - e));
    }
    return select(m, i64_neg(m), (bits >> 31u) != 0u);
}

// int64 -> float32 rounded once to nearest, ties to even (as the CPU's `as f32`).
fn i64_to_f32(a: vec2<u32>) -> f32 {
    let neg = i64_is_neg(a);
    let m = i64_abs(a); // INT64_MIN's magnitude 2^63 reads correctly as unsigned
    if (m.y == 0u && m.x < 0x1000000u) {
        return select(f32(m.x), -f32(m.x), neg);
    }
    var lz: u32;
    if (m.y != 0u) {
        lz = countLeadingZeros(m.y);
    } else {
        lz = 32u + countLeadingZeros(m.x);
    }
    var msb = 63u - lz;
    let sh = msb - 23u; // >= 1 here
    var mant = u64_shr(m, sh).x;
    let rem = i64_sub(m, u64_shl(vec2<u32>(mant, 0u), sh));
    let half = u64_shl(I64_ONE, sh - 1u);
    if (u64_lt(half, rem) || (i64_eq(rem, half) && (mant & 1u) == 1u)) {
        mant += 1u;
        if (mant == 0x1000000u) {
            mant = mant >> 1u;
            msb += 1u;
        }
    }
    let f = bitcast<f32>(((msb + 127u) << 23u) | (mant & 0x7fffffu));
    return select(f, -f, neg);
}

// ---------------------------------------------------------------- values of any dtype

// Truth of a value (what a cast to bool, `where` and logical ops read): non-zero, NaN included.
fn truth(v: vec2<u32>, dt: u32) -> bool {
    if (dt == DT_F32) {
        return (v.x & 0x7fffffffu) != 0u;
    }
    return v.x != 0u || v.y != 0u;
}

// A value of dtype `src` converted to dtype `dst` (the CPU's casts).
fn convert(v: vec2<u32>, src: u32, dst: u32) -> vec2<u32> {
    if (src == dst) {
        return v;
    }
    if (dst == DT_BOOL) {
        return vec2<u32>(select(0u, 1u, truth(v, src)), 0u);
    }
    if (dst == DT_I64) {
        if (src == DT_F32) {
            return f32_to_i64(bitcast<f32>(v.x));
        }
        return vec2<u32>(v.x, 0u); // bool -> int64
    }
    // to float32
    if (src == DT_I64) {
        return vec2<u32>(bitcast<u32>(i64_to_f32(v)), 0u);
    }
    return vec2<u32>(bitcast<u32>(f32(v.x)), 0u); // bool -> float32
}
