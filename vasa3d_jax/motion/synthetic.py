"""A synthetic speech-to-motion corpus: espeak-ng speech with exact phoneme timings -> motion targets.

Real talking-face video is not available here, so the first motion model learns from clips whose
speech is synthesised by espeak-ng and whose motion (in the built-in ``MotionSpace``) is computed from
the synthesiser's own phoneme events and from the prosody of the synthesised audio. The audio of a
clip is exactly the audio the targets were computed for, so lip-sync is learnable from audio alone.
The full mapping, with its sources, is written down in ``docs/motion_corpus.md``.

Speech (espeak-ng 1.51's C API through ctypes, ``speak_lib.h``):
  ``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, ..., espeakINITIALIZE_PHONEME_EVENTS |
  espeakINITIALIZE_PHONEME_IPA)`` makes the synth callback report one ``espeakEVENT_PHONEME`` per
  phoneme, named in IPA, whose ``sample`` field is the index of the output sample at which the phoneme
  starts (espeak-ng ``src/libespeak-ng/speech.c``, ``MarkerEvent``). A phoneme ends where the next one
  starts. Audio is 22,050 Hz int16, resampled to 16 kHz (polyphase, 320/441). Each utterance is spoken
  by a fresh worker process, because espeak-ng carries synthesis state from one utterance to the next.

Motion, computed on a 100 Hz grid ``t_k = (k + 1/2) / 100`` s and averaged over the four grid points of
each 25 fps frame (frame i covers audio samples [640 i, 640 (i + 1))):

  (1) dominance (Cohen & Massaro 1993):  D_s(t) = alpha_s exp(-theta_s |t - c_s|), c_s the centre of
      segment s (one segment per IPA symbol; a diphthong's interval is split evenly between its parts);
  (2) co-articulated mouth channel:       m(t) = sum_s D_s(t) T_s / sum_s D_s(t), T_s the viseme target
      of segment s; alpha_s differs for the lip channels and the jaw (AU26);
  (3) bilabial closure (lips must meet; Löfqvist & Gracco 1997, "JALI", Edwards et al. 2016):
      AU25 <- (1 - w) AU25,  AU26 <- (1 - w) AU26 + w min(AU26, 0.06), w(t) a raised-cosine window over
      each /p b m/;
  (4) blinks: an inhomogeneous Poisson process with rate r (15-20 /min, Bentivoglio et al. 1997),
      raised in speech pauses, each blink closing fast and opening slower (~130-250 ms in all);
  (5) brows: AU01/AU02 raises on high pitch accents (Cavé et al. 1996; Granström & House 2005);
  (6) head: rot_x(t) = sum_a A_a h(t - t_a) - k_f f(t) + OU drift, h(u) = (u/u_p) exp(1 - u/u_p), t_a the
      prosodic accents (peaks of energy + pitch), f the pitch z-score (Graf et al. 2002; Yehia et al.
      2002); rot_y, rot_z: Ornstein-Uhlenbeck drift whose speed grows with speech activity (Busso et al.
      2007); translation from rotation about a neck pivot q: t = q - R q, plus a slow sway;
  (7) gaze: fixations around the clip's main gaze with saccades between them, and gaze aversion at the
      start of a phrase (Kendon 1967).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import unicodedata
import zlib
from typing import Sequence

import numpy as np
import scipy.ndimage
import scipy.signal
from scipy.spatial.transform import Rotation

from vasa3d_jax.constants import FPS, SAMPLE_RATE
from vasa3d_jax.head.geometry import smoothstep
from vasa3d_jax.motion.data import Clip, write_clip
from vasa3d_jax.motion.sentences import sentence_bank
from vasa3d_jax.motion_space import MotionSpace

HOP = SAMPLE_RATE // FPS  # 640 audio samples per motion frame
GRID_HZ = 100  # internal time grid of the motion model
SUB = GRID_HZ // FPS  # grid points per motion frame

EMOTIONS = ("happy", "surprised", "sad")  # order of the per-clip emotion offset vector

# espeak-ng voices for English (espeak-ng-data/lang/gmw) and voice variants (espeak-ng-data/voices/!v).
VOICES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan")
VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
RATE_RANGE = (130, 210)  # words per minute; espeak-ng's default is 175
PITCH_RANGE = (30, 70)  # espeak-ng pitch parameter, 0-100, default 50


# ---- speech synthesis -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Phoneme:
    name: str  # IPA as espeak-ng names it ("aɪ", "t", ...); "_" for a pause
    start: float  # seconds from the start of the clip's audio
    end: float  # seconds


# espeak-ng keeps synthesis state in process-wide statics, so each utterance is spoken by a fresh
# interpreter running espeak_worker.py (its docstring gives the reason and the protocol).
_WORKER = pathlib.Path(__file__).with_name("espeak_worker.py")


def _speak(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int, list]:
    """Run espeak-ng in a fresh worker: ``-> (int16 samples, sample rate, [(start sample, name)])``."""
    result = subprocess.run([sys.executable, "-I", str(_WORKER)], capture_output=True,
                            input=json.dumps([text, voice, int(rate), int(pitch)]).encode())
    if result.returncode == 3:
        raise ValueError(f"espeak-ng has no voice {voice!r}; list them with `espeak-ng --voices=en` "
                         f"and variants with `espeak-ng --voices=variant`")
    if result.returncode == 4:
        raise RuntimeError("espeak-ng's C library (libespeak-ng.so.1) was not found; install it with "
                           "`sudo apt-get install espeak-ng` (Debian/Ubuntu)")
    if result.returncode != 0:
        raise RuntimeError(f"espeak-ng failed on {text!r} with {voice=} (exit {result.returncode}): "
                           f"{result.stderr.decode(errors='replace')[-500:]} ; is espeak-ng-data "
                           f"installed? `sudo apt-get install --reinstall espeak-ng`")
    header, _, samples = result.stdout.partition(b"\n")
    meta = json.loads(header)
    return np.frombuffer(samples, np.int16), meta["rate"], meta["events"]


def synthesize(text: str, voice: str = "en-us", rate: int = 175,
               pitch: int = 50) -> tuple[np.ndarray, tuple[Phoneme, ...]]:
    """Speak ``text`` with espeak-ng: ``-> (audio (S,) float32 16 kHz in [-1, 1], phonemes)``.

    Phoneme times come from espeak-ng's own phoneme events (exact sample positions in its output),
    rescaled to the 16 kHz timeline; the phonemes tile the audio from 0 to its end ("_" = pause).
    """
    if not text.strip():
        raise ValueError("text is empty; give at least one word to speak")
    wav, native_rate, events = _speak(text, voice, rate, pitch)
    audio = scipy.signal.resample_poly(wav.astype(np.float32) / 32768.0, SAMPLE_RATE, native_rate)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    starts = [0.0] + [s / native_rate for s, _ in events] + [len(audio) / SAMPLE_RATE]
    names = ["_"] + [name or "_" for _, name in events]  # before the first event: silence
    phonemes = [Phoneme(n, a, min(b, starts[-1])) for n, a, b in zip(names, starts[:-1], starts[1:])]
    return audio, _merge_pauses(phonemes)


def _merge_pauses(phonemes: Sequence[Phoneme]) -> tuple[Phoneme, ...]:
    """Drop empty phonemes and merge consecutive pauses into one."""
    out: list[Phoneme] = []
    for p in phonemes:
        if p.end <= p.start:
            continue
        if p.name == "_" and out and out[-1].name == "_":
            out[-1] = Phoneme("_", out[-1].start, p.end)
        else:
            out.append(p)
    return tuple(out)


# ---- visemes ----------------------------------------------------------------------------------

# Mouth channels the visemes drive; every other channel is left to blinks, brows, emotion, gaze, pose.
MOUTH_CHANNELS = ("AU10", "AU12", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28")


@dataclasses.dataclass(frozen=True)
class Viseme:
    targets: tuple[float, ...]  # target intensity per MOUTH_CHANNELS entry, in [0, 1]
    lip_dominance: float  # alpha of (1) for every mouth channel except AU26
    jaw_dominance: float  # alpha of (1) for AU26 (jaw drop)
    theta: float = 20.0  # 1/s: dominance decay rate of (1)


# Targets (AU10 AU12 AU20 AU23 AU24 AU25 AU26 AU28): MPEG-4 viseme groups (ISO/IEC 14496-2, Annex C)
# extended with rounded/open vowel classes; intensities from the FACS descriptions of each AU
# (Ekman, Friesen & Hager 2002). Rounding has no AU18/AU22 in this space: AU23 (lip tightener) narrows
# the lips instead, with AU20 (lip stretcher) off; spreading uses AU20 (+ a little AU12).
VISEMES = {
    "sil": Viseme((0, 0, 0, 0, 0, 0, 0, 0), 0.5, 0.5, 15.0),  # pause: lips together, jaw at rest
    "PBM": Viseme((0, 0, 0, .25, .55, 0, .04, 0), 1.0, 0.8, 18.0),  # bilabial closure + press
    "FV": Viseme((.35, 0, 0, 0, 0, .3, .08, .35), 0.9, 0.6),  # lower lip under the upper teeth
    "TH": Viseme((.1, 0, 0, 0, 0, .5, .15, 0), 0.6, 0.6),  # tongue between the teeth
    "TDNL": Viseme((0, 0, .1, 0, 0, .4, .18, 0), 0.3, 0.5),  # alveolar: lips free, jaw half-raised
    "KG": Viseme((0, 0, 0, 0, 0, .45, .28, 0), 0.2, 0.4),  # velar: lips take the neighbours' shape
    "SZ": Viseme((0, 0, .3, 0, 0, .35, .06, 0), 0.5, 0.8),  # sibilant: teeth nearly together
    "SH": Viseme((0, 0, 0, .45, 0, .35, .1, 0), 0.8, 0.7),  # postalveolar: lips protruded
    "R": Viseme((0, 0, 0, .35, 0, .3, .15, 0), 0.5, 0.4),
    "W": Viseme((0, 0, 0, .75, .1, .15, .06, 0), 0.9, 0.5),  # labial-velar: tightly rounded
    "Y": Viseme((0, .1, .35, 0, 0, .4, .1, 0), 0.5, 0.5),
    "H": Viseme((0, 0, 0, 0, 0, .5, .3, 0), 0.05, 0.05, 30.0),  # glottal: no shape of its own
    "AA": Viseme((0, 0, 0, 0, 0, .95, .85, 0), 0.5, 0.9),  # open vowels
    "AE": Viseme((0, .05, .25, 0, 0, .9, .7, 0), 0.5, 0.9),  # near-open front
    "EH": Viseme((0, .05, .2, 0, 0, .8, .5, 0), 0.5, 0.8),  # open-mid / close-mid front
    "AX": Viseme((0, 0, 0, 0, 0, .6, .32, 0), 0.3, 0.4),  # central, reduced
    "ER": Viseme((0, 0, 0, .3, 0, .55, .3, 0), 0.5, 0.6),  # r-coloured central
    "IY": Viseme((0, .15, .45, 0, 0, .55, .14, 0), 0.6, 0.7),  # close front, spread
    "UW": Viseme((0, 0, 0, .75, 0, .35, .16, 0), 0.8, 0.6),  # close back, rounded
    "OW": Viseme((0, 0, 0, .5, 0, .7, .45, 0), 0.6, 0.8),  # mid back, rounded
}

# IPA symbol -> viseme. Covers the symbols espeak-ng 1.51 emits for its English voices and the
# neighbouring IPA letters; diacritics, length and stress marks are stripped before the look-up.
SYMBOL_VISEME = {
    **dict.fromkeys("pbmɱʙɸβ", "PBM"), **dict.fromkeys("fvʋ", "FV"), **dict.fromkeys("θð", "TH"),
    **dict.fromkeys("tdnlɾɫɬɮʈɖɳɭrɽ", "TDNL"), **dict.fromkeys("kgɡŋxɣqɢɴχʁcɟɲçʝʎʟʀ", "KG"),
    **dict.fromkeys("szʂʐ", "SZ"), **dict.fromkeys("ʃʒ", "SH"), **dict.fromkeys("ɹɻ", "R"),
    **dict.fromkeys("wʍɥɰ", "W"), "j": "Y", **dict.fromkeys("hɦʔħʕ", "H"),
    **dict.fromkeys("aɑɒɐɶ", "AA"), "æ": "AE", **dict.fromkeys("ɛeœø", "EH"),
    **dict.fromkeys("əɘʌɤ", "AX"), **dict.fromkeys("ɚɝɜɞ", "ER"), **dict.fromkeys("iɪyʏɨᵻ", "IY"),
    **dict.fromkeys("uʊɯʉᵿ", "UW"), **dict.fromkeys("oɔɵ", "OW"), "_": "sil",
}
_MODIFIERS = set("ːˑˈˌʰʲʷˠˤ̩̪̃ᵊʼ-")
BILABIALS = frozenset("pbmɱʙ")


def phoneme_symbols(name: str) -> tuple[str, ...]:
    """IPA phoneme name -> its base symbols (``"aɪ" -> ("a", "ɪ")``, ``"ɑː" -> ("ɑ",)``)."""
    return tuple(ch for ch in name if ch not in _MODIFIERS and not unicodedata.combining(ch))


def unknown_symbols(phonemes: Sequence[Phoneme]) -> set[str]:
    """Symbols in ``phonemes`` that have no entry in ``SYMBOL_VISEME`` (they fall back to "AX")."""
    return {s for p in phonemes for s in phoneme_symbols(p.name) if s not in SYMBOL_VISEME}


def _segments(phonemes: Sequence[Phoneme]) -> list[tuple[str, float, float]]:
    """One (symbol, start, end) per IPA symbol; a multi-symbol phoneme's interval is split evenly."""
    out = []
    for p in phonemes:
        symbols = phoneme_symbols(p.name) or ("_",)
        edges = np.linspace(p.start, p.end, len(symbols) + 1)
        out += [(s, float(a), float(b)) for s, a, b in zip(symbols, edges[:-1], edges[1:])]
    return out


