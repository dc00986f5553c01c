"""One process of test_distributed's fit: ``python distributed_worker.py OUT WORKDIR [fit flags]``.

Joins the run from the flags (``vasa3d fit``'s: --coordinator, --num_processes, --process_id) or the
environment, fits the small sphere head of test_trainer on every process's devices, and process 0
writes the fitted parameters to OUT (.npz, one array per leaf path)."""

import argparse
import os
import sys

import jax

jax.config.update("jax_num_cpu_devices", int(os.environ.get("WORKER_CPU_DEVICES", "2")))
if os.environ.get("VASA3D_JAX_CACHE"):
    jax.config.update("jax_compilation_cache_dir", os.environ["VASA3D_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

import numpy as np  # noqa: E402

from vasa3d_jax import parallel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("workdir")
    parser.add_argument("--coordinator")
    parser.add_argument("--num_processes", type=int)
    parser.add_argument("--process_id", type=int)
    args = parser.parse_args()
    # Before anything that starts JAX's backend (render/api.py makes an array as it is imported).
    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_trainer import make_setup

    from vasa3d_jax.fit import trainer

    head, space, data, cfg = make_setup()
    result = trainer.fit(data, cfg, args.workdir, head=head, space=space, progress=False)
    if parallel.is_primary():
        leaves = jax.tree_util.tree_leaves_with_path(result.params)
        np.savez(args.out, **{jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves},
                 __devices__=np.int32(jax.device_count()), __processes__=np.int32(jax.process_count()))


if __name__ == "__main__":
    main()
