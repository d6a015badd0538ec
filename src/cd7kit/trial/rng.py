"""Random streams for trial simulation: R's Mersenne-Twister, exactly, and a fast numpy generator.

R (``RNGkind("Mersenne-Twister")``, the default) seeds with ``set.seed(s)`` by scrambling ``s`` with
the linear congruential generator ``seed = 69069 * seed + 1 (mod 2^32)`` 50 times, then filling the
625-word seed vector with 625 further iterations; word 0 (``mti``) is overwritten with 624 and words
1..624 are the MT19937 key (R source ``src/main/RNG.c``: ``Randomize``/``RNG_Init``/``FixupSeeds``).
``runif()`` is the 32-bit MT19937 output times 2.3283064365386963e-10 (R's ``MT_genrand``); R's
``fixup`` only replaces an exact 0 or 1, which a 32-bit output times 2^-32 can give only as 0.

numpy's ``MT19937`` bit generator implements the same MT19937 recurrence and tempering, so setting its
key and position 624 and reading ``random_raw()`` reproduces R's stream (spec escalation.md §2.6;
``set.seed(123); runif(3)`` = 0.2875775 0.7883051 0.4089769).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_MASK = 0xFFFFFFFF
_TWO_M32 = 2.3283064365386963e-10  # 2^-32, the factor of R's MT_genrand
_R_ZERO_FIX = 0.5 * 2.328306437080797e-10  # R's fixup for an exact 0: 0.5 * i2_32m1 = 0.5 / (2^32 - 1)


def r_seed_key(seed: int) -> np.ndarray:
    """The 624-word MT19937 key that R's ``set.seed(seed)`` produces (Mersenne-Twister, default kind)."""
    s = int(seed) & _MASK
    for _ in range(50):
        s = (69069 * s + 1) & _MASK
    words = np.empty(625, dtype=np.uint32)
    for j in range(625):
        s = (69069 * s + 1) & _MASK
        words[j] = s
    return words[1:].copy()


@njit(cache=True)
def _mt_runif(mt, pos, k):  # pragma: no cover - compiled
    """MT19937 (Matsumoto & Nishimura 1998) outputs as R's unif_rand; ``mt`` (624 uint32) and ``pos[0]`` advance."""
    out = np.empty(k)
    i = pos[0]
    for j in range(k):
        if i >= 624:
            for kk in range(624):
                yv = (mt[kk] & np.uint32(0x80000000)) | (mt[(kk + 1) % 624] & np.uint32(0x7FFFFFFF))
                v = mt[(kk + 397) % 624] ^ (yv >> np.uint32(1))
                if yv & np.uint32(1):
                    v ^= np.uint32(0x9908B0DF)
                mt[kk] = v
            i = 0
        yv = mt[i]
        i += 1
        yv ^= yv >> np.uint32(11)
        yv ^= (yv << np.uint32(7)) & np.uint32(0x9D2C5680)
        yv ^= (yv << np.uint32(15)) & np.uint32(0xEFC60000)
        yv ^= yv >> np.uint32(18)
        x = float(yv) * 2.3283064365386963e-10
        out[j] = x if x > 0.0 else 0.5 * 2.328306437080797e-10
    pos[0] = i
    return out


class RStream:
    """R's ``runif`` stream after ``set.seed(seed)``; ``runif(k)`` returns the next k uniforms.

    ``engine="numba"`` (default) runs MT19937 compiled; ``engine="numpy"`` uses numpy's MT19937 bit
    generator with R's key (the reference the compiled one is tested against).
    """

    def __init__(self, seed: int, engine: str = "numba"):
        self.seed = int(seed)
        self.engine = engine
        key = r_seed_key(seed)
        self._mt = key.copy()
        self._pos = np.array([624], dtype=np.int64)
        self._bg = np.random.MT19937()
        self._bg.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": 624}}

    def runif(self, k: int) -> np.ndarray:
        if self.engine == "numba":
            return _mt_runif(self._mt, self._pos, int(k))
        u = self._bg.random_raw(int(k)).astype(np.float64) * _TWO_M32
        u[u <= 0.0] = _R_ZERO_FIX
        return u


class NumpyStream:
    """A fast stream of uniforms from numpy's default generator (PCG64); not R-compatible."""

    def __init__(self, seed: int | None):
        self.seed = seed
        self._gen = np.random.default_rng(seed)

    def runif(self, k: int) -> np.ndarray:
        return self._gen.random(int(k))


def make_stream(rng: str, seed: int | None) -> RStream | NumpyStream:
    """``rng="r"``: R's Mersenne-Twister after ``set.seed(seed)``; ``rng="numpy"``: PCG64."""
    if rng == "r":
        return RStream(6 if seed is None else seed)
    if rng == "numpy":
        return NumpyStream(seed)
    from cd7kit.errors import InputError, Problem

    raise InputError([Problem("unknown random generator", column="rng", value=rng, expected="'r' or 'numpy'")])


__all__ = ["r_seed_key", "RStream", "NumpyStream", "make_stream"]
