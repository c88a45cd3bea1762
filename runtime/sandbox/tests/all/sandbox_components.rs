//! Components: imports refused by name before compiling, typed calls from
//! WAVE and JSON, and the same fuel, deadline and memory limits as modules.

use sealbox_sandbox::component::{ComponentProgram, Val, results_to_json, results_to_wave};
use sealbox_sandbox::{CallError, GuestLimits, Sandbox, SandboxError};
use serde_json::json;

use crate::sandbox_support::*;

fn try_load_component(
    sb: &Sandbox,
    name: &str,
    limits: GuestLimits,
) -> Result<ComponentProgram, SandboxError> {
    let wasm = fixture(name);
    sb.compile_component(code_hash(&wasm), &wasm, &limits)
}

fn calc(sb: &Sandbox, limits: GuestLimits) -> ComponentProgram {
    try_load_component(sb, "component_calc", limits).unwrap()
}

#[test]
fn imports_outside_the_granted_wasi_are_refused_by_name_before_any_instance() {
    let sb = sandbox();
    let err = try_load_component(&sb, "component_sockets", GuestLimits::default()).unwrap_err();
    match &err {
        SandboxError::ComponentImportsRefused { refused } => {
            assert_eq!(refused, &["wasi:sockets/tcp@0.2.3"])
        }
        other => panic!("expected ComponentImportsRefused, got {other}"),
    }
    let err = try_load_component(&sb, "component_host_import", GuestLimits::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("`acme:host/net@1.0.0`"), "{text}");
    assert!(
        !text.contains("`wasi:io/error@0.2.3`"),
        "granted import listed: {text}"
    );
}

#[test]
fn an_import_that_only_carries_types_is_allowed() {
    let sb = sandbox();
    let program =
        try_load_component(&sb, "component_types_import", GuestLimits::default()).unwrap();
    assert_eq!(program.imports(), ["acme:calc/types@1.0.0"]);
    let out = program
        .json_call("area", &json!({"r": {"w": 6, "h": 7}}))
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(results_to_json(&out.results), json!(42));
}

#[test]
fn a_core_module_is_not_loaded_as_a_component_nor_the_reverse() {
    let sb = sandbox();
    let err = try_load_component(&sb, "numeric", GuestLimits::default()).unwrap_err();
    assert!(err.to_string().contains("core module"), "{err}");
    let err = try_load(&sb, "component_calc", GuestLimits::default()).unwrap_err();
    assert!(err.to_string().contains("component"), "{err}");
    assert_eq!(sb.compilations(), 0);
}

#[test]
fn wave_and_json_calls_are_typed_by_the_signature() {
    let sb = sandbox();
    let program = calc(&sb, GuestLimits::default());
    let names: Vec<&str> = program.functions().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["add", "area", "boom", "hog", "spin"]);
    assert_eq!(
        program.function("area").unwrap().signature(),
        "area(r: record { w: u32, h: u32 }) -> u64"
    );

    // Narrowed to some functions (a product's world), the others are not callable.
    let narrowed = program.clone().only(&["add"]).unwrap();
    assert!(matches!(
        narrowed.wave_call("area({w: 1, h: 1})").map(|_| ()),
        Err(CallError::MissingExport { .. })
    ));
    assert!(program.clone().only(&["nope"]).is_err());

    let out = program.wave_call("add(40, 2)").unwrap().run().unwrap();
    assert_eq!(out.results, [Val::U32(42)]);
    assert_eq!(results_to_wave(&out.results).unwrap(), "42");

    let out = program
        .wave_call("area({w: 70000, h: 70000})")
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(out.results, [Val::U64(4_900_000_000)], "no 32-bit overflow");

    let out = program
        .json_call("area", &json!({"r": {"w": 3, "h": 5}}))
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(results_to_json(&out.results), json!(15));
    let out = program
        .json_call("add", &json!([1, 2]))
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(results_to_json(&out.results), json!(3));
}

