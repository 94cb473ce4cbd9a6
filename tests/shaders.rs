//! Every WGSL kernel parses and validates with naga, for every value of its override constants, on any
//! machine, GPU or not. The browser's own compiler stays the final word; this catches errors early.

use naga::back::PipelineConstants;
use shelfwise::backend::kernels::Kernel;

fn validate(kernel: Kernel, constants: &PipelineConstants) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(kernel.source())
        .map_err(|e| e.emit_to_string(kernel.source()))?;
    let flags = naga::valid::ValidationFlags::all();
    // `unpack2x16float` is core WGSL; naga files it under this capability, which wgpu grants on every
    // adapter with the SHADER_F16_IN_F32 downlevel flag (all WebGPU-conformant ones).
    let caps = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    let info = naga::valid::Validator::new(flags, caps)
        .validate(&module)
        .map_err(|e| format!("{e:?}"))?;
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(&module, &info, None, constants)
            .map_err(|e| format!("overrides {constants:?}: {e:?}"))?;
    naga::valid::Validator::new(flags, caps)
        .validate(&module)
        .map_err(|e| format!("after overrides {constants:?}: {e:?}"))?;
    drop(info);
    Ok(())
}

#[test]
fn every_kernel_validates_with_every_override() {
    for &kernel in Kernel::ALL {
        let mut combos: Vec<PipelineConstants> = vec![PipelineConstants::default()];
        for &(name, values) in kernel.overrides() {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |&v| {
                        let mut c = c.clone();
                        c.insert(name.to_string(), v);
                        c
                    })
                })
                .collect();
        }
        for c in &combos {
            if let Err(e) = validate(kernel, c) {
                panic!("{}.wgsl: {e}", kernel.label());
            }
        }
    }
}

#[test]
fn kernel_files_match_the_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    let mut labels: Vec<String> = Kernel::ALL
        .iter()
        .map(|k| format!("{}.wgsl", k.label()))
        .collect();
    labels.sort();
    assert_eq!(
        files, labels,
        "every shader file is a kernel in the table, and the other way round"
    );
}

#[test]
fn a_broken_shader_is_caught() {
    // The validator must reject what a browser would: here a type error.
    let src = "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }";
    assert!(naga::front::wgsl::parse_str(src).is_err());
}
