//! Shader sources and the compute-pipeline cache.
//!
//! Each kernel family is one WGSL file in the crate's `shaders/`, composed with the generated
//! prelude and `common.wgsl` by `crate::wgsl` (and validated by naga in `cargo test`, see
//! `tests/shaders.rs`). A pipeline is specialised by
//! pipeline-overridable constants (op code, dtype...), so the cache key is (file, entry point,
//! constants); each is compiled once per process. Layouts are derived from the entry point
//! with naga (the compiler wgpu itself uses): an entry point's bind group holds exactly the
//! bindings it uses, and binding 0, the parameter block, is bound with a dynamic offset.

use super::context::{lock, Context};
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wgpu::naga;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Shader {
    Elementwise,
    Reduce,
    Matmul,
    Softmax,
    Attention,
    LayerNorm,
    Index,
    Conv,
    Optim,
    Sort,
}

impl Shader {
    /// The family's name in `crate::wgsl::FAMILIES`.
    pub fn family(self) -> &'static str {
        match self {
            Shader::Elementwise => "elementwise",
            Shader::Reduce => "reduce",
            Shader::Matmul => "matmul",
            Shader::Softmax => "softmax",
            Shader::Attention => "attention",
            Shader::LayerNorm => "layer_norm",
            Shader::Index => "index",
            Shader::Conv => "conv",
            Shader::Optim => "optim",
            Shader::Sort => "sort",
        }
    }

    pub fn file(self) -> String {
        format!("{}.wgsl", self.family())
    }

    /// The complete source the device compiles.
    pub fn source(self) -> Result<String> {
        crate::wgsl::source(self.family()).ok_or_else(|| {
            Error::Gpu(format!(
                "no WGSL source for kernel family {}",
                self.family()
            ))
        })
    }
}

/// One kernel: a file, an entry point and the values of its override constants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Kernel {
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, u32)>,
}

impl Kernel {
    pub fn new(shader: Shader, entry: &'static str, constants: &[(&'static str, u32)]) -> Kernel {
        Kernel {
            shader,
            entry,
            constants: constants.to_vec(),
        }
    }
}

pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    /// Shared by every pipeline of the same entry point (whatever its constants), so a bind
    /// group made for one serves them all (see the bind-group cache in dispatch.rs).
    pub layout: wgpu::BindGroupLayout,
}

/// A shader file compiled for the device, with naga's reading of it (to derive layouts).
struct Module {
    module: wgpu::ShaderModule,
    ir: naga::Module,
    info: naga::valid::ModuleInfo,
}

type Layouts = (wgpu::BindGroupLayout, wgpu::PipelineLayout);

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<Shader, Arc<Module>>>,
    layouts: Mutex<HashMap<(Shader, &'static str), Arc<Layouts>>>,
    pipelines: Mutex<HashMap<Kernel, Arc<Pipeline>>>,
}

