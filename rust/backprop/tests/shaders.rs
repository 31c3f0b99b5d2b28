//! Every kernel family must parse and validate with naga (the shader compiler wgpu uses) as the
//! backend compiles it (generated prelude + common.wgsl + the family's file), so a broken kernel
//! fails `cargo test` on any machine, GPU or not.

use backprop::wgsl;

#[test]
fn every_shader_parses_and_validates() {
    assert!(wgsl::FAMILIES.len() >= 7, "expected the kernel families");
    let mut failures = Vec::new();
    for (name, _) in wgsl::FAMILIES {
        let src = wgsl::source(name).expect("a family's source");
        let module = match naga::front::wgsl::parse_str(&src) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: parse error:\n{}", e.emit_to_string(&src)));
                continue;
            }
        };
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        if let Err(e) = validator.validate(&module) {
            failures.push(format!(
                "{name}: validation error:\n{}",
                e.emit_to_string(&src)
            ));
            continue;
        }
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// No shader may carry a numeric op or dtype code: they switch on the generated names. A
/// `case <number>` or a comparison of OP/DT/DT_OUT with a literal would mean a number kept in
/// step by hand.
#[test]
fn no_numeric_op_codes_in_shaders() {
    let mut bad = Vec::new();
    for (name, body) in wgsl::FAMILIES
        .iter()
        .chain(std::iter::once(&("common", wgsl::COMMON)))
    {
        for (i, line) in body.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let t = code.trim();
            let numeric_case = t.starts_with("case ")
                && t[5..]
                    .trim_start()
                    .starts_with(|c: char| c.is_ascii_digit());
            let numeric_cmp = ["OP", "DT", "DT_OUT", "MODE"].iter().any(|k| {
                [" == ", " != "].iter().any(|op| {
                    code.split(&format!("{k}{op}"))
                        .skip(1)
                        .any(|rest| rest.trim_start().starts_with(|c: char| c.is_ascii_digit()))
                })
            });
            if numeric_case || numeric_cmp {
                bad.push(format!("{name}.wgsl:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "numeric codes in shaders:\n{}",
        bad.join("\n")
    );
}
