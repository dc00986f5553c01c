"""Phone timings for speech: forced alignment of a transcript, phone classes, phones per motion frame.

    phones = forced_align(wav, "ask not what your country can do for you")   # needs pocketsphinx
    labels = frame_phones(phones, n_frames)            # the phone under each 25 fps frame's centre
    closed = [phone_class(p) == "bilabial" for p in labels]

Forced alignment uses pocketsphinx 5.1.1 (BSD-2; its wheel ships the US-English acoustic model and
the CMU pronouncing dictionary), in the two passes its ``Decoder.set_alignment`` docstring gives: a
word-level alignment of the transcript (``set_align_text``), then a phone-level one (``set_alignment``
+ ``get_alignment``). Phone times are in the decoder's frames (``frate``, 100 per second). Words the
dictionary lacks are spelled by espeak-ng (``espeak-ng -q --ipa --sep=" "``) and converted to the
model's ARPAbet phones with ``IPA_TO_ARPABET``.

Phone names are either ARPAbet (pocketsphinx, CMU dictionary: ``"AA"``, ``"M"``, ``"SIL"``) or IPA
as espeak-ng names them (``"ɑː"``, ``"m"``, ``"_"`` for a pause; ``motion/synthetic.py``); both
are mapped to ARPAbet (``arpabet``) before they are classed, so both sources share one definition of
the classes (``PHONE_CLASSES``):

* bilabial: /p b m/ (P B M), where the lips must close;
* open vowel: the open and near-open nuclei AA AE AO AW AY (/ɑ æ ɔ aʊ aɪ/), where the jaw opens most.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import unicodedata
from typing import Sequence

import numpy as np

from vasa3d_jax.constants import FPS, SAMPLE_RATE

PHONE_CLASSES = {
    "bilabial": frozenset({"P", "B", "M"}),
    "open_vowel": frozenset({"AA", "AE", "AO", "AW", "AY"}),
}
SILENCE = "SIL"  # the ARPAbet name of a pause (pocketsphinx's own; espeak-ng's "_" maps to it)
# Silence added before and after the audio: pocketsphinx drops the first words of an utterance that
# starts without a pause (seen on espeak-ng's "a map": every word aligned to SIL).
PAD_S = 0.3
POCKETSPHINX_HINT = '`python -m pip install "pocketsphinx==5.1.1"` (in the test extra: pip install -e ".[test]")'

# IPA (espeak-ng 1.51's English output, stress, length and syllabic marks removed) -> ARPAbet
# (CMU dictionary phone set). Diphthongs and affricates first: longest match wins.
IPA_TO_ARPABET = {
    "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY", "oʊ": "OW", "əʊ": "OW", "eɪ": "EY", "tʃ": "CH", "dʒ": "JH",
    "ɪə": "IH", "eə": "EH", "ʊə": "UH",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V",
    "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "x": "HH", "ç": "HH",
    "m": "M", "n": "N", "ŋ": "NG", "l": "L", "ɫ": "L", "ɬ": "L", "ɹ": "R", "r": "R", "ɾ": "D",
    "ʔ": "T", "w": "W", "ʍ": "W", "j": "Y",
    "i": "IY", "ɪ": "IH", "ᵻ": "IH", "e": "EY", "ɛ": "EH", "æ": "AE", "a": "AA", "ɑ": "AA", "ɒ": "AA",
    "ɔ": "AO", "o": "OW", "ʊ": "UH", "u": "UW", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɚ": "ER", "ɜ": "ER",
    "ɝ": "ER", "_": SILENCE,
}
_MARKS = set("ˈˌːˑ-\u200d")  # stress, length, espeak-ng's tie (zero-width joiner)


@dataclasses.dataclass(frozen=True)
class Phone:
    name: str  # ARPAbet ("AA", "SIL") or IPA ("ɑː", "_")
    start: float  # seconds from the start of the audio
    end: float  # seconds


def arpabet(name: str) -> tuple[str, ...]:
    """A phone name (ARPAbet, possibly with a stress digit, or espeak-ng IPA) -> ARPAbet phones.

    ``"AA1" -> ("AA",)``, ``"aɪ" -> ("AY",)``, ``"_" -> ("SIL",)``, ``"tʃ" -> ("CH",)``; pocketsphinx's
    filler phones (``"+NSN+"``) and unknown IPA symbols give ``()``.
    """
    if re.fullmatch(r"[A-Z]+[0-2]?", name):
        return (name.rstrip("012"),)
    if name.startswith("+"):
        return ()
    s = "".join(ch for ch in name if ch not in _MARKS and not unicodedata.combining(ch))
    out, i = [], 0
    while i < len(s):
        for size in (2, 1):
            if s[i:i + size] in IPA_TO_ARPABET:
                out.append(IPA_TO_ARPABET[s[i:i + size]])
                i += size
                break
        else:
            i += 1  # a symbol with no English counterpart: dropped
    return tuple(out)


def phone_class(name: str) -> str:
    """``"bilabial"``, ``"open_vowel"``, ``"silence"`` or ``"other"`` for a phone name (ARPAbet or IPA);
    a multi-phone IPA name (a diphthong written as two phones) is classed by its first phone."""
    phones = arpabet(name) if name else (SILENCE,)
    if not phones:
        return "silence" if name.startswith("+") else "other"
    if phones[0] == SILENCE:
        return "silence"
    for cls, members in PHONE_CLASSES.items():
        if phones[0] in members:
            return cls
    return "other"


def frame_phones(phones: Sequence[Phone], n_frames: int, fps: float = FPS) -> list[str]:
    """The name of the phone under the centre of each motion frame, ``(i + 1/2) / fps`` s (frame i
    covers audio samples [i, i + 1) * SAMPLE_RATE / fps); ``SILENCE`` where no phone covers it."""
    centres = (np.arange(n_frames) + 0.5) / fps
    starts = np.array([p.start for p in phones], np.float64)
    ends = np.array([p.end for p in phones], np.float64)
    out = []
    for t in centres:
        hit = np.flatnonzero((starts <= t) & (t < ends))
        out.append(phones[hit[0]].name if len(hit) else SILENCE)
    return out


def transcript_words(text: str) -> list[str]:
    """Lower-case words of a transcript as the CMU dictionary spells them (letters and apostrophes)."""
    words = [w.strip("'") for w in re.findall(r"[a-z']+", text.lower())]
    return [w for w in words if w]


def espeak_arpabet(word: str, voice: str = "en-us") -> str:
    """ARPAbet pronunciation of ``word`` (space-separated) from espeak-ng's letter-to-sound rules."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError(f"{word!r} is not in pocketsphinx's dictionary and espeak-ng, which spells "
                           "unknown words, is missing; install it with `sudo apt-get install espeak-ng`")
    ipa = subprocess.run(["espeak-ng", "-q", "--ipa", "--sep= ", "-v", voice, word], capture_output=True,
                         text=True, check=True).stdout
    phones = [p for sym in ipa.split() for p in arpabet(sym) if p != SILENCE]
    if not phones:
        raise ValueError(f"espeak-ng gave no English phones for {word!r} ({ipa.strip()!r})")
    return " ".join(phones)


