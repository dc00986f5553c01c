"""Per-identity fitting of the Gaussian head (VASA-3D, paper-notes.md §1.4-1.5), data-parallel.

One step, for a batch of frames (I_gt, x, camera) split over the devices of a one-axis mesh:

    (1)  (G′, G″) = avatar.apply(params, x);  I′, I″ = render(G′, cam), render(G″, cam)
    (2)  L_img  = Σ_{I ∈ {I′, I″}} [0.9 L1 + 0.1 D-SSIM + λ_lpips LPIPS + λ_adv L_G + λ_cas L_cas](I, I_gt)
    (3)  L_view = λ_consist LPIPS(I_n(G″), sg[I_n(G′)]),  one novel view per frame, |azimuth| ~ U[35°, 55°]
    (4)  L_reg  = λ_xyz L_xyz + λ_scale L_scale + λ_res L_res                        (losses.py (6)-(8))
    (5)  L_prior = λ_sym L_sym (every ``symmetry_every`` steps) [+ λ_sds L_SDS every ``sds.every``]
    (6)  g = pmean_devices ∇(L_img + L_view + L_reg + L_prior);  Adam per parameter group (optax.partition);
         RGB colours are then projected onto [0, 1] (ours: Adam's normalised steps push the colour of
         a rarely seen Gaussian far outside the image range, and it shows as a saturated speck
         from another view; SH coefficients are left to gsplat's clamp)
    (7)  discriminators: h = pmean_devices ∇ L_D(I_gt, sg[I′, I″]);  their own Adam
    (8)  a step whose gradients are not finite is not applied (optax.apply_if_finite) and is counted
    (9)  every ``densify.every`` steps in [start, until]: densify and prune (avatar/densify.py) from the
         screen-space gradients of I″ accumulated since the last one
    (10) every render of the step uses one intersection capacity C (``render/capacity.py``'s policy,
         measured on the training and novel views); the step reports ``isect_overflow`` summed over
         its renders and devices (logged in the metrics), a step with any overflow is not applied,
         and the loop grows C to fit what it needed and runs the step again: no update ever comes
         from a truncated render

Each device averages the loss over its shard and the gradients are averaged with
``jax.lax.pmean(..., "data")``, so the update equals the one-device update; the step body names
its axis, so it also runs under ``jax.pmap(..., axis_name="data")``. Randomness is per example and
per step (parallel.example_keys), never per device. Across processes (``parallel.initialize_distributed``
first) the mesh spans every process's devices, each process loads only the batch rows its devices
hold (``parallel.local_rows``) and process 0 alone writes the metrics and previews; every process
computes the same updates. Checkpoints (ckpt.py, Orbax) are written every
``save_every`` steps, at the end and on SIGINT/SIGTERM; calling ``fit`` again with the same work
directory resumes from the latest one. ``fit(..., init=avatar)`` starts from a given ``Avatar``
(its head model, e.g. an identity-fitted template, its configuration and its parameters: colours,
positions, extra Gaussians) instead of a fresh initialisation.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from vasa3d_jax import ckpt, parallel, video
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.avatar.render import render_frames
from vasa3d_jax.camera import mirror_camera, orbit_camera, scene_extent
from vasa3d_jax.avatar import DensifyConfig, GaussianAvatar, gaussians as gs, region_colors
from vasa3d_jax.avatar import densify as dns
from vasa3d_jax.fit import discriminator as disc
from vasa3d_jax.fit import losses as L
from vasa3d_jax.fit import lpips as lpips_lib
from vasa3d_jax.fit import sds as sds_lib
from vasa3d_jax.fit import ssim as ssim_lib
from vasa3d_jax.fit.config import FitConfig
from vasa3d_jax.fit.data import FitDataset, batch_indices
from vasa3d_jax.head import HeadModel, template_head
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.render import Camera, Gaussians, render, required_capacity
from vasa3d_jax.render.capacity import capacity_for

# optax.apply_if_finite applies updates anyway after this many consecutive non-finite steps; we
# never want that, so the limit is the largest int32.
_NEVER = 2 ** 31 - 1
# Preview: the novel view shown beside the training view (degrees of azimuth).
_PREVIEW_AZIMUTH_DEG = 40.0


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FitState:
    """Everything a step changes (replicated on every device).

    step: () int32; params: the avatar's trainable parameters (``split_trainable``); binding:
    avatar.Binding; opt_state / disc_opt_state: optax states (apply_if_finite around Adam);
    disc_params: MultiScaleDiscriminator variables; stats: avatar.DensifyStats since the last
    densification.
    """

    step: jax.Array
    params: dict
    binding: gs.Binding
    opt_state: optax.OptState
    disc_params: dict
    disc_opt_state: optax.OptState
    stats: dns.DensifyStats

    @property
    def capacity(self) -> int:
        return self.binding.capacity

    @property
    def skipped(self) -> jax.Array:
        """Steps not applied because their gradients were not finite (8)."""
        return self.opt_state.total_notfinite


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What ``fit`` returns: the avatar, its full parameters (with the binding) and a summary."""

    avatar: GaussianAvatar
    params: dict
    steps: int
    skipped: int
    wall_s: float
    workdir: pathlib.Path


