"""The one shared kiwipiepy analyser of the package (Korean morphology, loaded once).

kiwipiepy (LGPL-3.0, model in the ``kiwipiepy_model`` wheel, no download at run time) tags each
morpheme with Sejong-style tags (EF = sentence-final ending, EP = pre-final ending such as the
honorific 시, EC = connective ending, VX = auxiliary verb, …) and re-joins morphemes into text
(``Kiwi.join``), contractions and allomorphs included. Loading takes about 1 s and ~310 MB of
memory (the multi-word dictionary, another ~180 MB, is not loaded: it only adds multi-word proper
nouns). A few honorific verb forms the model splits wrongly ('드세요' → 드세/VA + 어요, '하고
계세요' → 계/NNG + 이/VCP + 세요) are added as pre-analysed words.
"""

from __future__ import annotations

import threading
from typing import Optional

_LOCK = threading.Lock()
_KIWI = None

#: Surface forms kiwipiepy 0.24 mis-analyses, with their analysis (form, tag, start, end).
_PRE_ANALYSED = {
    '드세요': [('드시', 'VV', 0, 2), ('어요', 'EF', 1, 3)],
    '주무세요': [('주무시', 'VV', 0, 3), ('어요', 'EF', 2, 4)],
    '계세요': [('계시', 'VV', 0, 2), ('어요', 'EF', 1, 3)],
    '잡수세요': [('잡수시', 'VV', 0, 3), ('어요', 'EF', 2, 4)],
}


def load_kiwi(num_workers: int = 1):
    """Return a new kiwipiepy analyser with the fixes of this module (about 1 s)."""
    from kiwipiepy import Kiwi

    kiwi = Kiwi(num_workers=num_workers, load_multi_dict=False)
    for form, analysis in _PRE_ANALYSED.items():
        kiwi.add_pre_analyzed_word(form, analysis, 5.0)
    return kiwi


def get_kiwi():
    """Return the process-wide analyser, loading it on first use (thread-safe)."""
    global _KIWI
    if _KIWI is None:
        with _LOCK:
            if _KIWI is None:
                _KIWI = load_kiwi()
    return _KIWI


def loaded_kiwi() -> Optional[object]:
    """Return the process-wide analyser if it is already loaded, else None (never loads)."""
    return _KIWI


#: Tag prefixes of the morphemes that carry a question's content (nouns, verb and adjective
#: stems, roots, adverbs, numbers, foreign words, interjections, determiners); endings and
#: particles are left out.
CONTENT_TAGS = ('NN', 'NR', 'VV', 'VA', 'VX', 'VCN', 'XR', 'MAG', 'MM', 'IC', 'SL', 'SN')


def content_morphemes(text: str, kiwi=None) -> list:
    """Return the content morphemes of `text` as 'form/TAG' keys (TAG cut to two letters).

    Irregular stems are reduced to their base ('-R'/'-I' tag suffixes dropped), so '졸려' and
    '졸리다' share '졸리/VA'.
    """
    keys = []
    for token in (kiwi or get_kiwi()).tokenize(text):
        tag = token.tag.split('-')[0]
        if tag.startswith(CONTENT_TAGS):
            keys.append(f'{token.form}/{tag[:2]}')
    return keys