def forced_align(wav: np.ndarray, text: str) -> tuple[Phone, ...]:
    """Phone timings of ``text`` spoken in ``wav`` ((n,) float 16 kHz mono in [-1, 1]), ARPAbet names
    (``"SIL"`` for pauses), from pocketsphinx's two-pass forced alignment (module docstring).

    Raises ImportError naming the install command when pocketsphinx is missing, ValueError when the
    transcript is empty or cannot be aligned to the audio.
    """
    try:
        import pocketsphinx
    except ImportError:
        raise ImportError(f"forced alignment needs pocketsphinx; install it with {POCKETSPHINX_HINT}") from None
    words = transcript_words(text)
    if not words:
        raise ValueError(f"the transcript {text!r} has no words to align")
    wav = np.asarray(wav, np.float32).reshape(-1)
    pad = np.zeros(int(PAD_S * SAMPLE_RATE), np.float32)
    pcm = (np.clip(np.concatenate([pad, wav, pad]), -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()
    decoder = pocketsphinx.Decoder(lm=None, samprate=SAMPLE_RATE, loglevel="ERROR")
    for word in dict.fromkeys(words):
        if decoder.lookup_word(word) is None:
            decoder.add_word(word, espeak_arpabet(word), False)
    try:
        decoder.set_align_text(" ".join(words))
        for second_pass in (False, True):
            if second_pass:
                decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
        alignment = decoder.get_alignment()
    except RuntimeError as err:
        raise ValueError(f"pocketsphinx could not align {text[:60]!r}... to the audio ({err}); check that "
                         "the transcript matches the recording and that the audio is 16 kHz speech") from None
    if alignment is None:
        raise ValueError(f"pocketsphinx found no alignment of {text[:60]!r}... in the audio")
    rate = float(decoder.config["frate"])
    aligned = [w.name.split("(")[0] for w in alignment.words() if not w.name.startswith(("<", "["))]
    if aligned != words:
        raise ValueError(f"pocketsphinx aligned {len(aligned)} of the transcript's {len(words)} words "
                         f"({' '.join(aligned)[:60]!r}); check that the transcript matches the recording")
    end = len(wav) / SAMPLE_RATE
    phones = []
    for p in alignment.phones():
        start = min(max(p.start / rate - PAD_S, 0.0), end)
        stop = min(max((p.start + p.duration) / rate - PAD_S, 0.0), end)
        if stop > start:
            phones.append(Phone(p.name, start, stop))
    return tuple(phones)
