"""A thin, thread-safe `ctypes` binding to espeak-ng, loaded from the `espeakng-loader` wheel.

The wheel bundles `libespeak-ng` and its data, so no system package or root access is needed. Two calls are
exposed: [`synthesize`] (text -> 22.05 kHz float32 waveform) and [`phonemize`] (text -> IPA string, the phonemes
espeak-ng itself speaks).

Determinism: espeak-ng keeps synthesis state in C statics that `espeak_Terminate`/`espeak_Initialize` do not
reset (e.g. the phase of its pitch "flutter"), so the same call returns slightly different audio depending on
what the process synthesised before, and the noise of its breathy variants (f2-f5) comes from a generator seeded
with the clock. Each call here therefore loads a private copy of the library, initialises it, seeds its generator
(and libc's `rand()`) and unloads the library afterwards, which makes every call bit-exact reproducible whatever ran
before and whenever (`docs/data.md` has the measurements). Calls are serialised by a module-level lock.

Voices are espeak-ng voice names, optionally with a variant: `"en-us"`, `"en-us+f3"`, `"en+m7"`, `"en-us+klatt2"`.
`"en"` is British English (there is no `"en-gb"` voice name in this build; `"en-gb-x-rp"` and
`"en-gb-scotland"` exist).
"""

from __future__ import annotations

import _ctypes
import atexit
import contextlib
import ctypes
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator

import numpy as np

__all__ = ["ESPEAK_SAMPLE_RATE", "EspeakError", "phonemize", "synthesize", "voice_gender"]

ESPEAK_SAMPLE_RATE = 22050

# Constants of speak_lib.h (espeak-ng 1.52).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PHONEMES_IPA = 0x02
_EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_LOCK = threading.Lock()
_PRIVATE_COPY: dict[int, str] = {}
_LIBC: dict[str, ctypes.CDLL] = {}  # pid -> path of this process's private copy of libespeak-ng


class EspeakError(RuntimeError):
    """Raised when the espeak-ng library cannot be loaded or initialised."""


def _espeakng_loader():
    try:
        import espeakng_loader
    except ImportError as error:  # pragma: no cover - the package is a dependency
        raise EspeakError("espeak-ng needs the `espeakng-loader` package: `pip install espeakng-loader`.") from error
    return espeakng_loader


def _private_library_path() -> str:
    """Path of a copy of libespeak-ng that only this module loads, so unloading it really resets its state."""
    pid = os.getpid()
    if pid not in _PRIVATE_COPY:
        directory = tempfile.mkdtemp(prefix="ardm_trl_espeak_")
        path = os.path.join(directory, "libespeak-ng-private.so")
        shutil.copyfile(_espeakng_loader().get_library_path(), path)
        atexit.register(shutil.rmtree, directory, True)
        _PRIVATE_COPY[pid] = path
    return _PRIVATE_COPY[pid]


def _libc() -> ctypes.CDLL:
    if "libc" not in _LIBC:
        _LIBC["libc"] = ctypes.CDLL(None)  # the process's C library, whose rand() libespeak-ng calls
        _LIBC["libc"].srand.argtypes = [ctypes.c_uint]
    return _LIBC["libc"]


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None


@contextlib.contextmanager
def _fresh_library(voice: str) -> Iterator[ctypes.CDLL]:
    """Hold the lock, load and initialise a fresh libespeak-ng with `voice` selected; unload it on exit."""
    if not isinstance(voice, str) or not voice:
        raise ValueError(f"`voice` must be a non-empty espeak-ng voice name such as 'en-us+f2', got {voice!r}.")
    with _LOCK:
        path = _private_library_path()
        try:
            lib = ctypes.CDLL(path)
        except OSError as error:  # pragma: no cover
            raise EspeakError(f"Could not load libespeak-ng from {path}: {error}") from error
        try:
            _declare(lib)
            data_path = _espeakng_loader().get_data_path().encode()
            sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
            if sample_rate != ESPEAK_SAMPLE_RATE:
                raise EspeakError(f"espeak_Initialize returned {sample_rate} (expected {ESPEAK_SAMPLE_RATE} Hz).")
            if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ValueError(
                    f"espeak-ng does not know the voice {voice!r}. Use a voice name with an optional variant, "
                    "e.g. 'en-us', 'en-us+f3', 'en+m7' (see `espeak-ng --voices` and `espeak-ng --voices=variant`)."
                )
            yield lib
        finally:
            lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)