# ---- optimiser ----------------------------------------------------------------------------------
def param_labels(params: dict) -> dict:
    """The optimiser group of every trainable leaf (keys of ``LearningRates``)."""
    g = params["gaussians"]
    labels = {k: ("base_mlp" if k in ("m_exp", "m_pose") else "residual_mlp")
              for k in params if k not in ("gaussians", "shape")}
    labels = {k: jax.tree.map(lambda _, v=v: v, params[k]) for k, v in labels.items()}
    labels["shape"] = "shape"
    labels["gaussians"] = gs.BoundGaussians(
        means_local="position", quats_local="rotation", log_scales="scale",
        opacity_logits="opacity", colors=jax.tree.map(lambda _: "color", g.colors))
    return labels


def project_colors(params: dict) -> dict:
    """Step (6)'s projection: RGB colours (C, 3) clipped to [0, 1]; SH colours (C, K, 3) unchanged."""
    g = params["gaussians"]
    if g.colors.ndim != 2:
        return params
    return {**params, "gaussians": dataclasses.replace(g, colors=jnp.clip(g.colors, 0.0, 1.0))}


def make_optimizer(config: FitConfig) -> optax.GradientTransformation:
    """Adam per parameter group (GaussianAvatars' rates, exponential position decay) inside
    ``optax.apply_if_finite``."""
    lr = config.lr
    steps = max(config.steps, 1)
    position = optax.exponential_decay(lr.position, steps, lr.position_final / lr.position)
    eps = lr.gaussian_eps
    groups = {
        "position": optax.adam(position, eps=eps), "rotation": optax.adam(lr.rotation, eps=eps),
        "scale": optax.adam(lr.scale, eps=eps), "opacity": optax.adam(lr.opacity, eps=eps),
        "color": optax.adam(lr.color, eps=eps), "shape": optax.adam(lr.shape),
        "base_mlp": optax.adam(lr.base_mlp), "residual_mlp": optax.adam(lr.residual_mlp),
    }
    return optax.apply_if_finite(optax.partition(groups, param_labels), _NEVER)


def make_disc_optimizer(config: FitConfig) -> optax.GradientTransformation:
    return optax.apply_if_finite(
        optax.adam(config.lr.discriminator, b1=config.lr.discriminator_beta1), _NEVER)


# ---- the step -----------------------------------------------------------------------------------
def _stack(a: Gaussians, b: Gaussians) -> Gaussians:
    return jax.tree.map(lambda u, v: jnp.stack([u, v]), a, b)


def _uses(config: FitConfig) -> dict[str, bool]:
    """Which optional terms are on (static): a zero weight removes the term from the step."""
    lc = config.losses
    return {"lpips": lc.lpips > 0, "consistency": lc.consistency > 0, "adversarial": lc.adversarial > 0,
            "sharpening": lc.sharpening > 0 and lc.sharpen_steps > 0,
            "symmetry": lc.symmetry > 0 and config.symmetry_every > 0}


