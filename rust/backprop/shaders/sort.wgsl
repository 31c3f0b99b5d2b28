// Sorting: the stable order of each row, as int64 indices (`torch.argsort(stable=True)`).
//
// `argsort_rows`: one workgroup per row of a contiguous [rows, n] input with n <= 1024. The row
// is loaded into workgroup memory as (key, index) pairs, padded to the next power of two, and
// sorted by a bitonic network; comparing the index when keys tie makes the order stable, and
// padding slots sort after every real element. Keys are the values mapped to unsigned integers
// that order as the values do (the CPU kernel's order exactly): float32 with -0.0 equal to 0.0
// and every NaN equal and greatest (so NaN comes last ascending, first descending, as in
// PyTorch), int64 (as two words) by its signed value, bool as 0 / 1.
//
// Parameters: [0] rows  [1] n  [2] p (power of two >= n)  [3] descending  [4] input offset
// Bindings: 1 input (the tensor's dtype, DT), 4 output (int64 indices, [rows, n]).

override DT: u32 = 0u;

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

const SORT_MAX: u32 = 1024u;

var<workgroup> keys: array<vec2<u32>, 1024>;
var<workgroup> idx: array<u32, 1024>;

// An order-preserving unsigned key (high word, low word) of element `e`.
fn sort_key(e: u32) -> vec2<u32> {
    if (DT == DT_I64) {
        // signed comparison of the high word becomes unsigned by flipping its sign bit
        return vec2<u32>(x[2u * e + 1u] ^ 0x80000000u, x[2u * e]);
    }
    let b = x[e];
    if (DT == DT_BOOL) {
        return vec2<u32>(b, 0u);
    }
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return vec2<u32>(0xffffffffu, 0u); // every NaN alike, above +inf
    }
    if ((b & 0x7fffffffu) == 0u) {
        return vec2<u32>(0x80000000u, 0u); // -0.0 == 0.0
    }
    // positive floats above the negative ones; negative ones in reverse bit order
    return vec2<u32>(select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u), 0u);
}

fn key_less(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x < b.x || (a.x == b.x && a.y < b.y);
}

// Whether slot `a` goes before slot `b` in the requested order (padding last, ties by index).
fn before(a: u32, b: u32, n: u32, descending: bool) -> bool {
    let ia = idx[a];
    let ib = idx[b];
    if (ia >= n) {
        return false;
    }
    if (ib >= n) {
        return true;
    }
    let ka = keys[a];
    let kb = keys[b];
    if (ka.x == kb.x && ka.y == kb.y) {
        return ia < ib;
    }
    return select(key_less(ka, kb), key_less(kb, ka), descending);
}

@compute @workgroup_size(256)
fn argsort_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.y * nwg.x + wid.x;
    let rows = params[0];
    let n = params[1];
    let p = params[2];
    let descending = params[3] != 0u;
    // uniform control flow: a workgroup past the last row still reaches every barrier
    let live = row < rows;
    let base = params[4] + row * n;
    for (var i = lid; i < p; i += WG) {
        idx[i] = i;
        if (live && i < n) {
            keys[i] = sort_key(base + i);
        } else {
            keys[i] = vec2<u32>(0u, 0u);
        }
    }
    workgroupBarrier();
    for (var k = 2u; k <= p; k = k << 1u) {
        for (var j = k >> 1u; j > 0u; j = j >> 1u) {
            for (var i = lid; i < p; i += WG) {
                let q = i ^ j;
                if (q > i) {
                    // blocks of k alternate direction; within a block, pairs j apart are ordered
                    let up = (i & k) == 0u;
                    let swap = select(before(i, q, n, descending), before(q, i, n, descending), up);
                    if (swap) {
                        let tk = keys[i];
                        keys[i] = keys[q];
                        keys[q] = tk;
                        let ti = idx[i];
                        idx[i] = idx[q];
                        idx[q] = ti;
                    }
                }
            }
            workgroupBarrier();
        }
    }
    if (live) {
        let o = row * n;
        for (var i = lid; i < n; i += WG) {
            out[2u * (o + i)] = idx[i];
            out[2u * (o + i) + 1u] = 0u;
        }
    }
}