def grid_times(n_frames: int) -> np.ndarray:
    """Centres of the internal 100 Hz grid for ``n_frames`` motion frames: ``(SUB * n_frames,)`` s."""
    return (np.arange(SUB * n_frames) + 0.5) / GRID_HZ


def mouth_track(phonemes: Sequence[Phoneme], n_frames: int) -> np.ndarray:
    """Co-articulated mouth channels on the 100 Hz grid: ``(SUB * n_frames, len(MOUTH_CHANNELS))``.

    Equations (1)-(3) of the module docstring. Deterministic in the phonemes alone.
    """
    t = grid_times(n_frames)
    segments = _segments(phonemes) or [("_", 0.0, n_frames / FPS)]
    visemes = [VISEMES[SYMBOL_VISEME.get(s, "AX")] for s, _, _ in segments]
    centres = np.array([(a + b) / 2 for _, a, b in segments])
    targets = np.array([v.targets for v in visemes], np.float64)  # (P, C)
    decay = np.exp(-np.array([v.theta for v in visemes])[:, None] * np.abs(t[None] - centres[:, None]))
    jaw = MOUTH_CHANNELS.index("AU26")
    alpha = np.array([[v.lip_dominance] * len(MOUTH_CHANNELS) for v in visemes])
    alpha[:, jaw] = [v.jaw_dominance for v in visemes]
    dominance = alpha[:, None, :] * decay[:, :, None]  # (P, N, C)
    mouth = (dominance * targets[:, None, :]).sum(0) / np.maximum(dominance.sum(0), 1e-12)  # (N, C)
    closure = np.zeros_like(t)
    for s, a, b in segments:
        if s in BILABIALS:
            # Raised cosine over the segment, flat at 1 over its central half.
            u = np.clip((np.abs(t - (a + b) / 2) - (b - a) / 4) / max((b - a) / 4, 1e-3), 0, 1)
            closure = np.maximum(closure, 0.5 + 0.5 * np.cos(np.pi * u))
    lips = MOUTH_CHANNELS.index("AU25")
    mouth[:, lips] *= 1 - closure
    mouth[:, jaw] = (1 - closure) * mouth[:, jaw] + closure * np.minimum(mouth[:, jaw], 0.06)
    return mouth


