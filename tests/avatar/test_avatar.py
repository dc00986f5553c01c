"""GaussianAvatar.apply: rigid head motion moves every Gaussian rigidly, an untrained (zero) residual
gives G'' = G', D_e touches only face-region Gaussians, and apply vmaps over frames."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vasa3d_jax.avatar import AvatarConfig, GaussianAvatar, binding as bnd, split_trainable
from vasa3d_jax.motion_space import ACTION_UNITS

CONFIG = AvatarConfig(bucket=512, residual_width=32, residual_depth=2, base_hidden=32)


@pytest.fixture(scope="module")
def avatar(template, space):
    av = GaussianAvatar(template, space, CONFIG)
    params = av.init(jax.random.key(0))
    return av, params, jax.jit(av.apply)


def _frame(space, rotvec=(0, 0, 0), t=(0, 0, 0), **dyn):
    x = np.zeros(space.size, np.float32)
    for name, val in dyn.items():
        x[space.index(name)] = val
    x[space.index("rot_x"):space.index("rot_x") + 3] = rotvec
    x[space.index("tx"):space.index("tx") + 3] = t
    return x


def test_rigid_head_motion_moves_gaussians_rigidly(avatar):
    av, params, apply = avatar
    space = av.space
    rotvec, t = np.array([0.3, -0.5, 0.2]), np.array([0.01, -0.02, 0.03])
    xs = jnp.asarray(np.stack([_frame(space, AU12=0.7, gaze_yaw=0.2),
                               _frame(space, rotvec, t, AU12=0.7, gaze_yaw=0.2)]))
    (gb, gf), aux = apply(params, xs)
    live = np.asarray(params["binding"].active)
    r = Rotation.from_rotvec(rotvec)
    for g in (gb, gf):
        m0, m1 = np.asarray(g.means[0])[live], np.asarray(g.means[1])[live]
        # m1 = R m0 + c for one constant c (rotation about the model's root joint, then t).
        c = m1 - m0 @ r.as_matrix().T
        np.testing.assert_allclose(c, np.broadcast_to(c.mean(0), c.shape), atol=2e-6)
        q0 = Rotation.from_quat(np.roll(np.asarray(g.quats[0])[live], -1, -1))
        q1 = Rotation.from_quat(np.roll(np.asarray(g.quats[1])[live], -1, -1))
        # float32 frames of the smallest (~2 mm) triangles carry ~1e-5 of rounding
        np.testing.assert_allclose((r * q0).as_matrix(), q1.as_matrix(), atol=1e-4)
        np.testing.assert_allclose(g.scales[1], g.scales[0], rtol=1e-4)
        np.testing.assert_array_equal(g.opacities[1], g.opacities[0])  # bitwise: rigid motion never touches opacity
    # The prior: z_pose is the head's global rotation and translation.
    np.testing.assert_allclose(aux["global_rot"][1], rotvec, atol=1e-6)
    np.testing.assert_allclose(aux["translation"][1], t, atol=1e-6)


def test_zero_residual_gives_base_and_residual_regions(avatar, template):
    av, params, apply = avatar
    x = jnp.asarray(_frame(av.space, (0.1, 0.2, 0.0), AU26=0.8, AU01=0.5, gaze_pitch=0.1))
    (gb, gf), aux = apply(params, x)
    for a, b in zip(jax.tree.leaves(gb), jax.tree.leaves(gf)):
        np.testing.assert_array_equal(a, b)  # bitwise: a zero residual adds exactly zero
    assert float(jnp.abs(aux["residual"]).max()) == 0.0
    # Inactive slots render as nothing.
    live = np.asarray(params["binding"].active)
    assert np.all(np.asarray(gb.opacities)[~live] == 0) and np.all(np.asarray(gb.opacities)[live] > 0)
    # The prior: AUs drive the template's AU expression (its rig turns AU26 into jaw rotation),
    # gaze turns the eyes.
    want = np.zeros(template.num_expression)
    want[[ACTION_UNITS.index("AU26"), ACTION_UNITS.index("AU01")]] = [0.8, 0.5]
    np.testing.assert_allclose(aux["expression"], want, atol=1e-7)
    np.testing.assert_allclose(aux["jaw_pose"], 0, atol=1e-7)
    np.testing.assert_allclose(aux["eye_pose"], [-0.1, 0, 0, -0.1, 0, 0], atol=1e-7)

    # A non-zero D_e output layer moves only the Gaussians on face-region triangles.
    out = params["d_exp"]["params"]["output"]
    bumped = jax.tree.map(lambda a: a, params)
    bumped["d_exp"] = {"params": {**params["d_exp"]["params"],
                                  "output": {"kernel": out["kernel"],
                                             "bias": out["bias"].at[:].set(0.05)}}}
    (gb2, gf2), aux2 = apply(bumped, x)
    face = np.asarray(av.face_mask)[np.asarray(params["binding"].parent)] & live
    moved = np.linalg.norm(np.asarray(gf2.means - gb2.means), axis=-1) > 1e-6
    np.testing.assert_array_equal(moved, face)
    # bitwise: determinism (same inputs, same program) is the contract
    np.testing.assert_array_equal(gb2.means, gb.means)  # G' does not see the residual
    # d_mu = 0.05 triangle units along each local axis: world offset k R (0.05, 0.05, 0.05).
    fr = bnd.gather_frames(bnd.triangle_frames(aux2["vertices"], av.faces), params["binding"].parent)
    want = 0.05 * np.asarray(fr.scales)[:, None] * np.asarray(fr.rotations).sum(-1)
    np.testing.assert_allclose(np.asarray(gf2.means - gb2.means)[face], want[face], atol=1e-6)
    np.testing.assert_allclose(np.asarray(gf2.scales / gb2.scales)[face], np.exp(0.05), rtol=1e-5)
    assert set(np.unique(np.asarray(template.region_names)[np.asarray(
        template.face_region)[np.asarray(params["binding"].parent)[face]]])) == {
        "face", "mouth", "teeth", "eyes"}


def test_apply_vmaps_over_frames(avatar):
    av, params, apply = avatar
    xs = jax.random.uniform(jax.random.key(3), (3, av.space.size), minval=-0.2, maxval=0.5)
    (gb, gf), aux = apply(params, xs)
    assert gb.means.shape == (3, params["gaussians"].capacity, 3)
    assert aux["vertices"].shape == (3, *av.head.v_template.shape)
    (gb1, gf1), _ = apply(params, xs[1])
    np.testing.assert_allclose(gf.means[1], gf1.means, atol=1e-6)
    np.testing.assert_allclose(gb.quats[1], gb1.quats, atol=1e-4)  # float32 frames of mm triangles
    (gb2, _), _ = apply(params, xs.reshape(3, 1, -1))  # any number of leading axes
    assert gb2.means.shape == (3, 1, params["gaussians"].capacity, 3)
    with pytest.raises(ValueError, match="channels"):
        av.apply(params, jnp.zeros((av.space.size + 1,)))


def test_gradients_reach_every_trainable_part(avatar):
    av, params, _ = avatar
    trainable, state = split_trainable(params)
    x = jnp.asarray(_frame(av.space, (0.1, 0.0, 0.0), AU12=0.5))
    target = jax.random.normal(jax.random.key(1), (params["gaussians"].capacity, 3))

    def loss(trainable):
        (gb, gf), _ = av.apply({**trainable, **state}, x)
        return (jnp.sum((gf.means - 0.01 * target) ** 2) + jnp.sum(gf.colors * target)
                + jnp.sum(gf.quats[:, 1:] * target) + jnp.sum(gb.opacities) + jnp.sum(gf.scales))

    grads = jax.jit(jax.grad(loss))(trainable)
    for name in ("m_exp", "m_pose", "d_exp", "d_pose"):
        flat = flax.traverse_util.flatten_dict(grads[name]["params"])
        out = [v for path, v in flat.items() if path[-2:] == ("output", "kernel")]
        assert len(out) == 1 and float(jnp.abs(out[0]).max()) > 0, name  # zero-init layers learn
    g = grads["gaussians"]
    for leaf in (g.means_local, g.quats_local, g.log_scales, g.opacity_logits, g.colors):
        assert np.all(np.isfinite(np.asarray(leaf))) and float(jnp.abs(leaf).max()) > 0
    assert float(jnp.abs(grads["shape"]).max()) > 0
