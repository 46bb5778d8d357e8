"""Where the text says the lips meet: the sentence's vowel nuclei and bilabials, aligned to the
loudness peaks of its audio (made-up peaks here; the real voice in test_mouth)."""

from __future__ import annotations

import numpy as np

from appliance.face.syllables import Syllables, align


def test_russian_letters_give_nuclei_and_bilabials():
    s = Syllables.of("Мама, папа.")
    assert s.nuclei == 4
    assert s.bilabial == (True, True, True, True, False)      # м-а-м-а, п-а-п-а, nothing after
    s = Syllables.of("Тётя Таня, тут тесто.")
    assert s.nuclei == 7 and not any(s.bilabial)
    assert Syllables.of("Ауди").nuclei == 3                    # each Russian vowel letter is one


def test_english_spelling_is_read_for_its_sounds():
    assert Syllables.of("phone").bilabial == (False, False)    # ph is an f
    assert not any(Syllables.of("psychology").bilabial)        # a silent p
    assert Syllables.of("time").nuclei == 1                    # a silent final e
    s = Syllables.of("Baby, bob.")
    assert s.nuclei == 3 and s.bilabial == (True, True, True, True)   # the final b of "bob" too
    assert Syllables.of("...") is None


def test_digits_keep_the_audios_closures():
    # the TTS spells 300 out in words the letters do not show: the lips may meet there
    s = Syllables.of("300")
    assert s.nuclei == 6 and all(s.bilabial)


def _peaks_at(syl: Syllables, rate: float, t0: float) -> np.ndarray:
    return t0 + rate * np.asarray(syl.positions)


def test_peaks_where_the_letters_put_them_take_their_nuclei_flags():
    syl = Syllables.of("Мама мыла раму.")        # М а м а м ы л а р а м у: no bilabial before ла, ра
    flags = align(_peaks_at(syl, 0.07, 0.3), syl, 0.3).lips
    assert list(flags) == [True, True, True, False, False, True, False]


def test_a_missed_peak_does_not_shift_the_rest():
    # the TTS ran two syllables together («ыла» -> one peak): the later gaps still find their
    # consonants, because the timing keeps them in place
    syl = Syllables.of("Тётя мыла тарелку.")     # те-тя-мы-ла-та-рел-ку
    peaks = np.delete(_peaks_at(syl, 0.07, 0.3), 3)
    flags = align(peaks, syl, 0.3).lips
    assert list(flags) == [False, False, True, False, False, False, False]


def test_a_sentence_not_all_here_aligns_its_start():
    # only the first piece of a long sentence has arrived: its peaks are its first nuclei
    syl = Syllables.of("Билет стоит триста рублей, а для детей бесплатно.")
    flags = align(_peaks_at(syl, 0.075, 0.2)[:4], syl, 0.2).lips
    assert list(flags) == [True, False, False, False, False]