# ---- prosody ----------------------------------------------------------------------------------


def prosody(audio: np.ndarray, n_frames: int) -> dict[str, np.ndarray]:
    """Energy and pitch of ``audio`` on the 100 Hz grid of ``n_frames`` frames.

    Returns ``energy_db`` (RMS level, dB re full scale), ``f0_z`` (pitch z-score in semitones over the
    voiced grid points, 0 where unvoiced), ``voiced`` (bool) and ``activity`` (smoothed speech
    activity in [0, 1]); all ``(SUB * n_frames,)``.
    """
    import librosa  # deferred: librosa's import is slow and only the corpus generator needs it

    n = SUB * n_frames
    hop = SAMPLE_RATE // GRID_HZ
    x = np.pad(audio, (0, max(0, n * hop - len(audio))))
    rms = librosa.feature.rms(y=x, frame_length=400, hop_length=hop, center=True)[0]
    # YIN (de Cheveigné & Kawahara 2002); 65-400 Hz covers espeak-ng's male and female voices.
    f0 = librosa.yin(x, fmin=65.0, fmax=400.0, sr=SAMPLE_RATE, frame_length=1024, hop_length=hop)
    frame_t = np.arange(len(rms)) * hop / SAMPLE_RATE
    t = grid_times(n_frames)
    energy_db = 20 * np.log10(np.maximum(np.interp(t, frame_t, rms), 1e-5))
    f0 = np.interp(t, np.arange(len(f0)) * hop / SAMPLE_RATE, f0)
    speech = energy_db > energy_db.max() - 30.0  # within 30 dB of the loudest point
    voiced = speech & (f0 > 70.0) & (f0 < 390.0)
    semitones = 12 * np.log2(np.maximum(f0, 1.0) / 100.0)
    f0_z = np.zeros(n)
    if voiced.sum() > 2:
        st = semitones[voiced]
        f0_z[voiced] = (st - st.mean()) / max(st.std(), 0.5)
    f0_z = scipy.ndimage.gaussian_filter1d(f0_z, 3.0)  # 30 ms
    activity = np.clip(scipy.ndimage.gaussian_filter1d(speech.astype(float), 15.0) * 1.5, 0, 1)
    return dict(energy_db=energy_db, f0_z=f0_z, voiced=voiced, activity=activity)


