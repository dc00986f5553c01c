"""Does the avatar's mouth talk? Lip closure and opening read from rendered frames, per avatar (issue 21 §3-4).

Command (the demo's astronaut avatar, built as ``make demo`` builds it when ``out/demo/work`` lacks it,
plus any ``--avatar X.npz``; ``--template`` adds the built-in template head):

    python experiments/eval_mouth.py --out out/eval_mouth [--avatar X.npz ...] [--template]
    python experiments/eval_mouth.py --latents_only       # item 3: the motion model alone, no rendering

Motion comes from the shipped generator through the public ``Talker`` (speech -> latents, key
``seed``), for (a) held-out synthetic speech (espeak-ng clips of ``motion.synthetic.corpus_specs``'s
held-out split, whose sentences never occur in training, with espeak-ng's own phoneme timings), (b)
real recordings with transcripts (``/work/shared/data/realspeech``; phones from pocketsphinx's forced
alignment, ``audio/align.py``), (c) 3 s of silence, and (d) the same silence with the smile control on
(emotion ``happy=1``). Each avatar is rendered from the front at 256 px; the project's face analysis
(``analyze_faces``, LiteRT backend) reads the landmarks of every frame, and

    (1) gap_t = |p_13 - p_14| / |p_33 - p_263|        (head/landmarks.py eq. 1, from the pixels)

Frame t (25 fps) is labelled with the phone under its centre (``audio.align.frame_phones``), classed
bilabial (/p b m/) or open vowel (AA AE AO AW AY; ``audio.align.PHONE_CLASSES``). Reported per
avatar and speech set:

* ``bilabial_closed``: fraction of bilabial frames with gap <= 0.03; ``open_vowel_gap``: median gap
  of open-vowel frames; ``auc``: AUC(gap on open vowels > gap on bilabials) (Mann-Whitney, ties count
  1/2) at lag 0, and ``auc_best`` / ``auc_best_lag`` over lags -2..2 frames (gap_{t+lag} against the
  label of frame t; for information); ``r_latent_gap``: Pearson r of the latent's mouth opening
  (``MotionSpace.mouth_open``: 0.75 AU26 + 0.25 AU25) and the gap over all frames with a face;
* silence: ``closed`` (fraction of frames with gap <= 0.02), ``smile_latent`` / ``smile_read``: the
  latent's AU12 and the AU12 that ``encode_motion`` reads back from the render (means), smile off and on.

``latents`` (no rendering) measures item 3 on the generator's own output: per speech set, the latent
mouth opening on bilabial frames (median; ``bilabial_at_closed``: the fraction at or below the closed
value ``CLOSED_MOUTH_LATENT``, 0.75 x 0.06; ``bilabial_press``: the median lip press AU24, 0.55 in the
corpus's bilabial viseme), on open vowels
and in silence, and the latent AUC; ``target`` repeats the bilabial and vowel figures for the synthetic
corpus's own targets (what the generator was trained to produce).

Issue 21's goals (per avatar): silence closed >= 0.9 and |smile_read - smile_latent| <= 0.1; speech
(synthetic and real) bilabial_closed >= 0.6, open_vowel_gap >= 0.08, auc >= 0.85, r_latent_gap >= 0.9.

Measured on the demo's astronaut (quick preset, main at a51cd5f), synthetic / real speech:

  ==================  ==============  ===============  ============  ============  ======================
  generator           bilabial_closed open_vowel_gap   auc           r_latent_gap  silence closed, smile
  ==================  ==============  ===============  ============  ============  ======================
  v2 (main)           0.00 / 0.00     0.18 / 0.16      0.81 / 0.83   0.85 / 0.92   0.00 (gap 0.11), read
                                                                                   0.98 vs latent -0.01
  v3 (issue 21 §3)    0.00 / 0.00     0.20 / 0.13      0.82 / 0.74   0.82 / 0.95   0.00 (gap 0.13), read
                                                                                   0.98 vs latent 0.09
  ==================  ==============  ===============  ============  ============  ======================

(v2's synthetic set was 12 s, 11 bilabial frames; v3's 16 s, 13; the real set is the same 413 frames,
42 bilabial.) The render's mouth never closes (its rest is the photo's grin: gap 0.11-0.13 in
silence), whatever the latents: the rest mouth is issue 21 §1-2's. On the avatar's mesh instead of
its pixels (the same latents, all 15 real clips), v3 brings the bilabial median gap from 0.039 to
0.012 and the open-vowel one from 0.120 to 0.144 (AUC 0.83 both). ``--latents_only``: the model card,
``vasa3d_jax/motion/assets/README.md``.

Writes ``OUT/eval_mouth.json`` (also printed, the last line) and, per avatar, ``OUT/NAME_sheet.png``:
rows silence (smile off), /m/, /a/, /o/, silence with the smile on; each cell a face crop with its gap.
Runs in ~11 min on the shared 2-core CPU for one avatar (rendering and face analysis: ~7 min).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import jax
import ml_collections
import numpy as np

from vasa3d_jax.audio import align
from vasa3d_jax.constants import FPS, SAMPLE_RATE
from vasa3d_jax.head.landmarks import inner_lip_gap
from vasa3d_jax.motion import DEFAULT_MODEL, Controls, load_generator

from vasa3d_jax.session import Talker

HOP = SAMPLE_RATE // FPS
# The synthetic corpus's closed mouth (motion/synthetic.py eq. 3): AU25 -> 0, AU26 -> min(AU26, 0.06),
# so mouth_open = 0.75 AU26 + 0.25 AU25 <= 0.045 on a bilabial; a little slack for the 25 fps average.
CLOSED_MOUTH_LATENT = 0.75 * 0.06
SMILE = "AU12"  # the smile channel (lip corner puller)
PRESS = "AU24"  # lip presser: with a shut jaw it is what closes the head rig's lips (synthetic.py eq. 3)
LAGS = (-2, -1, 0, 1, 2)


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        out="out/eval_mouth",
        model=str(DEFAULT_MODEL),  # the motion generator (default: the shipped one)
        sampler=dict(),  # overrides of the generator's own sampler, e.g. audio_scale=2.0
        avatars=[],  # extra avatar files (.npz) to evaluate
        demo=True,  # evaluate the demo's astronaut avatar (built into demo_workdir when absent)
        demo_workdir="out/demo/work",  # where `vasa3d demo --out out/demo` keeps it
        template=False,  # also the built-in template head
        size=256,  # rendered frame side, px
        seed=0,
        face_backend="litert",
        latents_only=False,  # item 3: measure the generator's latents only
        # held-out synthetic speech: clips of corpus_specs(corpus_clips, corpus_heldout, corpus_seed)'s
        # held-out split, in order, until render_synthetic_s seconds (rendered) / latent_synthetic_clips
        synthetic=dict(corpus_clips=1500, corpus_heldout=100, corpus_seed=0, render_s=16.0, latent_clips=20),
        # real speech: every clip for latents; these (16.4 s, 42 bilabial and 35 open-vowel frames) rendered
        real=dict(folder="/work/shared/data/realspeech",
                  render=["ps_librivox_0920", "ps_librivox_0930", "arctic_slt_a0009", "arctic_awb_a0007"]),
        silence_s=3.0,
        smile=1.0,  # emotion "happy" for the smile-on silence
        closed_silence=0.02,  # gap thresholds of issue 21
        closed_bilabial=0.03,
        sheet_cell=160,  # px per contact-sheet cell
    ))


# ---- measurements ------------------------------------------------------------------------------


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive > a random negative) + 1/2 P(equal): the Mann-Whitney U over n_pos n_neg."""
    import scipy.stats

    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(np.concatenate([positive, negative]))
    u = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(u / (len(positive) * len(negative)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def lagged_auc(values: np.ndarray, classes: np.ndarray, lag: int) -> float:
    """AUC(open vowel > bilabial) of ``values[t + lag]`` against the class of frame t (within one clip)."""
    t = np.arange(len(values))
    ok = (t + lag >= 0) & (t + lag < len(values))
    v, c = values[t[ok] + lag], classes[t[ok]]
    fin = np.isfinite(v)
    return auc(v[fin & (c == "open_vowel")], v[fin & (c == "bilabial")])


def speech_metrics(gap: np.ndarray, classes: np.ndarray, mouth_latent: np.ndarray, closed: float) -> dict:
    """The per-avatar speech figures of the module docstring (``gap`` NaN where no face was found)."""
    bil, vow = classes == "bilabial", classes == "open_vowel"
    aucs = {lag: lagged_auc(gap, classes, lag) for lag in LAGS}
    best = max(LAGS, key=lambda k: (np.nan_to_num(aucs[k], nan=-1.0), -abs(k)))
    return dict(
        frames=int(len(gap)), faces=float(np.isfinite(gap).mean()), bilabial_frames=int(bil.sum()),
        open_vowel_frames=int(vow.sum()),
        bilabial_closed=float(np.mean(gap[bil & np.isfinite(gap)] <= closed)) if bil.any() else float("nan"),
        bilabial_gap=float(np.nanmedian(gap[bil])) if bil.any() else float("nan"),
        open_vowel_gap=float(np.nanmedian(gap[vow])) if vow.any() else float("nan"),
        auc=aucs[0], auc_best=aucs[best], auc_best_lag=int(best),
        r_latent_gap=pearson(mouth_latent, gap))


def latent_metrics(mouth: np.ndarray, classes: np.ndarray, press: np.ndarray) -> dict:
    """Item 3 on latents: the mouth channel on bilabials (and the lip press AU24 there), open vowels
    and silence, and its AUC."""
    bil, vow, sil = classes == "bilabial", classes == "open_vowel", classes == "silence"
    return dict(
        bilabial_press=float(np.median(press[bil])),
        bilabial_mouth=float(np.median(mouth[bil])), bilabial_mouth_p90=float(np.percentile(mouth[bil], 90)),
        bilabial_at_closed=float(np.mean(mouth[bil] <= CLOSED_MOUTH_LATENT)),
        open_vowel_mouth=float(np.median(mouth[vow])), silence_mouth=float(np.median(mouth[sil])),
        auc=auc(mouth[vow], mouth[bil]), bilabial_frames=int(bil.sum()), open_vowel_frames=int(vow.sum()))


# ---- speech sets -------------------------------------------------------------------------------


@dataclasses.dataclass
class Utterance:
    name: str
    audio: np.ndarray  # (S,) 16 kHz
    phones: tuple  # align.Phone or motion.synthetic.Phoneme (name, start, end)
    motion: np.ndarray | None = None  # (T, D) generated
    target: np.ndarray | None = None  # (T, D) the synthetic corpus's own motion (synthetic clips only)

    @property
    def labels(self) -> list[str]:
        return align.frame_phones(self.phones, -(-len(self.audio) // HOP))

    @property
    def classes(self) -> np.ndarray:
        return np.array([align.phone_class(p) for p in self.labels])


def synthetic_utterances(cfg, count: int) -> list[Utterance]:
    """The first ``count`` held-out clips of the synthetic corpus (sentences never trained on)."""
    from vasa3d_jax.motion import synthetic

    _, specs = synthetic.corpus_specs(cfg.corpus_clips, cfg.corpus_heldout, cfg.corpus_seed)
    out = []
    for i, spec in enumerate(specs[:count]):
        clip = synthetic.make_clip(spec)
        out.append(Utterance(f"heldout{i:03d}", clip.audio, clip.phonemes, target=clip.motion))
    return out


def real_utterances(folder: str, names: list[str] | None = None) -> list[Utterance]:
    """Recordings ``ID.wav`` with transcripts ``ID.txt`` in ``folder``, force-aligned (``audio/align.py``)."""
    from vasa3d_jax.audio import load_audio

    folder = pathlib.Path(folder)
    wavs = sorted(folder.glob("*.wav")) if names is None else [folder / f"{n}.wav" for n in names]
    if not wavs or not all(p.is_file() for p in wavs):
        raise FileNotFoundError(f"no recordings {[p.name for p in wavs]} in {folder}; point --real_folder at "
                                "a folder of ID.wav + ID.txt pairs (../shared/data/realspeech)")
    out = []
    for path in wavs:
        wav = load_audio(path)
        out.append(Utterance(path.stem, wav, align.forced_align(wav, path.with_suffix(".txt").read_text())))
    return out


def generate(talker, utterances: list[Utterance], key, controls: Controls | None = None) -> None:
    for i, u in enumerate(utterances):
        u.motion = np.asarray(talker.speak(u.audio, "front", controls, jax.random.fold_in(key, i)).motion)


def pooled(utterances: list[Utterance], space, field: str = "motion") -> tuple[np.ndarray, ...]:
    """(latent mouth opening (T,), classes (T,), lip press AU24 (T,)) of ``u.motion`` (or ``u.target``)
    over all utterances, in order."""
    xs = [getattr(u, field) for u in utterances]
    mouth = np.concatenate([np.asarray(space.mouth_open(x)) for x in xs])
    classes = np.concatenate([u.classes[: len(x)] for u, x in zip(utterances, xs)])
    press = np.concatenate([x[:, space.index(PRESS)] for x in xs])
    return mouth, classes, press


# ---- rendering and reading back ----------------------------------------------------------------


def render_and_read(avatar, motion: np.ndarray, size: int, backend: str, batch: int = 32):
    """Frames ``(T, H, W, 3)`` of ``motion`` from the front and their batched ``FaceAnalysis``."""
    from vasa3d_jax.face import analyze_faces
    from vasa3d_jax.avatar.render import render_motion

    frames = np.clip(np.stack(list(render_motion(avatar, motion, "front", size))), 0.0, 1.0)  # splats overshoot
    parts = [analyze_faces(frames[s:s + batch], backend=backend) for s in range(0, len(frames), batch)]
    analysis = jax.tree.map(lambda *xs: np.concatenate(xs), *parts)
    return frames, analysis


def gaps_of(analysis) -> np.ndarray:
    gap = inner_lip_gap(np.asarray(analysis.landmarks))
    return np.where(np.asarray(analysis.valid), gap, np.nan)


def smile_read_back(avatar, analysis, image_size) -> np.ndarray:
    """AU12 per frame as ``encode_motion`` reads it from the rendered frames."""
    from vasa3d_jax.face import encode_motion

    fit = encode_motion(analysis, avatar.head, avatar.space, image_size=image_size)
    return np.asarray(fit.latents)[:, avatar.space.index(SMILE)]


def face_crop(frame: np.ndarray, landmarks: np.ndarray, cell: int) -> np.ndarray:
    """A square crop around the face's landmarks (1.3x their box), resized to ``cell`` px."""
    from PIL import Image

    h, w, _ = frame.shape
    lo, hi = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    c, half = (lo + hi) / 2, 0.65 * (hi - lo).max()
    if not np.isfinite(half) or half < 4:
        c, half = np.array([w / 2, h / 2]), w / 2
    x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
    x1, y1 = int(min(w, c[0] + half)), int(min(h, c[1] + half))
    img = Image.fromarray((np.clip(frame[y0:y1, x0:x1], 0, 1) * 255).astype(np.uint8)).resize((cell, cell))
    return np.asarray(img, np.float32) / 255.0


def contact_sheet(rows: list[tuple[str, list[tuple[np.ndarray, float]]]], cell: int) -> np.ndarray:
    """Rows of (label, [(crop, gap)]) -> one image, the label left of each row, the gap under each cell."""
    from PIL import Image, ImageDraw

    cols = max(len(cells) for _, cells in rows)
    label_w, pad, text_h = 110, 4, 14
    sheet = Image.new("RGB", (label_w + cols * (cell + pad), len(rows) * (cell + text_h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, cells) in enumerate(rows):
        y = r * (cell + text_h + pad)
        draw.text((4, y + cell // 2), label, fill="black")
        for c, (crop, gap) in enumerate(cells):
            x = label_w + c * (cell + pad)
            sheet.paste(Image.fromarray((crop * 255).astype(np.uint8)), (x, y))
            draw.text((x + 4, y + cell + 1), f"gap {gap:.3f}", fill="black")
    return np.asarray(sheet, np.float32) / 255.0


def pick_frames(labels: list[str], phone: str, count: int) -> list[int]:
    """Centre frames of up to ``count`` distinct segments whose ARPAbet phone is ``phone``, spread out."""
    runs, start = [], None
    for t, name in enumerate(labels + [""]):
        hit = align.arpabet(name)[:1] == (phone,) if name else False
        if hit and start is None:
            start = t
        if not hit and start is not None:
            runs.append((start + t - 1) // 2)
            start = None
    if len(runs) <= count:
        return runs
    return [runs[int(i)] for i in np.linspace(0, len(runs) - 1, count).round()]


# ---- the experiment ----------------------------------------------------------------------------


def demo_avatar(workdir: str):
    """The demo's astronaut avatar (``vasa3d_jax.demo``'s portrait and preset), built when absent."""
    from vasa3d_jax import demo
    from vasa3d_jax.avatar.io import load_avatar
    from vasa3d_jax.portrait.api import portrait_to_avatar

    path = pathlib.Path(workdir) / "avatar.npz"
    if path.is_file():
        return load_avatar(path)
    print(f"building the demo avatar in {workdir} (quick preset; once)", file=sys.stderr)
    return portrait_to_avatar(demo.astronaut(), "quick", workdir).avatar


def main(config) -> dict:
    t_start = time.perf_counter()
    generator = load_generator(config.model)
    space = generator.space
    key = jax.random.key(config.seed)
    from vasa3d_jax.avatar.template import template_avatar
    sampler = dataclasses.replace(generator.sampler, **config.sampler)
    talker = Talker(template_avatar(), generator, size=config.size, sampler=sampler)  # motion: avatar-free

    # ---- speech, phones and motion (shared by every avatar) ----
    syn_latent = synthetic_utterances(config.synthetic, config.synthetic.latent_clips)
    real_all = real_utterances(config.real.folder)
    generate(talker, syn_latent, jax.random.fold_in(key, 1))
    generate(talker, real_all, jax.random.fold_in(key, 2))
    result: dict = {"latents": {
        "synthetic": latent_metrics(*pooled(syn_latent, space)),
        "real": latent_metrics(*pooled(real_all, space)),
        "target": latent_metrics(*pooled(syn_latent, space, "target")),
        "closed_mouth_latent": CLOSED_MOUTH_LATENT,
        "synthetic_clips": len(syn_latent), "real_clips": len(real_all),
        "synthetic_s": round(sum(len(u.audio) for u in syn_latent) / SAMPLE_RATE, 1),
        "real_s": round(sum(len(u.audio) for u in real_all) / SAMPLE_RATE, 1)}}
    silence = np.zeros(int(config.silence_s * SAMPLE_RATE), np.float32)
    silent = talker.speak(silence, "front", None, jax.random.fold_in(key, 3)).motion
    happy = Controls(emotion=(config.smile,) + (0.0,) * (generator.config.emotion_size - 1))
    smiling = talker.speak(silence, "front", happy, jax.random.fold_in(key, 3)).motion
    result["latents"]["silence_mouth"] = float(np.median(np.asarray(space.mouth_open(silent))))
    if config.latents_only:
        result["wall_s"] = round(time.perf_counter() - t_start, 1)
        return result

    # ---- the rendered sets: a prefix of the synthetic clips, the chosen real clips ----
    syn, total = [], 0.0
    for u in syn_latent:
        if total >= config.synthetic.render_s:
            break
        syn.append(u)
        total += len(u.audio) / SAMPLE_RATE
    real = [u for u in real_all if u.name in set(config.real.render)]
    sets = {"synthetic": syn, "real": real}
    motion = np.concatenate([u.motion for u in syn + real] + [silent, smiling])
    spans, t = {}, 0
    for name, us in sets.items():
        n = sum(len(u.motion) for u in us)
        spans[name], t = (t, t + n), t + n
    spans["silence"], spans["smile"] = (t, t + len(silent)), (t + len(silent), len(motion))

    avatars = []
    if config.demo:
        avatars.append(("demo_astronaut", demo_avatar(config.demo_workdir)))
    if config.template:
        avatars.append(("template", template_avatar()))
    from vasa3d_jax.avatar.io import load_avatar
    avatars += [(pathlib.Path(p).stem, load_avatar(p)) for p in config.avatars]
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    result["avatars"] = {}
    mouth_all = np.asarray(space.mouth_open(motion))
    for name, avatar in avatars:
        t0 = time.perf_counter()
        frames, analysis = render_and_read(avatar, motion, config.size, config.face_backend)
        gap = gaps_of(analysis)
        res: dict = {}
        for set_name, us in sets.items():
            a, b = spans[set_name]
            classes = np.concatenate([u.classes[: len(u.motion)] for u in us])
            res[set_name] = speech_metrics(gap[a:b], classes, mouth_all[a:b], config.closed_bilabial)
        smile_col = space.index(SMILE)
        for set_name in ("silence", "smile"):
            a, b = spans[set_name]
            part = jax.tree.map(lambda v: v[a:b], analysis)
            res[set_name] = dict(
                closed=float(np.mean(gap[a:b] <= config.closed_silence)), gap_median=float(np.nanmedian(gap[a:b])),
                smile_latent=float(motion[a:b, smile_col].mean()),
                smile_read=float(np.mean(smile_read_back(avatar, part, frames.shape[1:3]))))
        # ---- contact sheet ----
        lm = np.asarray(analysis.landmarks)
        labels = sum([u.labels[: len(u.motion)] for u in syn + real], [])
        cell = lambda i: (face_crop(frames[i], lm[i], config.sheet_cell), gap[i])  # noqa: E731
        a, b = spans["silence"]
        sa, sb = spans["smile"]
        rows = [("silence", [cell(i) for i in np.linspace(a, b - 1, 4).astype(int)])]
        for label, phones in (("/m/", ("M",)), ("/a/ (AA)", ("AA",)), ("/o/ (OW, else AO)", ("OW", "AO"))):
            picks = pick_frames(labels, phones[0], 4) or pick_frames(labels, phones[-1], 4)
            rows.append((label, [cell(i) for i in picks]))
        rows.append((f"smile on\n(happy={config.smile:g})", [cell(i) for i in np.linspace(sa, sb - 1, 4).astype(int)]))
        from vasa3d_jax import video
        res["sheet"] = str(video.save_png(out / f"{name}_sheet.png", contact_sheet(rows, config.sheet_cell)))
        res["wall_s"] = round(time.perf_counter() - t0, 1)
        result["avatars"][name] = res
        print(json.dumps({name: res}), file=sys.stderr)
    result["rendered_s"] = round(len(motion) / FPS, 1)
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    (out / "eval_mouth.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    defaults = get_config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=defaults.out)
    parser.add_argument("--model", default=defaults.model, help="motion generator (.npz/.json stem)")
    parser.add_argument("--avatar", action="append", default=[], help="an avatar .npz (repeatable)")
    parser.add_argument("--no_demo", action="store_true", help="skip the demo's astronaut avatar")
    parser.add_argument("--demo_workdir", default=defaults.demo_workdir)
    parser.add_argument("--template", action="store_true", help="also the built-in template head")
    parser.add_argument("--latents_only", action="store_true", help="item 3: the generator's latents only")
    parser.add_argument("--real_folder", default=defaults.real.folder)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--audio_scale", type=float, help="λ_audio (default: the generator's own)")
    a = parser.parse_args()
    cfg = get_config()
    cfg.out, cfg.model, cfg.avatars, cfg.demo, cfg.demo_workdir = a.out, a.model, a.avatar, not a.no_demo, a.demo_workdir
    cfg.template, cfg.latents_only, cfg.real.folder, cfg.seed = a.template, a.latents_only, a.real_folder, a.seed
    cfg.sampler = {} if a.audio_scale is None else {"audio_scale": a.audio_scale}
    print(json.dumps(main(cfg)))
