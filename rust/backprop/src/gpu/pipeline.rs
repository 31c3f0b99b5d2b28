//! Shader sources and the compute-pipeline cache.
//!
//! Each kernel family is one WGSL file in `shaders/`, compiled into the crate with `include_str!`
//! (and validated by naga in `cargo test`, see `tests/shaders.rs`). A pipeline is specialised by
//! pipeline-overridable constants (op code, dtype...), so the cache key is (file, entry point,
//! constants); each is compiled once per process. Layouts are derived from the entry point
//! (`layout: None`): an entry point's bind group holds exactly the bindings it uses.

use super::context::{lock, Context};
use crate::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Shader {
    Elementwise,
    Reduce,
    Matmul,
    Softmax,
    Index,
    Conv,
}

impl Shader {
    pub fn file(self) -> &'static str {
        match self {
            Shader::Elementwise => "elementwise.wgsl",
            Shader::Reduce => "reduce.wgsl",
            Shader::Matmul => "matmul.wgsl",
            Shader::Softmax => "softmax.wgsl",
            Shader::Index => "index.wgsl",
            Shader::Conv => "conv.wgsl",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Shader::Elementwise => include_str!("../../../../shaders/elementwise.wgsl"),
            Shader::Reduce => include_str!("../../../../shaders/reduce.wgsl"),
            Shader::Matmul => include_str!("../../../../shaders/matmul.wgsl"),
            Shader::Softmax => include_str!("../../../../shaders/softmax.wgsl"),
            Shader::Index => include_str!("../../../../shaders/index.wgsl"),
            Shader::Conv => include_str!("../../../../shaders/conv.wgsl"),
        }
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
        Kernel { shader, entry, constants: constants.to_vec() }
    }
}

pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<Kernel, Arc<Pipeline>>>,
}

impl PipelineCache {
    pub fn get(&self, ctx: &Context, k: &Kernel) -> Result<Arc<Pipeline>> {
        if let Some(p) = lock(&self.pipelines).get(k) {
            return Ok(p.clone());
        }
        let module = self.module(ctx, k.shader)?;
        let constants: Vec<(&str, f64)> = k.constants.iter().map(|&(n, v)| (n, v as f64)).collect();
        let what = format!("compiling shaders/{} entry point '{}' with {:?}", k.shader.file(), k.entry, k.constants);
        let pipeline = ctx.scoped(&what, || {
            ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(k.entry),
                layout: None,
                module: &module,
                entry_point: Some(k.entry),
                compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, zero_initialize_workgroup_memory: false },
                cache: None,
            })
        })?;
        let layout = ctx.scoped(&what, || pipeline.get_bind_group_layout(0))?;
        let p = Arc::new(Pipeline { pipeline, layout });
        lock(&self.pipelines).insert(k.clone(), p.clone());
        Ok(p)
    }

    fn module(&self, ctx: &Context, shader: Shader) -> Result<wgpu::ShaderModule> {
        if let Some(m) = lock(&self.modules).get(&shader) {
            return Ok(m.clone());
        }
        let m = ctx.scoped(&format!("compiling shaders/{}", shader.file()), || {
            ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.file()),
                source: wgpu::ShaderSource::Wgsl(shader.source().into()),
            })
        })?;
        lock(&self.modules).insert(shader, m.clone());
        Ok(m)
    }
}