#[test]
fn arguments_that_do_not_fit_name_the_field() {
    let sb = sandbox();
    let program = calc(&sb, GuestLimits::default());
    let reason = |r: Result<_, CallError>| match r {
        Err(CallError::BadArgument { reason, .. }) => reason,
        Err(other) => panic!("expected BadArgument, got {other}"),
        Ok(_) => panic!("accepted"),
    };
    let r = reason(
        program
            .json_call("area", &json!({"r": {"w": 3, "h": "5"}}))
            .map(|_| ()),
    );
    assert!(r.contains("`r.h`") && r.contains("u32"), "{r}");
    let r = reason(
        program
            .json_call("area", &json!({"r": {"w": 3}}))
            .map(|_| ()),
    );
    assert!(r.contains("`r.h`") && r.contains("missing"), "{r}");
    let r = reason(
        program
            .json_call("area", &json!({"r": {"w": 3, "h": 4, "d": 1}}))
            .map(|_| ()),
    );
    assert!(r.contains("`r.d`") && r.contains("unknown field"), "{r}");
    let r = reason(
        program
            .json_call("add", &json!({"a": -1, "b": 2}))
            .map(|_| ()),
    );
    assert!(
        r.contains("`a`") && r.contains("from 0 to 4294967295"),
        "{r}"
    );
    let r = reason(
        program
            .json_call("add", &json!({"a": 1, "c": 2}))
            .map(|_| ()),
    );
    assert!(r.contains("`c`") && r.contains("unknown parameter"), "{r}");
    let r = reason(program.wave_call("add(1, \"two\")").map(|_| ()));
    assert!(r.contains("add(a: u32, b: u32) -> u32"), "{r}");
    match program.wave_call("mul(1, 2)").map(|_| ()) {
        Err(CallError::MissingExport { name, available }) => {
            assert_eq!(name, "mul");
            assert!(
                available.iter().any(|a| a.starts_with("add(")),
                "{available:?}"
            );
        }
        other => panic!("expected MissingExport, got {other:?}"),
    }
}

#[test]
fn the_limits_of_modules_hold_for_components() {
    let sb = sandbox();
    let program = calc(&sb, limit_deadline_ms(50));
    let err = program.wave_call("spin()").unwrap().run().unwrap_err();
    assert!(matches!(err, CallError::DeadlineExceeded { .. }), "{err}");

    let program = calc(&sb, limit_fuel(100_000));
    let err = program.wave_call("spin()").unwrap().run().unwrap_err();
    assert!(matches!(err, CallError::OutOfFuel { .. }), "{err}");

    let program = calc(&sb, limit_memory_pages(64));
    match program.wave_call("hog(8)").unwrap().run().unwrap_err() {
        CallError::MemoryLimit {
            limit_pages,
            requested_pages,
            ..
        } => {
            assert_eq!(limit_pages, 64);
            assert!(requested_pages > 64 && requested_pages <= 64 + 8);
        }
        other => panic!("expected MemoryLimit, got {other}"),
    }

    let err = program.wave_call("boom()").unwrap().run().unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }), "{err}");
    // Each fault ended only its call.
    let out = program.wave_call("add(1, 1)").unwrap().run().unwrap();
    assert_eq!(out.results, [Val::U32(2)]);
}

#[test]
fn components_use_the_authenticated_cache() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = fixture("component_calc");
    let first = Sandbox::new(config(Some(dir.path().join("cache")))).unwrap();
    let p = first
        .compile_component(code_hash(&wasm), &wasm, &GuestLimits::default())
        .unwrap();
    assert!(!p.compile_stats().from_cache);
    let second = Sandbox::new(config(Some(dir.path().join("cache")))).unwrap();
    let p = second
        .compile_component(code_hash(&wasm), &wasm, &GuestLimits::default())
        .unwrap();
    assert!(p.compile_stats().from_cache);
    assert_eq!(second.compilations(), 0);
    let out = p.wave_call("add(2, 3)").unwrap().run().unwrap();
    assert_eq!(out.results, [Val::U32(5)]);
}

#[test]
fn what_a_component_prints_is_captured_per_call_with_a_cap() {
    use sealbox_sandbox::component::OUTPUT_CAP_BYTES;
    let sb = sandbox();
    let program = try_load_component(&sb, "component_prints", GuestLimits::default()).unwrap();
    let out = program.wave_call("shout(2)").unwrap().run().unwrap();
    assert_eq!(out.results, [Val::U32(2)]);
    assert_eq!(out.stdout, "to stdout\nto stdout\n");
    assert_eq!(out.stderr, "to stderr\nto stderr\n");
    // Nothing carries over to the next call.
    let out = program.wave_call("shout(1)").unwrap().run().unwrap();
    assert_eq!(out.stdout, "to stdout\n");

    // Past the cap the rest is dropped, counted, and the guest goes on.
    let times = OUTPUT_CAP_BYTES / 10 + 100;
    let out = program
        .wave_call(&format!("shout({times})"))
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(out.results, [Val::U32(times as u32)]);
    assert!(out.stdout.starts_with("to stdout\n"));
    let dropped = times * 10 - OUTPUT_CAP_BYTES;
    assert!(
        out.stdout
            .ends_with(&format!("({dropped} more bytes dropped)")),
        "{}",
        &out.stdout[out.stdout.len() - 60..]
    );

    // A failing call carries its stderr.
    let err = program.wave_call("fail()").unwrap().run().unwrap_err();
    match &err {
        CallError::WithStderr { fault, stderr } => {
            assert!(matches!(**fault, CallError::Trap { .. }), "{fault}");
            assert_eq!(stderr, "about to fail");
        }
        other => panic!("expected the trap with its stderr, got {other}"),
    }
    assert!(err.is_guest_fault());
    assert!(err.to_string().contains("about to fail"), "{err}");
}
