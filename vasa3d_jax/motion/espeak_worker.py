"""The espeak-ng worker of the synthetic corpus (``synthetic.synthesize``), run as a script.

espeak-ng keeps synthesis state in process-wide statics (the phase of its pitch "flutter", the noise
generator), so the same text comes out slightly different (in samples and length) after different
earlier utterances. Each utterance is therefore spoken by a fresh interpreter running this worker,
which makes the audio a function of (text, voice, rate, pitch) alone. It needs only the standard
library, so it starts in ~30 ms. Protocol: stdin = JSON [text, voice, rate, pitch]; stdout = one
JSON line {"rate", "events": [[start sample, IPA name], ...]} then the int16 samples; exit status 3
= no such voice, 4 = library missing, 5 = initialisation or synthesis failed.
"""

import ctypes
import ctypes.util
import json
import sys


class Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class Event(ctypes.Structure):  # espeak_EVENT, speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", Id)]


def main() -> None:
    text, voice, rate, pitch = json.load(sys.stdin)
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1")
    except OSError:
        sys.exit(4)
    # AUDIO_OUTPUT_SYNCHRONOUS = 2; PHONEME_EVENTS | PHONEME_IPA = 3; 100 ms buffers.
    sample_rate = lib.espeak_Initialize(2, 100, None, 3)
    if sample_rate <= 0:
        sys.exit(5)
    chunks, events = [], []

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))
    def on_synth(wav, n, ev):
        if n > 0:
            chunks.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while ev[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            if ev[i].type == 7:  # espeakEVENT_PHONEME: .sample = first output sample of the phoneme
                events.append([ev[i].sample, ev[i].id.string.decode("utf-8", "replace")])
            i += 1
        return 0

    lib.espeak_SetSynthCallback(on_synth)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        sys.exit(3)
    for param, value in ((1, rate), (3, pitch), (4, 50), (2, 100)):  # RATE, PITCH, RANGE, VOLUME
        lib.espeak_SetParameter(param, int(value), 0)
    data = text.encode("utf-8")
    # POS_CHARACTER = 1, espeakCHARS_UTF8 = 1
    if lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None) or lib.espeak_Synchronize():
        sys.exit(5)
    out = sys.stdout.buffer
    out.write(json.dumps({"rate": sample_rate, "events": events}).encode() + b"\n")
    out.write(b"".join(chunks))


if __name__ == "__main__":
    main()
