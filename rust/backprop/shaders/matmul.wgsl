// Batched matrix multiply: out[b] = A[b] (m x k) @ B[b] (k x n), out C-contiguous [batch, m, n].
//
// Tiled in workgroup memory with register blocking: a workgroup of 16 x 16 threads computes a
// 64 x 64 output tile, each thread a 4 x 4 block held in registers, stepping through k in slabs
// of 16 that all threads load cooperatively. Operands are read through (row stride, column stride)
// and per-batch offsets, so transposed (A^T B, A B^T in every Linear backward), sliced and
// broadcast (stride 0) operands are multiplied where they lie, without a copy.
//
// `matmul` is float32; `matmul_i64` (int64, two words per value, wrapping like the CPU's
// wrapping_mul/add) is a plain one-thread-per-output loop: integer matmuls are rare and small.
//
// The inner dimension is processed in ranges [k_begin, k_end): a long K is split by the host
// over several dispatches that accumulate into the output, so no invocation loops more than a
// bounded number of times (see common.wgsl) and the whole of K always counts.
//
// Parameters:
//   [0] m  [1] n  [2] k (total)  [3] batch  [4] a_row_stride  [5] a_col_stride  [6] b_row_stride
//   [7] b_col_stride  [8] a_offset  [9] b_offset  [10] br (batch rank)  [11] tiles_m  [12] tiles_n
//   [13] k_begin  [14] k_end  [15] accumulate (1: out += this range's product; 0: out = it)
//   [16, 16+br) batch dims, then A batch strides[br], then B batch strides[br]
// Grid: matmul: one workgroup per (batch, tile row, tile column), linearised over x and y;
// matmul_i64: one thread per output element.

@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(2) var<storage, read> in1: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// A slab stored k-major (a_tile[kk * TM + row]) so the inner loop reads consecutive rows.
var<workgroup> a_tile: array<u32, 1024>;
var<workgroup> b_tile: array<u32, 1024>;

fn mul_add(acc: u32, a: u32, b: u32) -> u32 {
    return bitcast<u32>(fma(bitcast<f32>(a), bitcast<f32>(b), bitcast<f32>(acc)));
}

// Offsets of batch element `batch` in A and B.
fn batch_offsets(batch: u32) -> vec2<u32> {
    let br = params[10];
    var a_off = params[8];
    var b_off = params[9];
    var rem = batch;
    for (var d = br; d > 0u; d--) {
        let size = params[15u + d];
        let c = rem % size;
        rem = rem / size;
        a_off += c * params[15u + br + d];
        b_off += c * params[15u + 2u * br + d];
    }
    return vec2<u32>(a_off, b_off);
}

@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = params[0];
    let n = params[1];
    let tiles_m = params[11];
    let tiles_n = params[12];
    let per_batch = tiles_m * tiles_n;
    let g = wid.y * nwg.x + wid.x;
    let batch = g / per_batch;
    if (batch >= params[3]) {
        return;
    }
    let t = g % per_batch;
    let row0 = (t / tiles_n) * TM;
    let col0 = (t % tiles_n) * TN;

    let offs = batch_offsets(batch);
    let a_off = offs.x;
    let b_off = offs.y;
    let a_rs = params[4];
    let a_cs = params[5];
    let b_rs = params[6];
    let b_cs = params[7];

    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<u32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0u; // 0.0 and 0 have the same bits
    }

    let k_end = params[14];
    for (var k0 = params[13]; k0 < k_end; k0 += TK) {
        // cooperative loads: 1024 words of A and of B per slab, 4 per thread; out of range -> 0
        for (var e = 0u; e < 4u; e++) {
            let idx = lid + e * 256u;
            // A: 64 rows x 16 k, read row-major in k so neighbouring threads read neighbouring k
            let ar = idx / TK;
            let ak = idx % TK;
            let gr = row0 + ar;
            let gk = k0 + ak;
            var av = 0u;
            if (gr < m && gk < k_end) {
                av = in0[a_off + gr * a_rs + gk * a_cs];
            }
            a_tile[ak * TM + ar] = av;
            // B: 16 k x 64 columns
            let bk = idx / TN;
            let bc = idx % TN;
            let gk2 = k0 + bk;
            let gc = col0 + bc;
            var bv = 0u;
            if (gk2 < k_end && gc < n) {
                bv = in1[b_off + gk2 * b_rs + gc * b_cs];
            }
            b_tile[bk * TN + bc] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var a: array<u32, 4>;
            var b: array<u32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = a_tile[kk * TM + ty * 4u + i];
                b[i] = b_tile[kk * TN + tx * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = mul_add(acc[i * 4u + j], a[i], b[j]);
                }
            }
        }
        workgroupBarrier();
    }

    let out_base = batch * m * n;
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + ty * 4u + i;
        if (r < m) {
            for (var j = 0u; j < 4u; j++) {
                let c = col0 + tx * 4u + j;
                if (c < n) {
                    let o = out_base + r * n + c;
                    if (params[15] == 1u) {
                        out[o] = bitcast<u32>(bitcast<f32>(out[o]) + bitcast<f32>(acc[i * 4u + j]));
                    } else {
                        out[o] = acc[i * 4u + j];
                    }
                }
            }
        }
    }
}

@compute @workgroup_size(256)
fn matmul_i64(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = params[0];
    let n = params[1];
    let idx = linear_id(wid, nwg, lid);
    if (idx >= params[3] * m * n) {
        return;
    }
    let batch = idx / (m * n);
    let r = (idx / n) % m;
    let c = idx % n;
    let offs = batch_offsets(batch);
    let a_base = offs.x + r * params[4];
    let b_base = offs.y + c * params[7];
    var acc = I64_ZERO;
    if (params[15] == 1u) {
        acc = vec2<u32>(out[2u * idx], out[2u * idx + 1u]);
    }
    for (var kk = params[13]; kk < params[14]; kk++) {
        let ae = a_base + kk * params[5];
        let be = b_base + kk * params[6];
        let a = vec2<u32>(in0[2u * ae], in0[2u * ae + 1u]);
        let b = vec2<u32>(in1[2u * be], in1[2u * be + 1u]);
        acc = i64_add(acc, i64_mul(a, b));
    }
    out[2u * idx] = acc.x;
    out[2u * idx + 1u] = acc.y;
}