def make_step_body(avatar: GaussianAvatar, config: FitConfig, width: int, height: int, pivot,
                   capacity: int, sds_prior: sds_lib.SdsPrior | None = None):
    """The per-device step ``(state, batch, lpips_vars) -> (state, metrics)``; it reduces over the
    named axis ``"data"``, so it runs under ``shard_map`` or ``pmap``. ``batch`` holds this device's
    frames, latents, viewmats, K and raw per-example ``keys`` (b, 2)."""
    lc = config.losses
    uses = _uses(config)
    tx, dtx = make_optimizer(config), make_disc_optimizer(config)
    discriminator = disc.MultiScaleDiscriminator(features=config.disc_features)
    background = jnp.asarray(config.background, jnp.float32)
    pivot = jnp.asarray(pivot, jnp.float32)
    az_lo, az_hi = lc.consistency_azimuth_deg

    zero = (jnp.float32(0.0), jnp.int32(0), jnp.int32(0))  # (loss, overflow, need) of a skipped term

    def draw(gaussians, camera, offsets=None):
        out = render(gaussians, camera, background, capacity=capacity, means2d_offset=offsets)
        return out, jnp.sum(out.isect_overflow), jnp.max(out.num_isects)  # (10)

    def loss_fn(params, offsets, binding, disc_params, batch, lpips_vars, step):
        full = {**params, "binding": binding}
        keys = jax.random.wrap_key_data(batch["keys"])
        step_key = jax.random.fold_in(jax.random.key(config.seed), step)
        (g_base, g_final), aux = avatar.apply(full, batch["latents"])
        cam = Camera(viewmat=batch["viewmats"], K=batch["K"], width=width, height=height)
        out, overflow, need = draw(_stack(g_base, g_final), cam, offsets)  # (1): leading (2, b)
        checks = [(overflow, need)]
        rgb, target = out.rgb, batch["frames"]
        two = rgb.reshape((-1,) + rgb.shape[2:])  # (2b, H, W, 3): I' then I''
        terms = {"l1": 2.0 * L.l1_loss(rgb, target[None]),  # (2): summed over {I', I''}
                 "dssim": 2.0 * jnp.mean(ssim_lib.d_ssim(rgb, jnp.broadcast_to(target, rgb.shape)))}
        if uses["lpips"]:
            terms["lpips"] = 2.0 * L.lpips_loss(lpips_vars, two, jnp.concatenate([target, target]))
        if uses["adversarial"]:
            terms["adversarial"] = 2.0 * disc.generator_hinge_loss(discriminator.apply(disc_params, two))
        if uses["sharpening"]:
            terms["sharpening"] = jax.lax.cond(
                lc.in_sharpening(step),
                lambda: 2.0 * L.sharpening_loss(lpips_vars, two, lc.cas_sharpness),
                lambda: jnp.float32(0.0))
        if uses["consistency"]:  # (3)
            k_az = jax.vmap(lambda k: jax.random.split(k)[1])(keys)
            u = jax.vmap(lambda k: jax.random.uniform(k, (2,)))(k_az)
            az = jnp.deg2rad(az_lo + (az_hi - az_lo) * u[:, 0]) * jnp.where(u[:, 1] < 0.5, -1.0, 1.0)
            novel = jax.vmap(lambda c, a: orbit_camera(c, a, 0.0, pivot))(cam, az)
            nv, overflow, need = draw(_stack(g_base, g_final), novel)
            checks.append((overflow, need))
            terms["consistency"] = L.render_consistency_loss(lpips_vars, nv.rgb[1], nv.rgb[0])
        g = params["gaussians"]  # (4)
        terms["position"] = L.position_regulariser(g.means_local, lc.position_threshold, binding.active)
        terms["scale"] = L.scale_regulariser(g.log_scales, lc.scale_threshold, binding.active)
        res = aux["residual"]
        terms["residual"] = L.residual_penalty(res.reshape(-1, res.shape[-1]),
                                               jnp.tile(binding.active, res.shape[0]))
        if uses["symmetry"]:  # (5)
            def symmetry():
                (n_base, n_final), _ = avatar.apply(full, jnp.zeros((avatar.space.size,), jnp.float32))
                az, el = sds_lib.sample_sds_view(jax.random.fold_in(step_key, 1), config.sds)
                view = orbit_camera(Camera(batch["viewmats"][0], batch["K"][0], width, height),
                                            az, el, pivot)
                pair = Camera(viewmat=jnp.stack([view.viewmat, mirror_camera(view).viewmat]),
                              K=jnp.stack([view.K, mirror_camera(view).K]), width=width,
                              height=height)
                both = jax.tree.map(lambda u, v: jnp.stack([u, v])[:, None], n_base, n_final)
                img, overflow, need = draw(both, pair)  # (2 sets, 2 views, H, W, 3)
                return sds_lib.symmetry_loss(img.rgb[:, 0], img.rgb[:, 1]) * 2.0, overflow, need
            terms["symmetry"], *check = jax.lax.cond(step % config.symmetry_every == 0, symmetry,
                                                     lambda: zero)
            checks.append(tuple(check))
        if sds_prior is not None:
            def score():
                az, el = sds_lib.sample_sds_view(jax.random.fold_in(step_key, 2), config.sds)
                view = orbit_camera(Camera(batch["viewmats"][0], batch["K"][0], width, height),
                                            az, el, pivot)
                img, overflow, need = draw(jax.tree.map(lambda a: a[0], g_final), view)
                loss, _ = sds_lib.sds_loss(sds_prior.eps_fn, img.rgb[None], jax.random.fold_in(step_key, 3),
                                           sds_prior.cond, sds_prior.uncond, sds_prior.alphas_cumprod,
                                           config.sds)
                return loss, overflow, need
            terms["sds"], *check = jax.lax.cond(step % config.sds.every == 0, score, lambda: zero)
            checks.append(tuple(check))
        total = L.weighted_total(terms, lc.weights(step))
        psnr = jnp.mean(L.psnr(rgb[1], target))
        overflow = sum(c[0] for c in checks)
        need = functools.reduce(jnp.maximum, [c[1] for c in checks])
        return total, (terms, jax.lax.stop_gradient(two), out.radii[1], psnr, overflow, need)

    def disc_loss_fn(disc_params, real, fake):  # (7)
        return disc.discriminator_hinge_loss(discriminator.apply(disc_params, real),
                                             discriminator.apply(disc_params, fake))

    def step_body(state: FitState, batch: dict, lpips_vars):
        offsets = jnp.zeros((2, batch["latents"].shape[0], state.capacity, 2), jnp.float32)
        grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
        (total, (terms, fakes, radii, psnr, overflow, need)), (grads, g_offsets) = grad_fn(
            state.params, offsets, state.binding, state.disc_params, batch, lpips_vars, state.step)
        overflow = jax.lax.psum(overflow, parallel.DATA_AXIS)  # (10)
        need = jax.lax.pmax(need, parallel.DATA_AXIS)
        grads = jax.lax.pmean(grads, parallel.DATA_AXIS)  # (6)
        total, terms, psnr = jax.lax.pmean((total, terms, psnr), parallel.DATA_AXIS)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = project_colors(optax.apply_updates(state.params, updates))  # (6)
        finite = jnp.isfinite(total) & (opt_state.notfinite_count == 0)  # (8)

        # (9) screen-space gradient statistics of I'' (per view, so the device split is immaterial).
        delta = dns.accumulate(dns.init_stats(state.capacity), g_offsets[1], radii, width, height)
        delta = dns.DensifyStats(grad_accum=jax.lax.psum(delta.grad_accum, parallel.DATA_AXIS),
                                 count=jax.lax.psum(delta.count, parallel.DATA_AXIS),
                                 max_radii=jax.lax.pmax(delta.max_radii, parallel.DATA_AXIS))
        merged = dns.DensifyStats(grad_accum=state.stats.grad_accum + delta.grad_accum,
                                  count=state.stats.count + delta.count,
                                  max_radii=jnp.maximum(state.stats.max_radii, delta.max_radii))
        stats = jax.tree.map(lambda new, old: jnp.where(finite, new, old), merged, state.stats)

        disc_params, disc_opt_state, d_loss = state.disc_params, state.disc_opt_state, jnp.float32(0.0)
        if uses["adversarial"]:
            real = batch["frames"]
            d_loss, d_grads = jax.value_and_grad(disc_loss_fn)(state.disc_params, real, fakes)
            d_grads = jax.lax.pmean(d_grads, parallel.DATA_AXIS)
            d_loss = jax.lax.pmean(d_loss, parallel.DATA_AXIS)
            d_updates, disc_opt_state = dtx.update(d_grads, state.disc_opt_state, state.disc_params)
            disc_params = optax.apply_updates(state.disc_params, d_updates)

        new = FitState(step=state.step + 1, params=params, binding=state.binding, opt_state=opt_state,
                       disc_params=disc_params, disc_opt_state=disc_opt_state, stats=stats)
        # (10) a step that rendered anything truncated is not applied; the loop redoes it at a larger C.
        new = jax.tree.map(lambda a, b: jnp.where(overflow == 0, a, b), new, state)
        metrics = {"loss": total, "psnr": psnr, "disc_loss": d_loss, "finite": finite,
                   "skipped": opt_state.total_notfinite, "isect_overflow": overflow, "isect_need": need,
                   **{f"loss_{k}": v for k, v in terms.items()}}
        return new, metrics

    return step_body


