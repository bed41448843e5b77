"""A gated level normaliser for the audio features: quiet, loud and narrow-band speech read alike.

The model sees mel columns whose energy is the mean over 80 bands from 55 Hz to 7.6 kHz (in the
contract's [-4, 4] units). Quiet speech lowers every band, and telephone speech (300-3400 Hz)
leaves a third of them empty, so the same words read as far less energy. The leveller applies
one gain per mel column, in the linear mel domain (what a gain on the samples would do, with the
spectral shape untouched), so that the gated mean energy of the speech heard so far reaches a
target. It measures energy as the features do, so a band-limited voice gets the extra gain
loudness normalisation (ITU-R BS.1770) would not give it.

Gating keeps silence and background noise closed: only columns whose level (mean square in the
mel range, dBFS) reaches `gate_dbfs`, and comes within `relative_gate_db` of the speech so far
(as ITU-R BS.1770 gates its blocks), count towards the reference, columns below the gate get no
boost (a soft knee of `knee_db` blends the two) and are pushed further down by a 1:`expansion`
downward expander. Column c's gain depends on columns 0..c only, which the features already
hold when they compute it: a live feed needs no look-ahead beyond the model's, and the result
does not depend on how the audio was chunked.
"""

from __future__ import annotations

import math

import numpy as np

from media_server.config import LevellingConfig

UNITS_PER_DB = 8.0 / 100.0  # the contract maps 100 dB of mel onto 8 units
MIN_ACTIVE = 0.25  # share of bands assumed to carry speech when almost none do
COLUMNS_PER_SECOND = 80  # hop 200 at 16 kHz


class Leveller:
    """Per-column gains (dB) for one utterance's mel columns, fed in order."""

    def __init__(self, settings: LevellingConfig) -> None:
        self._settings = settings
        self._memory = max(1, round(settings.memory_s * COLUMNS_PER_SECOND))
        self._count = 0
        self._energy = 0.0  # moving mean of gated columns' energy, unity gain
        self._active = 0.0  # ... and of the share of their bands above silence
        self._power = 0.0  # ... and of their mean square: the relative gate's reference

    def gains_db(self, energy: np.ndarray, active: np.ndarray, level_db: np.ndarray) -> np.ndarray:
        """Gains for K columns, given each one's energy (contract units, unity gain), share of bands
        above silence, and level (dBFS)."""
        s = self._settings
        gains = np.empty(len(level_db), np.float32)
        for column, level in enumerate(level_db.tolist()):
            relative = 10.0 * math.log10(self._power) - s.relative_gate_db if self._count else s.gate_dbfs
            if level >= max(s.gate_dbfs, relative):
                self._count += 1
                weight = 1.0 / min(self._count, self._memory)
                self._energy += weight * (float(energy[column]) - self._energy)
                self._active += weight * (float(active[column]) - self._active)
                self._power += weight * (10.0 ** (level / 10.0) - self._power)
            boost = 0.0
            if self._count:
                wanted = (s.target_energy - self._energy) / max(self._active, MIN_ACTIVE) / UNITS_PER_DB
                boost = min(max(wanted, -s.max_cut_db), s.max_boost_db)
            knee = min(max((level - s.gate_dbfs) / s.knee_db, 0.0), 1.0)
            below = max(0.0, s.gate_dbfs - level)
            gains[column] = knee * boost + (1.0 - knee) * min(boost, 0.0) - (s.expansion - 1.0) * below
        return gains
