// Batched matrix multiply: out[b] = A[b] (m x k) @ B[b] (k x n), out C-contiguous [batch, m, n].
//
// Tiled in workgroup memory with register blocking: a workgroup of 16 x 16 threads computes a
// 64 x 64 output tile, each thread a 4 x 4 block held in registers, stepping through k in slabs
// of 16 that all threads load cooperatively. Operands are read through (row stride, column stride)
// and per-batch offsets, so transposed (A^T B, A B^T in every Linear backward), sliced and
// broadcast (stride 0) operands are multiplied where they lie, without a copy.
//
// Words are f32 (DT = 0) or i32 (DT = 1, the device's int64; wrapping like the CPU's
// wrapping_mul/add). Tiles live as u32 words: for f32 the bitcasts are free, and i32 data never
// passes through float registers (which could flush the denormal bit patterns of small ints).
//
// Parameters:
//   [0] m  [1] n  [2] k  [3] batch  [4] a_row_stride  [5] a_col_stride  [6] b_row_stride
//   [7] b_col_stride  [8] a_offset  [9] b_offset  [10] br (batch rank)  [11] tiles_m  [12] tiles_n
//   [13, 13+br) batch dims, then A batch strides[br], then B batch strides[br]
// Grid: one workgroup per (batch, tile row, tile column), linearised over x and y.

override DT: u32 = 0u;

@group(0) @binding(0) var<storage, read> params: array<u32>;
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
    if (DT == 0u) {
        return bitcast<u32>(fma(bitcast<f32>(a), bitcast<f32>(b), bitcast<f32>(acc)));
    }
    return acc + a * b; // two's complement: the same bits as i32 wrapping arithmetic
}

@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = params[0];
    let n = params[1];
    let k = params[2];
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

    // batch offsets of A and B
    let br = params[10];
    var a_off = params[8];
    var b_off = params[9];
    var rem = batch;
    for (var d = br; d > 0u; d--) {
        let size = params[12u + d];
        let c = rem % size;
        rem = rem / size;
        a_off += c * params[12u + br + d];
        b_off += c * params[12u + 2u * br + d];
    }
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

    for (var k0 = 0u; k0 < k; k0 += TK) {
        // cooperative loads: 1024 words of A and of B per slab, 4 per thread; out of range -> 0
        for (var e = 0u; e < 4u; e++) {
            let idx = lid + e * 256u;
            // A: 64 rows x 16 k, read row-major in k so neighbouring threads read neighbouring k
            let ar = idx / TK;
            let ak = idx % TK;
            let gr = row0 + ar;
            let gk = k0 + ak;
            var av = 0u;
            if (gr < m && gk < k) {
                av = in0[a_off + gr * a_rs + gk * a_cs];
            }
            a_tile[ak * TM + ar] = av;
            // B: 16 k x 64 columns
            let bk = idx / TN;
            let bc = idx % TN;
            let gk2 = k0 + bk;
            let gc = col0 + bc;
            var bv = 0u;
            if (gk2 < k && gc < n) {
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
                    out[out_base + r * n + c] = acc[i * 4u + j];
                }
            }
        }
    }
}