def _accents(energy_db, f0_z, voiced) -> tuple[np.ndarray, np.ndarray]:
    """Prosodic accents: peaks of loudness + pitch, >= 250 ms apart. ``-> (grid indices, strength)``."""
    speech_db = energy_db[voiced] if voiced.any() else energy_db
    loud = (energy_db - np.median(speech_db)) / max(speech_db.std(), 1.0)
    score = scipy.ndimage.gaussian_filter1d(np.where(voiced, loud + 0.5 * f0_z, -2.0), 8.0)
    peaks, props = scipy.signal.find_peaks(score, height=0.3, distance=GRID_HZ // 4, prominence=0.4)
    return peaks, props["peak_heights"]


# ---- non-verbal channels ----------------------------------------------------------------------


def blink_track(rng: np.random.Generator, activity: np.ndarray, rate_per_min: float) -> np.ndarray:
    """AU43 on the 100 Hz grid: Poisson blinks, twice as likely in pauses as in speech, 0.4 s apart."""
    n = len(activity)
    weight = 1.0 + (1.0 - activity)
    hazard = rate_per_min / 60.0 / GRID_HZ * weight / weight.mean()
    au43 = np.zeros(n)
    k = 0
    draws = rng.random(n)
    while k < n:
        if draws[k] < hazard[k]:
            close, hold = rng.uniform(0.05, 0.08), rng.uniform(0.0, 0.03)
            reopen = rng.uniform(0.08, 0.14)
            depth = rng.uniform(0.85, 1.0)
            u = np.arange(min(n - k, int((close + hold + reopen) * GRID_HZ) + 1)) / GRID_HZ
            shape = np.where(u < close, smoothstep(u / close),
                             1.0 - smoothstep((u - close - hold) / reopen))
            au43[k: k + len(u)] = depth * shape
            k += int((close + hold + reopen + 0.4) * GRID_HZ)
        else:
            k += 1
    return au43


def _bump(n, start, attack, hold, release):
    """Raised-cosine rise over ``attack``, flat ``hold``, fall over ``release`` (grid points)."""
    k = np.arange(n) - start
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip(k / attack, 0, 1))
    fall = 0.5 + 0.5 * np.cos(np.pi * np.clip((k - attack - hold) / release, 0, 1))
    return np.where(k < 0, 0.0, np.where(k < attack + hold, rise, fall))


