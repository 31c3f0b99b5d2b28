"""``backprop-rs bench``: times backprop_rs against NumPy (and PyTorch when it is installed).

The package imports one way, from the entry points down to leaves that import nothing of it::

    cli            the flags (argparse only; backprop-rs's parser uses them)
     -> runner     one run: header, measurement, table, JSON, plot
         -> report     header lines, table, JSON document, plot    -> harness, frameworks
         -> peers      peers' BLAS, kernels, threads, overrides     -> machine
         -> machine    CPU, SIMD level, load, CPU time of others
         -> workloads  every workload, defined once for each framework
              -> kernels, training, conv (-> training), processes   -> harness, frameworks, nets
         -> ddp        the distributed bench (--distributed, under mpirun)    -> machine
         -> harness    warm-up, settle/re-warm, interleaved rounds, result check, fresh processes
              -> frameworks  column names, Env, optional torch and GPU
    nets           the NumPy/backprop_rs/PyTorch networks (standard library only)
    _child.py      the memory workload's fresh process, started by its path: imports ``nets`` by
                   module path without importing backprop_rs

This ``__init__`` imports nothing, so importing any one module costs only that module.
"""