impl PipelineCache {
    pub fn get(&self, ctx: &Context, k: &Kernel) -> Result<Arc<Pipeline>> {
        if let Some(p) = lock(&self.pipelines).get(k) {
            return Ok(p.clone());
        }
        let module = self.module(ctx, k.shader)?;
        let layouts = self.layouts(ctx, k, &module)?;
        let constants: Vec<(&str, f64)> = k.constants.iter().map(|&(n, v)| (n, v as f64)).collect();
        let what = format!(
            "compiling shaders/{} entry point '{}' with {:?}",
            k.shader.file(),
            k.entry,
            k.constants
        );
        let pipeline = ctx.scoped(&what, || {
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(k.entry),
                    layout: Some(&layouts.1),
                    module: &module.module,
                    entry_point: Some(k.entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: ctx.disk.as_ref().map(|d| &d.cache),
                })
        })?;
        if let Some(d) = &ctx.disk {
            d.compiled();
        }
        let p = Arc::new(Pipeline {
            pipeline,
            layout: layouts.0.clone(),
        });
        lock(&self.pipelines).insert(k.clone(), p.clone());
        Ok(p)
    }

    /// The bind-group and pipeline layouts of an entry point: the bindings it uses (directly or
    /// through the functions it calls), as wgpu's automatic layout would have them, except that
    /// binding 0 (the parameter block) takes a *dynamic offset*. Bind groups then no longer
    /// depend on where a dispatch's parameters sit in the batch's arena, so they can be cached
    /// and reused across dispatches and batches.
    fn layouts(&self, ctx: &Context, k: &Kernel, m: &Module) -> Result<Arc<Layouts>> {
        let key = (k.shader, k.entry);
        if let Some(l) = lock(&self.layouts).get(&key) {
            return Ok(l.clone());
        }
        let entries = layout_entries(k.shader, k.entry, &m.ir, &m.info)?;
        let what = format!(
            "creating the bind group layout of shaders/{} entry point '{}'",
            k.shader.file(),
            k.entry
        );
        let layouts = ctx.scoped(&what, || {
            let bgl = ctx
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(k.entry),
                    entries: &entries,
                });
            let pl = ctx
                .device
                .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(k.entry),
                    bind_group_layouts: &[Some(&bgl)],
                    immediate_size: 0,
                });
            (bgl, pl)
        })?;
        let l = Arc::new(layouts);
        lock(&self.layouts).insert(key, l.clone());
        Ok(l)
    }

    fn module(&self, ctx: &Context, shader: Shader) -> Result<Arc<Module>> {
        if let Some(m) = lock(&self.modules).get(&shader) {
            return Ok(m.clone());
        }
        let what = format!("compiling shaders/{}", shader.file());
        let source = shader.source()?;
        let ir = naga::front::wgsl::parse_str(&source)
            .map_err(|e| Error::Gpu(format!("{what}: {}", e.emit_to_string(&source))))?;
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&ir)
        .map_err(|e| Error::Gpu(format!("{what}: {}", e.emit_to_string(&source))))?;
        let module = ctx.scoped(&what, || {
            ctx.device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.family()),
                    source: wgpu::ShaderSource::Wgsl(source.clone().into()),
                })
        })?;
        let m = Arc::new(Module { module, ir, info });
        lock(&self.modules).insert(shader, m.clone());
        Ok(m)
    }
}

/// The layout entries of compute entry point `entry`: every group-0 storage or uniform buffer it
/// uses, read-only exactly when declared without write access; binding 0 with a dynamic offset.
fn layout_entries(
    shader: Shader,
    entry: &str,
    ir: &naga::Module,
    info: &naga::valid::ModuleInfo,
) -> Result<Vec<wgpu::BindGroupLayoutEntry>> {
    let err = |msg: String| {
        Error::Gpu(format!(
            "shaders/{} entry point '{entry}': {msg}",
            shader.file()
        ))
    };
    let index = ir
        .entry_points
        .iter()
        .position(|e| e.name == entry && e.stage == naga::ShaderStage::Compute)
        .ok_or_else(|| err("no such compute entry point".into()))?;
    let uses = info.get_entry_point(index);
    let mut entries = Vec::new();
    for (handle, var) in ir.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        if uses[handle].is_empty() {
            continue;
        }
        if binding.group != 0 {
            return Err(err(format!(
                "binding group {} is not supported (the backend binds group 0 only)",
                binding.group
            )));
        }
        let ty = match var.space {
            naga::AddressSpace::Storage { access } => wgpu::BufferBindingType::Storage {
                read_only: !access.contains(naga::StorageAccess::STORE),
            },
            naga::AddressSpace::Uniform => wgpu::BufferBindingType::Uniform,
            other => {
                return Err(err(format!(
                    "binding {} is in address space {other:?}, the backend binds buffers only",
                    binding.binding
                )))
            }
        };
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: binding.binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: binding.binding == 0,
                min_binding_size: None,
            },
            count: None,
        });
    }
    entries.sort_by_key(|e| e.binding);
    Ok(entries)
}