def make_train_step(step_body, mesh: jax.sharding.Mesh):
    """``step_body`` under ``shard_map`` on ``mesh`` (state replicated, batch split), jitted with
    the state's buffers donated."""
    # check_vma=False: the rasteriser's lax.scan starts from constant carries that shard_map's
    # varying-axis check rejects inside a manual axis; replication is guaranteed here by the pmeans.
    sharded = parallel.data_parallel(step_body, mesh, in_specs=(P(), P(parallel.DATA_AXIS), P()),
                                     out_specs=(P(), P()), check_vma=False)
    return jax.jit(sharded, donate_argnums=(0,))


# ---- state --------------------------------------------------------------------------------------
def init_state(avatar: GaussianAvatar, config: FitConfig, key: jax.Array, width: int, height: int,
               colors=None, params: dict | None = None) -> FitState:
    """A fresh state: avatar parameters (``params``, full with the binding, or avatar.init with
    ``colors``), optimiser states, discriminators, zero stats."""
    k_avatar, k_disc = jax.random.split(key)
    full = avatar.init(k_avatar, colors=colors) if params is None else params
    params, rest = _split(full)
    discriminator = disc.MultiScaleDiscriminator(features=config.disc_features)
    disc_params = discriminator.init(k_disc, jnp.zeros((1, height, width, 3), jnp.float32))
    return FitState(step=jnp.zeros((), jnp.int32), params=params, binding=rest,
                    opt_state=make_optimizer(config).init(params), disc_params=disc_params,
                    disc_opt_state=make_disc_optimizer(config).init(disc_params),
                    stats=dns.init_stats(rest.capacity))