def _ou(rng, n, sigma, tau, speed=None):
    """Ornstein-Uhlenbeck process on the grid: stationary std ``sigma``, correlation time ``tau`` s."""
    dt = 1.0 / GRID_HZ
    a = np.exp(-dt / tau)
    noise = rng.standard_normal(n) * sigma * np.sqrt(1 - a * a)
    if speed is not None:
        noise *= speed
    x = np.empty(n)
    x[0] = rng.standard_normal() * sigma
    for i in range(1, n):
        x[i] = a * x[i - 1] + noise[i]
    return x


def _onsets(activity: np.ndarray) -> np.ndarray:
    """Grid indices where speech starts: the first word, and after every pause of >= 0.3 s."""
    speaking = np.concatenate([[False], activity > 0.5])
    starts = np.flatnonzero(speaking[1:] & ~speaking[:-1])
    ends = np.flatnonzero(~speaking[1:] & speaking[:-1])
    keep = [s for s in starts if not (ends < s).any() or s - ends[ends < s][-1] >= 0.3 * GRID_HZ]
    return np.array(keep, int)


def gaze_track(rng: np.random.Generator, main: np.ndarray, activity: np.ndarray) -> np.ndarray:
    """Gaze (yaw, pitch) rad on the grid: fixations near ``main``, 40 ms saccades, aversion at onsets."""
    n = len(activity)
    onsets = set(_onsets(activity).tolist())
    targets = np.zeros((n, 2))
    k, current = 0, main.copy()
    while k < n:
        if k in onsets and rng.random() < 0.5:
            # Looking away at the start of a phrase (Kendon 1967): sideways and slightly down.
            target = main + [rng.choice([-1, 1]) * rng.uniform(0.1, 0.2), rng.uniform(-0.12, 0.03)]
            length = rng.uniform(0.6, 1.4)
        else:
            target = main + rng.normal(0.0, [0.04, 0.03])
            length = 0.15 + rng.gamma(2.0, 0.35)  # fixation durations ~0.2-2 s, mean 0.85 s
        end = min(n, k + max(1, int(length * GRID_HZ)))
        ramp = smoothstep((np.arange(end - k) + 1) / (0.04 * GRID_HZ))[:, None]
        targets[k:end] = current + ramp * (target - current)
        for j in range(k + 1, end):
            if j in onsets:
                end = j
                break
        current = targets[end - 1].copy()
        k = end
    return targets


