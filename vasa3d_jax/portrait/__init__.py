"""One portrait photograph -> a talking 3D Gaussian head (issue 15; DESIGN.md "portrait -> avatar").

    from vasa3d_jax.portrait import avatar_from_portrait
    avatar = avatar_from_portrait("me.jpg", preset="quick", workdir="work_dirs/me")   # resumable

Modules: ``api`` (the stages, presets, work directory), ``sampling`` (training latents and cameras),
``checks`` (what a portrait must show; warnings and errors), ``previews`` (contact sheet,
turntable), ``metrics`` (image metrics inside the head-and-hair matte).
"""

from __future__ import annotations


def avatar_from_portrait(*args, **kwargs):
    """See ``vasa3d_jax.portrait.api.avatar_from_portrait`` (imported on first use: it pulls in the
    face analysis, the synthesiser and the fit engine)."""
    from vasa3d_jax.portrait.api import avatar_from_portrait as run

    return run(*args, **kwargs)


__all__ = ["avatar_from_portrait"]