def _split(full: dict) -> tuple[dict, gs.Binding]:
    return {k: v for k, v in full.items() if k != "binding"}, full["binding"]


def _grow_state(state: FitState, capacity: int) -> FitState:
    """The state with ``capacity`` slots (free slots appended; optimiser state padded with zeros)."""
    old = state.capacity
    if capacity == old:
        return state
    g, b = gs.grow(state.params["gaussians"], state.binding, capacity)
    return dataclasses.replace(
        state, params={**state.params, "gaussians": g}, binding=b,
        opt_state=gs.pad_rows(state.opt_state, old, capacity),
        stats=gs.pad_rows(state.stats, old, capacity))


def densify_state(avatar: GaussianAvatar, state: FitState, config: FitConfig, extent: float,
                  key: jax.Array) -> tuple[FitState, dns.DensifyReport]:
    """(9) on the host between steps; grows the capacity by whole buckets when needed and resets the
    optimiser moments of every rewritten slot."""
    full = {**state.params, "binding": state.binding}
    dc = DensifyConfig(extent=extent, grad_threshold=config.densify.grad_threshold,
                       percent_dense=config.densify.percent_dense,
                       min_opacity=config.densify.min_opacity)
    full, stats, report, (old, new) = avatar.densify(full, state.stats, key, dc)
    params, binding = _split(full)
    opt_state = gs.pad_rows(state.opt_state, old, new) if new > old else state.opt_state
    opt_state = gs.reset_rows(opt_state, new, report.changed)
    return dataclasses.replace(state, params=params, binding=binding, opt_state=opt_state,
                               stats=stats), report