def head_pose_track(rng: np.random.Generator, pros: dict, distance: float,
                    style: dict) -> np.ndarray:
    """Head pose (rot_x, rot_y, rot_z rad, tx, ty, tz m) on the grid: equation (6)."""
    n = len(pros["activity"])
    activity = pros["activity"]
    speed = 0.5 + activity  # the head moves more while speaking (Busso et al. 2007)
    rot = np.stack([
        style["mean"][0] + _ou(rng, n, 0.025, 1.5, speed),
        style["mean"][1] + _ou(rng, n, 0.05, 2.0, speed),
        style["mean"][2] + _ou(rng, n, 0.02, 2.0, speed)], axis=1)
    peaks, heights = _accents(pros["energy_db"], pros["f0_z"], pros["voiced"])
    u = np.arange(n) / GRID_HZ
    u_peak = 0.15  # s: time to the lowest point of a nod
    for p, h in zip(peaks, heights):
        amp = style["nod_gain"] * 0.03 * np.clip(h, 0.3, 2.0)  # ~1-3.5 degrees (Graf et al. 2002)
        v = np.clip(u - (p / GRID_HZ - 0.1), 0, None) / u_peak
        rot[:, 0] += amp * v * np.exp(1 - v)
        if rng.random() < 0.3:  # some accents turn the head a little instead of only nodding
            rot[:, 1] += rng.choice([-1, 1]) * 0.5 * amp * v * np.exp(1 - v)
    # Higher pitch raises the head (negative rot_x = chin up; Yehia et al. 2002).
    rot[:, 0] -= style["pitch_gain"] * 0.012 * scipy.ndimage.gaussian_filter1d(pros["f0_z"], 10.0)
    # Rotation about the neck pivot (head frame: y up, z out of the face): t = q - R q.
    pivot = np.array([0.0, -0.10, -0.05])  # m: roughly the upper cervical spine (design choice)
    trans = pivot - Rotation.from_rotvec(rot).apply(pivot)
    trans += np.stack([_ou(rng, n, 0.003, 2.5), _ou(rng, n, 0.002, 2.5), _ou(rng, n, 0.003, 2.5)], 1)
    trans[:, 2] += 0.6 - distance  # nearer than the 0.6 m reference moves the head towards the camera
    return np.concatenate([rot, trans], axis=1)


