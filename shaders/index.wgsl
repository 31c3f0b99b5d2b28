// Index-driven kernels: gather (which also serves index_select), scatter_add (which also serves
// index_add), and the bounds check that runs before either.
//
// Words as in elementwise.wgsl; indices are i32 words (the device's int64). Parameters use the
// strided-operand format of elementwise.wgsl ([0] n, [1] r, [2, 2+r) dims, then offset and
// strides[r] per operand) over the shape of the *index*, followed by two words:
//   ds (the stride of `dim` in the indexed tensor) and size (the extent of `dim`).
//
// gather: operand 0 = source with `dim`'s stride zeroed, operand 1 = index;
//   out[i] = src[off0(i) + index[off1(i)] * ds].
//   index_select(x, dim, idx) is the same kernel with the 1-d index viewed over the output shape
//   (its stride on `dim`, 0 elsewhere).
// scatter_add: operand 0 = the (contiguous) output with `dim`'s stride zeroed, operand 1 = index,
//   operand 2 = source; acc[off0(i) + index[off1(i)] * ds] += src[off2(i)]. The output already
//   holds a copy of the base. Colliding indices are resolved with atomics: i32 adds directly,
//   f32 through a compare-exchange loop (WGSL has no float atomics), so f32 sums may differ from
//   the CPU's in the last bits (the order of the additions is not fixed).
//   index_add(base, dim, idx, src) is the same kernel with the index viewed over src's shape.
// check_index: records in status[0] the first (row-major) position of an index outside
//   [0, size); check_index_value then copies the offending value to status[1]. The host fills
//   status with 0xffffffff first and reads both words back, so a bad index is an error naming it,
//   never an out-of-bounds access.

override DT: u32 = 0u;
// 1: scatter (the source replaces the element; colliding writes leave any one of them), 0: add.
override ASSIGN: u32 = 0u;

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(2) var<storage, read> in1: array<u32>;
@group(0) @binding(3) var<storage, read> in2: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<storage, read_write> acc: array<atomic<u32>>;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

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

// Index of the word after the operands' descriptions (where ds and size are).
fn tail(operands: u32) -> u32 {
    let r = params[1];
    return 2u + r + operands * (r + 1u);
}

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let t = tail(2u);
    let ds = params[t];
    let size = params[t + 1u];
    let j = bitcast<i32>(in1[offset_of(i, 1u)]);
    // validated by check_index beforehand; the guard only keeps a racing bad index harmless
    if (j < 0 || u32(j) >= size) {
        out[i] = 0u;
        return;
    }
    out[i] = in0[offset_of(i, 0u) + u32(j) * ds];
}

fn atomic_add_f32(p: u32, v: f32) {
    var old = atomicLoad(&acc[p]);
    loop {
        let new_bits = bitcast<u32>(bitcast<f32>(old) + v);
        let r = atomicCompareExchangeWeak(&acc[p], old, new_bits);
        if (r.exchanged) {
            break;
        }
        old = r.old_value;
    }
}

@compute @workgroup_size(256)
fn scatter_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let t = tail(3u);
    let ds = params[t];
    let size = params[t + 1u];
    let j = bitcast<i32>(in1[offset_of(i, 1u)]);
    if (j < 0 || u32(j) >= size) {
        return;
    }
    let p = offset_of(i, 0u) + u32(j) * ds;
    let v = in2[offset_of(i, 2u)];
    if (ASSIGN == 1u) {
        atomicStore(&acc[p], v);
    } else if (DT == 0u) {
        atomic_add_f32(p, bitcast<f32>(v));
    } else {
        atomicAdd(&acc[p], v); // i32 wrapping add has the same bits as u32 add
    }
}

@compute @workgroup_size(256)
fn check_index(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let size = params[tail(1u)];
    let j = bitcast<i32>(in0[offset_of(i, 0u)]);
    if (j < 0 || u32(j) >= size) {
        atomicMin(&acc[0], i);
    }
}

@compute @workgroup_size(1)
fn check_index_value() {
    let p = atomicLoad(&acc[0]);
    if (p != NONE) {
        atomicStore(&acc[1], in0[offset_of(p, 0u)]);
    }
}