# ---- evaluation ---------------------------------------------------------------------------------
def image_metrics(images: np.ndarray, targets: np.ndarray, lpips_vars: dict | None = None) -> dict:
    """Mean PSNR (dB), SSIM and LPIPS-VGG16 of (N, H, W, 3) images against targets."""
    images, targets = jnp.asarray(images), jnp.asarray(targets)
    lpips_vars = lpips_vars if lpips_vars is not None else lpips_lib.load_params()
    lp = jax.jit(lpips_lib.lpips)
    return {"psnr": float(jnp.mean(L.psnr(images, targets))),
            "ssim": float(jnp.mean(ssim_lib.ssim(images, targets))),
            "lpips": float(np.mean([float(jnp.mean(lp(lpips_vars, images[i:i + 8], targets[i:i + 8])))
                                    for i in range(0, len(images), 8)]))}


# ---- fit ----------------------------------------------------------------------------------------
def _capacity(apply, params, dataset: FitDataset, config: FitConfig) -> int:
    """(10): C for the step's renders, measured on a few training frames and the extreme novel views."""
    idx = np.linspace(0, dataset.num - 1, min(dataset.num, 4)).astype(int)
    (_, g_final), _ = apply(params, jnp.asarray(dataset.latents[idx]))
    cam = dataset.camera(idx)
    need = required_capacity(g_final, cam)
    for az in (-math.radians(config.losses.consistency_azimuth_deg[1]),
               math.radians(config.losses.consistency_azimuth_deg[1])):
        side = jax.vmap(lambda c: orbit_camera(c, az, 0.0, dataset.pivot))(cam)
        need = max(need, required_capacity(g_final, side))
    return capacity_for(need)


def _due(step: int, every: int, start: int = 0, until: int | None = None) -> bool:
    return every > 0 and step >= start and (until is None or step <= until) and step % every == 0