def synthesize(text: str, voice: str = "en-us", pitch: int = 50, rate: int = 175) -> tuple[np.ndarray, int]:
    """Speak `text` with espeak-ng (bit-exact reproducible: the same arguments always give the same samples).

    Args:
        text (`str`): the text to speak (UTF-8; punctuation shapes the prosody).
        voice (`str`, *optional*, defaults to `"en-us"`): espeak-ng voice, optionally with a variant (`"en-us+f3"`).
        pitch (`int`, *optional*, defaults to `50`): espeak base pitch, 0-100.
        rate (`int`, *optional*, defaults to `175`): speaking rate in words per minute, 80-450.

    Returns:
        `tuple[np.ndarray, int]`: a float32 mono waveform in [-1, 1] and its sample rate (22050).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"`text` must be a non-empty string, got {text!r}.")
    if not 0 <= int(pitch) <= 100:
        raise ValueError(f"`pitch` is espeak's base pitch and must lie in [0, 100], got {pitch}.")
    if not 80 <= int(rate) <= 450:
        raise ValueError(f"`rate` is in words per minute and must lie in [80, 450], got {rate}.")
    encoded = text.encode("utf-8") + b"\0"
    chunks: list[np.ndarray] = []

    def on_audio(wav, num_samples, events):  # called by espeak_Synth, in this thread (synchronous mode)
        if wav and num_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue

    callback = _SYNTH_CALLBACK(on_audio)
    with _fresh_library(voice) as lib:
        lib.espeak_SetSynthCallback(callback)
        lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
        lib.espeak_ng_SetRandSeed(0)  # espeak-ng seeds its noise generator from the clock at initialisation
        _libc().srand(0)  # and a few code paths call libc's rand()
        status = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
        lib.espeak_Synchronize()
    if status != _EE_OK:
        raise EspeakError(f"espeak_Synth failed with status {status} for text {text[:60]!r}.")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return samples.astype(np.float32) / 32768.0, ESPEAK_SAMPLE_RATE


def phonemize(text: str, voice: str = "en-us") -> str:
    """Return the IPA phonemes espeak-ng speaks for `text` (clauses joined by a space, stress marks kept).

    Args:
        text (`str`): the text to convert.
        voice (`str`, *optional*, defaults to `"en-us"`): the voice whose language rules to use.

    Returns:
        `str`: the IPA transcription, e.g. `"həlˈoʊ wˈɜːld"` for `"hello world"`.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"`text` must be a non-empty string, got {text!r}.")
    buffer = ctypes.create_string_buffer(text.encode("utf-8"))
    pointer = ctypes.c_void_p(ctypes.addressof(buffer))
    clauses = []
    with _fresh_library(voice) as lib:
        # TextToPhonemes converts one clause per call and advances the pointer (NULL at the end of the text).
        while pointer.value:
            result = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA)
            if result:
                clauses.append(result.decode("utf-8").strip())
    return " ".join(clause for clause in clauses if clause)


_FEMALE_VARIANTS = {"annie", "anika", "anikarobot", "aunty", "belinda", "grandma", "steph", "steph2", "steph3",
                    "whisperf", "andrea", "victoria", "linda"}  # fmt: skip


def voice_gender(voice: str) -> str:
    """Gender label of an espeak-ng voice name: variants `f1`-`f5` and the named female variants are "female"."""
    variant = voice.split("+", 1)[1].lower() if "+" in voice else ""
    if (variant.startswith("f") and variant[1:].isdigit()) or variant in _FEMALE_VARIANTS:
        return "female"
    return "male"
