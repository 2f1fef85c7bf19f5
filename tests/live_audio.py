"""Test tones for live sessions: WAV files Chromium plays as a fake microphone, and tone detection,
in the page (an AnalyserNode on what she hears) and in Python (Goertzel on decoded samples).

Each participant's browser is its own process: Chromium's fake audio capture file is per process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import struct
import wave
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RATE = 48_000
# Far apart and off each other's harmonics, so one tone never shows as another.
TONES = {"alice": 440, "bella": 740, "chiara": 1180, "interpreter": 1660}


def _write(path: Path, samples: list[int]) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def _sine(frequency: float, seconds: float, amplitude: float = 0.5) -> list[int]:
    scale = amplitude * 32767
    return [round(scale * math.sin(2 * math.pi * frequency * i / RATE)) for i in range(round(seconds * RATE))]


def tone_wav(path: Path, frequency: float, seconds: float = 2.0) -> Path:
    """A steady tone (Chromium loops the file: keep `seconds` a whole number of periods' worth)."""
    return _write(path, _sine(frequency, seconds))


def pattern_wav(path: Path, frequency: float, silence_before_s: float, tone_s: float, silence_after_s: float) -> Path:
    """Silence, the tone for `tone_s`, silence: time to connect first, then a tone of known length
    (Chromium loops the file: make `silence_after_s` outlast the test). Loud, because Chromium's
    noise suppression takes a steady tone for noise and turns it down by about 20 dB after two
    seconds: at 0.9 it still reaches Janus at about -20 dBov, past its talking threshold (25)."""
    silence = lambda seconds: [0] * round(seconds * RATE)  # noqa: E731
    return _write(path, silence(silence_before_s) + _sine(frequency, tone_s, 0.9) + silence(silence_after_s))


def chromium_args(wav: Path) -> list[str]:
    """Flags for one participant's browser: a fake microphone playing `wav`, no permission prompt,
    ICE over loopback, audio that plays without a click."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
    ]


def goertzel_power(samples: list[float], frequency: float, rate: int = RATE) -> float:
    """Power of one frequency in `samples`, normalised by length (a pure tone of amplitude A gives A²/4)."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coefficient * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / (len(samples) ** 2)


def tone_present(samples: list[float], frequency: float, rate: int = RATE, margin: float = 20.0) -> bool:
    """Whether `frequency` stands out (by `margin` in power) above the other frequencies around it and
    has a level one could hear: noise (what ciphertext decodes to) spreads its power evenly."""
    if not samples:
        return False
    power = goertzel_power(samples, frequency, rate)
    neighbours = [goertzel_power(samples, frequency * f, rate) for f in (0.71, 0.83, 1.19, 1.37)]
    return power > 1e-5 and power > margin * max(neighbours)


# In the page: levels in dB of the given frequencies in what `live.output` (everything she hears,
# after the per-feed gains) carries now, with the spectrum's median as the noise floor, and the
# louder of the levels 7 % below and above each (a tone is a narrow line; the noise that a decoder
# makes of ciphertext is broad, with peaks anywhere). The analyser is made once and kept.
PAGE_LEVELS_JS = """
(frequencies) => {
  const live = window.crosslineLive;
  if (!live || !live.audio || !live.output) return null;
  if (!live.testAnalyser) {
    live.testAnalyser = live.audio.createAnalyser();
    live.testAnalyser.fftSize = 8192;
    live.testAnalyser.smoothingTimeConstant = 0.2;
    live.output.connect(live.testAnalyser);
  }
  const analyser = live.testAnalyser;
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  const width = live.audio.sampleRate / analyser.fftSize;
  const level = (f) => {
    const i = Math.round(f / width);
    return Math.max(bins[i - 1], bins[i], bins[i + 1]);
  };
  const sorted = Array.from(bins).filter(Number.isFinite).sort((a, b) => a - b);
  const floor = sorted.length ? sorted[Math.floor(sorted.length / 2)] : -200;
  return {floor: floor, levels: frequencies.map(level),
          sides: frequencies.map((f) => Math.max(level(f * 0.93), level(f * 1.07)))};
}
"""

# A tone is heard when it stands this many dB above the spectrum's median (a received tone stands
# about 100 dB above it; codec artefacts put the other tones' frequencies up to about 35 dB) and
# this many above the frequencies beside it.
HEARD_DB = 60
LINE_DB = 30


def heard(page, frequencies: list[float]) -> dict[float, float] | None:
    """dB above the noise floor of each frequency in what the page plays now."""
    result = page.evaluate(PAGE_LEVELS_JS, frequencies)
    if result is None:
        return None
    return {f: level - result["floor"] for f, level in zip(frequencies, result["levels"])}


def tones_heard(page, frequencies: list[float]) -> dict[float, bool] | None:
    """Which of `frequencies` the page plays now as a tone: loud, and a narrow line."""
    result = page.evaluate(PAGE_LEVELS_JS, frequencies)
    if result is None:
        return None
    return {f: level - result["floor"] > HEARD_DB and level - side > LINE_DB
            for f, level, side in zip(frequencies, result["levels"], result["sides"])}


def hears(page, frequency: float) -> bool:
    found = tones_heard(page, [frequency])
    return bool(found) and found[frequency]


def opus_decode(packets: list[bytes]) -> tuple[list[float], int]:
    """Decode Opus packets with libopus (installed with Janus) through ctypes: (mono samples,
    how many packets libopus refused)."""
    lib = ctypes.CDLL(ctypes.util.find_library("opus") or "libopus.so.0")
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    error = ctypes.c_int()
    decoder = lib.opus_decoder_create(RATE, 1, ctypes.byref(error))
    assert decoder and error.value == 0, f"libopus: {error.value}"
    pcm = (ctypes.c_int16 * 5760)()
    samples, refused = [], 0
    try:
        for packet in packets:
            count = lib.opus_decode(decoder, packet, len(packet), pcm, 5760, 0)
            if count < 0:
                refused += 1
            else:
                samples.extend(pcm[i] / 32768 for i in range(count))
    finally:
        lib.opus_decoder_destroy(decoder)
    return samples, refused


def decrypt_audio_frame(frame: bytes, keys: dict[int, bytes]) -> bytes:
    """The Opus packet inside one end-to-end encrypted audio frame (the format of
    live-e2ee-worker.js): TOC byte in clear, AES-GCM of the rest, IV, epoch % 256."""
    header, sealed, iv, epoch = frame[:1], frame[1:-13], frame[-13:-1], frame[-1]
    return header + AESGCM(keys[epoch]).decrypt(iv, sealed, header)