def fit(dataset: FitDataset, config: FitConfig, workdir: str | pathlib.Path, init: Avatar | None = None, *,
        head: HeadModel | None = None, space: MotionSpace | None = None,
        sds_prior: sds_lib.SdsPrior | None = None, devices: Sequence[jax.Device] | None = None,
        stop_after: int | None = None, isect_capacity: int | None = None, progress: bool = True) -> FitResult:
    """Fits (or resumes fitting) the avatar of one identity on ``dataset`` in ``workdir``.

    init: an ``Avatar`` to start from (its head model, motion space, ``AvatarConfig`` and parameters;
    ``config.avatar`` and ``config.init_colors`` are then not used). Otherwise a fresh avatar on
    ``head`` (default: the built-in template) in ``space`` (default: the built-in one; must match
    the latents). ``stop_after`` ends this run after that many total steps (as an interruption would);
    calling again resumes. Frames are drawn by ``dataset.weights`` when given. ``isect_capacity``: the intersection capacity to start from (default:
    measured, (10)); a too small one costs a re-run of the steps that overflow. Writes
    ``workdir/ckpt/``, ``workdir/metrics.jsonl`` and ``workdir/previews/`` (PNGs and ``previews.mp4``).
    ``devices`` default to all of them, those of every process in a multi-process run (the work
    directory must then be one shared folder).
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if init is not None:
        if head is not None or space is not None:
            raise ValueError("fit(init=avatar) takes the head and motion space from the avatar; "
                             "leave head= and space= out")
        avatar = init.model
    else:
        avatar = GaussianAvatar(head or template_head(), space or MotionSpace.builtin(), config.avatar)
    avatar.space.check(dataset.latents)
    apply = jax.jit(avatar.apply)
    w, h = dataset.width, dataset.height
    uses = _uses(config)
    lpips_vars = lpips_lib.load_params() if (uses["lpips"] or uses["consistency"] or uses["sharpening"]) else None

    # ---- Set up the mesh ----------------------------------------------------------------------
    mesh = parallel.data_mesh(devices)
    n_dev = mesh.shape[parallel.DATA_AXIS]
    if config.batch_size % n_dev:
        raise ValueError(f"batch_size={config.batch_size} must be a multiple of the {n_dev} devices")
    rows = parallel.local_rows(config.batch_size, mesh)  # this process's part of every batch
    primary = parallel.is_primary()

    # ---- Build the state, created replicated -------------------------------------------------------
    colors = region_colors(avatar.head) if init is None and config.init_colors == "regions" else None
    start_params = None if init is None else jax.device_get(init.params)
    key = jax.random.key(config.seed)

    # The starting parameters are an argument, not closed-over constants: XLA:CPU folds constants,
    # which took 2+ minutes of compilation for a portrait avatar's 16k Gaussians on 2 cores.
    def init_fn(k, p=start_params):
        return init_state(avatar, config, k, w, h, colors, p)

    replicated = parallel.replicated(mesh)
    with ckpt.Checkpointer(workdir / "ckpt", max_to_keep=2) as manager, ckpt.PreemptionGuard() as guard:
        # ---- Restore the latest checkpoint (automatic resume) ---------------------------------
        meta = manager.metadata()
        if meta is None:
            state = jax.jit(init_fn, out_shardings=replicated)(key, start_params)
            start = 0
        else:
            abstract = jax.eval_shape(lambda k: _grow_state(init_fn(k), int(meta["capacity"])), key)
            abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                                    abstract)
            state, start = manager.restore(abstract)
        capacity = isect_capacity or _capacity(apply, _host_params(state), dataset, config)
        extent = scene_extent(dataset.viewmats, dataset.pivot, config.densify.extent_factor)

        def step_fn(c):
            return make_train_step(make_step_body(avatar, config, w, h, dataset.pivot, c, sds_prior), mesh)

        train_step = step_fn(capacity)
        lpips_rep = None if lpips_vars is None else parallel.replicate(lpips_vars, mesh)

        # ---- Loop ---------------------------------------------------------------------------
        end = config.steps if stop_after is None else min(stop_after, config.steps)
        metrics_file = (workdir / "metrics.jsonl").open("a") if primary else None
        previews: list[np.ndarray] = []
        t_start = time.perf_counter()
        bar = tqdm(range(start, end), initial=start, total=end, desc="fit avatar", disable=not (progress and primary))
        done = start
        for step in bar:
            idx = batch_indices(config.seed, step, dataset.num, config.batch_size, dataset.weights)
            keys = parallel.example_keys(config.seed, step, config.batch_size)
            batch = parallel.shard_batch({**dataset.batch(idx[rows]), "keys": keys[rows]}, mesh, config.batch_size)
            state, metrics = train_step(state, batch, lpips_rep)
            overflow = int(metrics["isect_overflow"])
            if overflow:  # (10): the step was not applied; redo it at a capacity that fits
                capacity = capacity_for(int(metrics["isect_need"]))
                _log(metrics_file, {"step": step + 1, "isect_overflow": overflow, "isect_capacity": capacity})
                train_step = step_fn(capacity)
                state, metrics = train_step(state, batch, lpips_rep)
                if int(metrics["isect_overflow"]):
                    raise RuntimeError(f"step {step + 1} still overflows at intersection capacity {capacity} "
                                       f"({int(metrics['isect_need'])} pairs needed)")
            done = step + 1

            ds = config.densify
            if (_due(done, ds.every, ds.start, ds.until)
                    and int(jnp.sum(state.binding.active)) < ds.max_gaussians):
                state, report = densify_state(avatar, jax.device_get(state), config, extent,
                                              jax.random.fold_in(key, done))
                state = parallel.replicate(state, mesh)
                new_capacity = _capacity(apply, _host_params(state), dataset, config)
                if new_capacity > capacity or int(report.num_split) + int(report.num_cloned) > 0:
                    capacity = max(capacity, new_capacity)
                    train_step = step_fn(capacity)
                _log(metrics_file, {"step": done, "densify": {k: int(v) for k, v in dataclasses.asdict(
                    report).items() if k != "changed"}})
            if _due(done, ds.opacity_reset_every, 1, ds.until):
                g = dns.reset_opacity(state.params["gaussians"])
                state = dataclasses.replace(state, params={**state.params, "gaussians": g})

            if done % config.log_every == 0 or done == end:
                m = {k: float(v) for k, v in jax.device_get(metrics).items()}
                m.update(step=done, capacity=state.capacity, isect_capacity=capacity,
                         wall_s=time.perf_counter() - t_start)
                _log(metrics_file, m)
                bar.set_postfix(loss=f"{m['loss']:.4f}", psnr=f"{m['psnr']:.2f}")
            if primary and (done % config.preview_every == 0 or done == end):
                previews.append(_preview(avatar, state, dataset, config, workdir / "previews", done))
            if parallel.any_process(guard.requested):  # every process stops at the same step
                break
            if done % config.save_every == 0 and done != end:
                manager.save(done, state, {"capacity": state.capacity})
        if metrics_file is not None:
            metrics_file.close()
        if manager.latest_step() != done and done > start:
            manager.save(done, state, {"capacity": state.capacity}, force=True)
        manager.wait()
    if len(previews) > 1:
        video.write_mp4(workdir / "previews" / "previews.mp4", _even(previews), fps=2)
    state = jax.device_get(state)
    return FitResult(avatar=avatar, params={**state.params, "binding": state.binding}, steps=done,
                     skipped=int(state.skipped), wall_s=time.perf_counter() - t_start, workdir=workdir)


def _host_params(state: FitState) -> dict:
    """The full avatar parameters on the host: programs on them run on this process's own device."""
    return jax.device_get({**state.params, "binding": state.binding})


