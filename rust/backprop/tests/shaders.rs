//! Every WGSL file in `shaders/` must parse and validate with naga (the shader compiler wgpu uses),
//! so a broken kernel fails `cargo test` on any machine, GPU or not.

use std::path::PathBuf;

fn shader_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shaders")
}

fn shader_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shader_dir())
        .expect("shaders/ exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shader_parses_and_validates() {
    let files = shader_files();
    assert!(
        files.len() >= 5,
        "expected the kernel families in shaders/, found {files:?}"
    );
    let mut failures = Vec::new();
    for path in &files {
        let src = std::fs::read_to_string(path).expect("readable shader");
        let module = match naga::front::wgsl::parse_str(&src) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!(
                    "{}: parse error:\n{}",
                    path.display(),
                    e.emit_to_string(&src)
                ));
                continue;
            }
        };
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        if let Err(e) = validator.validate(&module) {
            failures.push(format!(
                "{}: validation error:\n{}",
                path.display(),
                e.emit_to_string(&src)
            ));
            continue;
        }
        assert!(
            !module.entry_points.is_empty(),
            "{} has no entry point",
            path.display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The GPU backend compiles the shaders in with `include_str!`; a file it does not name would be
/// dead code, and a name without a file would not build. Check the two agree.
#[test]
fn every_shader_is_used_by_the_gpu_backend() {
    let pipeline = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/gpu/pipeline.rs"),
    )
    .expect("src/gpu/pipeline.rs");
    for path in shader_files() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 file name");
        assert!(
            pipeline.contains(&format!("shaders/{name}\"")),
            "shaders/{name} is not included by src/gpu/pipeline.rs"
        );
    }
}

/// The check above must be able to fail: a kernel with a type error is rejected.
#[test]
fn a_broken_shader_is_rejected() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n\
               @compute @workgroup_size(1) fn main() { out[0] = 1.5; }";
    let ok = naga::front::wgsl::parse_str(src).ok().and_then(|m| {
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&m)
        .ok()
    });
    assert!(
        ok.is_none(),
        "naga accepted a shader storing an f32 into a u32 array"
    );
}
