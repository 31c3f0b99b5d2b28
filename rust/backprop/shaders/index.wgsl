// Index-driven kernels: gather (which also serves index_select) and scatter (assign or add;
// it also serves index_add), for values of any dtype and int64 indices (two words each).
//
// Parameters use the strided-operand format of common.wgsl over the shape of the *index*,
// followed by three words: ds (the stride of `dim` in the indexed tensor), size (the extent
// of `dim`) and the id of this dispatch's bounds check.
//
// gather: operand 0 = source with `dim`'s stride zeroed, operand 1 = index;
//   out[i] = src[off0(i) + index[off1(i)] * ds].
//   index_select(x, dim, idx) is the same kernel with the 1-d index viewed over the output shape
//   (its stride on `dim`, 0 elsewhere).
// scatter_add / scatter_claim + scatter_assign: operand 0 = the (contiguous) output with `dim`'s
//   stride zeroed, operand 1 = index, operand 2 = source; the output already holds a copy of
//   the base. Adds of colliding indices use atomics: int64 adds the low words atomically and
//   carries into the high word (every add sees the exact low word it extends, so the sum is
//   exact), float32 goes through a compare-exchange loop (WGSL has no float atomics), so float
//   sums may differ from the CPU's in the last bits. Assignment is deterministic and the CPU's:
//   `scatter_claim` records in `claim` the last (highest) source position that targets each
//   element, `scatter_assign` lets only that one write.
//
// Bounds: an index outside [0, size) is never followed. The kernel writes the check's id
// (atomicMin, so the earliest check wins) and the bad index to `status`, which the host reads at
// the next synchronisation and turns into the error of the op that had the bad index (a
// device-side assert, as CUDA's): checking costs no readback of its own.

override DT: u32 = 0u;

@group(0) @binding(1) var<storage, read> in0: array<u32>;
@group(0) @binding(2) var<storage, read> in1: array<u32>;
@group(0) @binding(3) var<storage, read> in2: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;
@group(0) @binding(5) var<storage, read_write> acc: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read_write> claim: array<atomic<u32>>;

// The index at element `e` of operand 1, if it lies in [0, size); else records the failure.
fn index_at(e: u32, size: u32, check: u32) -> u32 {
    let lo = in1[2u * e];
    let hi = in1[2u * e + 1u];
    if (hi != 0u || lo >= size) {
        let prev = atomicMin(&status[0], check);
        if (prev > check) {
            atomicStore(&status[1], lo);
            atomicStore(&status[2], hi);
        }
        return NONE;
    }
    return lo;
}

fn ld0(e: u32) -> vec2<u32> {
    if (DT == DT_I64) {
        return vec2<u32>(in0[2u * e], in0[2u * e + 1u]);
    }
    return vec2<u32>(in0[e], 0u);
}

fn ld2(e: u32) -> vec2<u32> {
    if (DT == DT_I64) {
        return vec2<u32>(in2[2u * e], in2[2u * e + 1u]);
    }
    return vec2<u32>(in2[e], 0u);
}

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let t = tail(2u);
    let j = index_at(offset_of(i, 1u), params[t + 1u], params[t + 2u]);
    var v = I64_ZERO;
    if (j != NONE) {
        v = ld0(offset_of(i, 0u) + j * params[t]);
    }
    if (DT == DT_I64) {
        out[2u * i] = v.x;
        out[2u * i + 1u] = v.y;
    } else {
        out[i] = v.x;
    }
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

// The output element source element `i` lands on, or NONE (bad index).
fn target_of(i: u32) -> u32 {
    let t = tail(3u);
    let j = index_at(offset_of(i, 1u), params[t + 1u], params[t + 2u]);
    if (j == NONE) {
        return NONE;
    }
    return offset_of(i, 0u) + j * params[t];
}

@compute @workgroup_size(256)
fn scatter_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let p = target_of(i);
    if (p == NONE) {
        return;
    }
    let v = ld2(offset_of(i, 2u));
    if (DT == DT_F32) {
        atomic_add_f32(p, bitcast<f32>(v.x));
    } else {
        let old_lo = atomicAdd(&acc[2u * p], v.x);
        let carry = select(0u, 1u, old_lo + v.x < old_lo);
        atomicAdd(&acc[2u * p + 1u], v.y + carry);
    }
}

// Assignment, pass 1: the highest source position aiming at each element (stored + 1, so 0 in
// the zero-filled `claim` means "nobody").
@compute @workgroup_size(256)
fn scatter_claim(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let p = target_of(i);
    if (p != NONE) {
        atomicMax(&claim[p], i + 1u);
    }
}

// Assignment, pass 2: the claimant writes (so the last source in index order wins, as on the
// CPU). Bounds were reported by pass 1; this pass reads the index without recording again.
@compute @workgroup_size(256)
fn scatter_assign(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= params[0]) {
        return;
    }
    let t = tail(3u);
    let e = offset_of(i, 1u);
    let lo = in1[2u * e];
    if (in1[2u * e + 1u] != 0u || lo >= params[t + 1u]) {
        return;
    }
    let p = offset_of(i, 0u) + lo * params[t];
    if (atomicLoad(&claim[p]) != i + 1u) {
        return;
    }
    let v = ld2(offset_of(i, 2u));
    if (DT == DT_I64) {
        atomicStore(&acc[2u * p], v.x);
        atomicStore(&acc[2u * p + 1u], v.y);
    } else {
        atomicStore(&acc[p], v.x);
    }
}