# ---- clips ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    text: str  # what is said
    voice: str  # espeak-ng voice name, with an optional "+variant"
    rate: int  # words per minute
    pitch: int  # espeak-ng pitch, 0-100
    seed: int  # everything random in the clip (pauses, gain, gaze, blinks, style) derives from it


def _rng(spec: ClipSpec) -> np.random.Generator:
    words = [spec.seed, zlib.crc32(spec.text.encode()), zlib.crc32(spec.voice.encode()), spec.rate,
             spec.pitch]
    return np.random.default_rng(np.random.SeedSequence([w & 0xFFFFFFFF for w in words]))


def _emotion(rng) -> np.ndarray:
    e = np.zeros(len(EMOTIONS))
    if rng.random() < 0.5:  # half the clips are neutral
        e[rng.integers(len(EMOTIONS))] = rng.uniform(0.2, 1.0)
    return e


def make_clip(spec: ClipSpec) -> Clip:
    """Synthesise ``spec`` and compute its motion targets in ``MotionSpace.builtin()``: a
    ``data.Clip`` with motion (T, D) at 25 fps, audio (S,) at 16 kHz (T = ceil(S / 640)), the clip's
    main gaze (yaw, pitch; rad), head-to-camera distance (m), emotion offset (``EMOTIONS`` order),
    ``source=spec`` and its phonemes.

    A deterministic function of ``spec`` (text, voice, rate, pitch, seed).
    """
    space = MotionSpace.builtin()
    rng = _rng(spec)
    speech, phonemes = synthesize(spec.text, spec.voice, spec.rate, spec.pitch)
    # Leading/trailing silence, loudness and a faint noise floor vary per clip.
    lead, tail = rng.uniform(0.1, 0.4, 2)
    n_lead = int(lead * SAMPLE_RATE)
    peak = max(float(np.abs(speech).max()), 1e-6)
    audio = np.concatenate([np.zeros(n_lead), speech / peak * rng.uniform(0.5, 0.95),
                            np.zeros(int(tail * SAMPLE_RATE))])
    audio = np.clip(audio + rng.normal(0.0, 3e-4, len(audio)), -1, 1).astype(np.float32)
    shift = n_lead / SAMPLE_RATE
    phonemes = _merge_pauses(
        [Phoneme("_", 0.0, shift)] + [Phoneme(p.name, p.start + shift, p.end + shift) for p in phonemes]
        + [Phoneme("_", phonemes[-1].end + shift, len(audio) / SAMPLE_RATE)])
    n_frames = -(-len(audio) // HOP)

    # Per-clip conditions and style.
    emotion = _emotion(rng)
    main_gaze = (rng.normal(0.0, [0.03, 0.02]) if rng.random() < 0.6
                 else rng.uniform([-0.25, -0.15], [0.25, 0.15]))
    distance = rng.uniform(0.56, 0.64)  # m: within the tz range around the 0.6 m reference
    style = dict(mean=rng.normal(0.0, [0.04, 0.06, 0.03]), nod_gain=rng.uniform(0.5, 1.2),
                 pitch_gain=rng.uniform(0.5, 1.5))
    blink_rate = rng.uniform(15.0, 20.0)  # blinks per minute (Bentivoglio et al. 1997)
    brow_prob = rng.uniform(0.3, 0.7)

    pros = prosody(audio, n_frames)
    n = SUB * n_frames
    grid = np.zeros((n, space.size))
    col = space.index
    for name, track in zip(MOUTH_CHANNELS, mouth_track(phonemes, n_frames).T):
        grid[:, col(name)] = track
    grid[:, col("AU43")] = blink_track(rng, pros["activity"], blink_rate)
    peaks, _ = _accents(pros["energy_db"], pros["f0_z"], pros["voiced"])
    brow = np.zeros(n)
    for p in peaks:
        if pros["f0_z"][p] > 0.8 and rng.random() < brow_prob:
            brow = np.maximum(brow, rng.uniform(0.25, 0.55) * _bump(
                n, p - 6, 12, rng.integers(10, 30), 30))
    for p in _onsets(pros["activity"]):
        if rng.random() < 0.3:
            brow = np.maximum(brow, rng.uniform(0.2, 0.4) * _bump(n, p - 10, 12, 20, 30))
    grid[:, col("AU01")] = brow
    grid[:, col("AU02")] = brow * rng.uniform(0.7, 1.1)
    gaze = gaze_track(rng, main_gaze, pros["activity"])
    grid[:, col("gaze_yaw")], grid[:, col("gaze_pitch")] = gaze[:, 0], gaze[:, 1]
    pose = head_pose_track(rng, pros, distance, style)
    for i, name in enumerate(("rot_x", "rot_y", "rot_z", "tx", "ty", "tz")):
        grid[:, col(name)] = pose[:, i]
    # Emotion offsets shift AU baselines (FACS prototypes: Ekman, Friesen & Hager 2002).
    happy, surprised, sad = emotion
    for name, value in (("AU06", 0.4 * happy), ("AU12", 0.6 * happy),
                        ("AU01", 0.4 * surprised + 0.3 * sad), ("AU02", 0.4 * surprised),
                        ("AU05", 0.4 * surprised), ("AU04", 0.4 * sad), ("AU15", 0.4 * sad),
                        ("AU17", 0.2 * sad)):
        grid[:, col(name)] += value
    motion = grid.reshape(n_frames, SUB, space.size).mean(1)
    motion = np.clip(motion, space.low, space.high).astype(np.float32)
    return Clip(name=f"synthetic-{spec.seed}", motion=motion, audio=audio, gaze=main_gaze.astype(np.float32),
                distance=float(distance), emotion=emotion.astype(np.float32), source=spec,
                phonemes=tuple(phonemes))


def save_clip(path: str | os.PathLike, clip: Clip) -> None:
    """Write a corpus ``clip`` with ``data.write_clip`` (atomic), its spec and phonemes as metadata
    (docs/motion_corpus.md)."""
    write_clip(
        path, clip.motion, audio=clip.audio, gaze=clip.gaze, distance=clip.distance, emotion=clip.emotion,
        text=clip.source.text, emotion_names=np.array(EMOTIONS), voice=np.str_(clip.source.voice),
        rate=np.int32(clip.source.rate), pitch=np.int32(clip.source.pitch), seed=np.int64(clip.source.seed),
        phoneme_names=np.array([p.name for p in clip.phonemes]),
        phoneme_times=np.array([(p.start, p.end) for p in clip.phonemes], np.float32).reshape(-1, 2),
        channel_names=np.array(MotionSpace.builtin().names))


def corpus_specs(n_train: int, n_heldout: int, seed: int = 0,
                 sentences_per_clip: tuple[int, int] = (1, 3)) -> tuple[list[ClipSpec], list[ClipSpec]]:
    """Clip specs for the training and held-out splits; their sentences are disjoint.

    Each clip speaks 1-3 sentences with a voice, variant, rate and pitch drawn at random.
    """
    if n_train < 0 or n_heldout < 0:
        raise ValueError(f"{n_train=} and {n_heldout=} must be >= 0")
    lo, hi = sentences_per_clip
    pool_train = max(8, n_train * hi)
    pool_heldout = max(8, n_heldout * hi)
    bank = list(sentence_bank(pool_train + pool_heldout, seed))
    np.random.default_rng(seed + 1).shuffle(bank)
    pools = (bank[:pool_train], bank[pool_train:])
    out = []
    for split, (count, pool) in enumerate(zip((n_train, n_heldout), pools)):
        rng = np.random.default_rng([seed, split])
        specs = []
        for i in range(count):
            k = int(rng.integers(lo, hi + 1))
            text = " ".join(pool[j] for j in rng.choice(len(pool), k, replace=False))
            variant = VARIANTS[rng.integers(len(VARIANTS))]
            voice = VOICES[rng.integers(len(VOICES))] + (f"+{variant}" if variant else "")
            specs.append(ClipSpec(text=text, voice=voice,
                                  rate=int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
                                  pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
                                  seed=int(rng.integers(2**31)) ))
        out.append(specs)
    return out[0], out[1]