def _log(file, record: dict) -> None:
    if file is None:  # not process 0
        return
    file.write(json.dumps(record) + "\n")
    file.flush()


def _preview(avatar: GaussianAvatar, state, dataset: FitDataset, config: FitConfig, folder: pathlib.Path,
             step: int):
    """Target | G′ | G″ | G″ at a novel view for frame 0, saved as ``step_<7-digit step>.png``."""
    full = jax.device_get({**state.params, "binding": state.binding})
    cam = dataset.camera(slice(0, 1))
    side = jax.vmap(lambda c: orbit_camera(c, math.radians(_PREVIEW_AZIMUTH_DEG), 0.0, dataset.pivot))(cam)
    views = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), cam, side)
    x = np.repeat(dataset.latents[:1], 2, axis=0)
    both = render_frames(Avatar(avatar, full), x, views, config.background, stage="both")  # (2, 2, H, W, 3)
    imgs = np.stack([both[0, 0], both[1, 0], both[1, 1]])  # G' and G'' at the view, G'' at the side
    # A corrupt target frame (what the non-finite guard is for) must not stop training: shown black.
    target = np.nan_to_num(dataset.frames[:1], nan=0.0, posinf=1.0, neginf=0.0)
    sheet = video.contact_sheet(np.concatenate([target, imgs]), columns=4)
    video.save_png(folder / f"step_{step:07d}.png", sheet)
    return sheet


def _even(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Crops frames to even sizes (H.264)."""
    return [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames]
