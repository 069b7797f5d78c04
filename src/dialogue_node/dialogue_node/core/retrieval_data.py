"""Build the shipped retrieval index: ChatbotData answers in three registers (offline).

    python -m dialogue_node.core.retrieval_data --data ../shared/data \
        --out src/dialogue_node/models/retrieval [--heldout-tsv out/dialogue/heldout.tsv]

Steps (kiwipiepy is loaded here, never in the node):

1. split ChatbotData by question (:mod:`.chatbot_data`; held-out pairs are never read again here
   except to write the optional prompts file);
2. convert every distinct answer of the training + validation questions into 반말 (casual),
   해요체 (polite) and 하십시오체 + 높임말 (formal) with :func:`.register_convert.convert`; a
   conversion is kept only when the converter is confident (``ok``) and the register classifier
   judges the result in the target register both with kiwipiepy and by its surface rules (the
   node's guard); others are dropped (the answer then lacks that register). Conversions are cached
   in ``~/.cache/agechat/chatbot_registers.json`` (``--cache``), keyed by answer text;
3. choose the retriever's "say less" threshold on the validation questions
   (:func:`choose_threshold`, validation questions left out of the index for that);
4. write ``index.json``: the training + validation questions, the answer table (three registers
   + ChatbotData label) and the authored persona entries, the threshold and how it was chosen.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from agechat_ros.labels import CASUAL, FORMAL, POLITE
from dialogue_node.core import chatbot_data
from dialogue_node.core.labels import AGE_GROUPS, EMOTIONS

TARGETS = (CASUAL, POLITE, FORMAL)
INDEX_FILE = 'index.json'
#: Weight of the content-morpheme cosine in the retrieval score (the rest: char n-grams). Chosen
#: on the validation questions (answer found at rank 1: 0.3 → 46 %, 0.5 → 47 %, 0.7 → 45 %).
MORPHEME_WEIGHT = 0.5
BUILD_COMMAND = (
    'python -m dialogue_node.core.retrieval_data --data ../shared/data '
    '--out src/dialogue_node/models/retrieval'
)


def default_cache() -> Path:
    """Return ~/.cache/agechat/chatbot_registers.json (or $XDG_CACHE_HOME/agechat/...)."""
    base = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache')
    return base / 'agechat' / 'chatbot_registers.json'


def register_variants(answer: str) -> Dict[str, Optional[str]]:
    """Return the answer in each register (None where the conversion was refused or rejected)."""
    from dialogue_node.core.morphology import get_kiwi
    from dialogue_node.core.register import classify_text
    from dialogue_node.core.register_convert import convert

    kiwi = get_kiwi()
    out: Dict[str, Optional[str]] = {}
    for target in TARGETS:
        result = convert(answer, target)
        text = result.text.strip()
        good = (
            result.ok
            and bool(text)
            and classify_text(text, kiwi) == target
            and classify_text(text) == target
        )
        out[target] = text if good else None
    return out


def convert_answers(answers: Sequence[str], cache_path: Optional[Path], log=print) -> dict:
    """Return {answer: register_variants(answer)}, reusing and updating the cache file."""
    cache: Dict[str, dict] = {}
    if cache_path and cache_path.is_file():
        cache = json.loads(cache_path.read_text(encoding='utf-8'))
    todo = [a for a in dict.fromkeys(answers) if a not in cache]
    start = time.perf_counter()
    for i, answer in enumerate(todo, 1):
        cache[answer] = register_variants(answer)
        if i % 500 == 0 or i == len(todo):
            log(f'converted {i}/{len(todo)} answers ({time.perf_counter() - start:.0f} s)')
            if cache_path:
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_path.with_suffix('.tmp')
                tmp.write_text(json.dumps(cache, ensure_ascii=False), encoding='utf-8')
                tmp.replace(cache_path)
    return {a: cache[a] for a in answers}


def index_payload(
    pairs: Sequence[chatbot_data.Pair],
    variants: dict,
    persona=None,
    morpheme_weight: float = MORPHEME_WEIGHT,
) -> dict:
    """Return the index: questions pointing into an answer table (three registers per answer).

    With a `morpheme_weight`, every question also stores its content morphemes (``"m"``) and the
    metadata the weight, so the retriever fuses both scores (:mod:`.retrieval`).
    """
    answer_ids: Dict[str, int] = {}
    answers: List[dict] = []
    questions: List[dict] = []
    for pair in pairs:
        forms = variants[pair.answer]
        if not any(forms.values()):
            continue
        if pair.answer not in answer_ids:
            answer_ids[pair.answer] = len(answers)
            answers.append({'label': pair.label, 'source': 'chatbot_data', **forms})
        questions.append({'q': pair.question, 'a': answer_ids[pair.answer]})
    for entry in persona or []:
        answers.append({'label': 0, 'source': entry['source'], 'choices': entry['answers']})
        questions.append({'q': entry['question'], 'a': len(answers) - 1})
    payload = {'questions': questions, 'answers': answers, 'meta': {}}
    if morpheme_weight:
        from dialogue_node.core.morphology import content_morphemes

        for question in questions:
            question['m'] = content_morphemes(question['q'])
        payload['meta']['morpheme_weight'] = morpheme_weight
    return payload


def _bigrams(text: str) -> set:
    compact = ''.join(text.split())
    return {compact[i : i + 2] for i in range(len(compact) - 1)}


def reference_match(reply: str, reference: str) -> bool:
    """Return True when a retrieved answer is the reference or close to it (validation proxy).

    Close: Dice of character bigrams >= 0.5, so the same answer in another register counts.
    """
    a, b = _bigrams(reply), _bigrams(reference)
    return bool(a and b) and 2 * len(a & b) / (len(a) + len(b)) >= 0.5


def choose_threshold(retriever, validation: Sequence[chatbot_data.Pair]) -> dict:
    """Choose the score under which the reply says less, on validation questions.

    Each validation question is searched in an index without the validation questions; the top
    answer (polite form, as in ChatbotData) counts as a hit when it matches the reference
    (:func:`reference_match`). The hit rate falls with the score; the threshold is the lowest
    score s such that questions scoring in [s, s + 0.05) still hit at least a third as often as
    the questions above the median score (below it, a retrieved answer is mostly about another
    topic). The factor (1/3) was set after reading 80 validation questions with their top answer
    and score: under ~0.40 the answers were mostly off-topic.
    """
    scored = []
    for pair in validation:
        hits = retriever.search(pair.question, k=1)
        if not hits:
            continue
        top = hits[0]
        text = retriever.answer_text(top.answer_id, POLITE) or ''
        scored.append((top.score, reference_match(text, pair.answer)))
    scored.sort()
    scores = [s for s, _ in scored]
    median = scores[len(scores) // 2]
    upper = [hit for s, hit in scored if s >= median]
    reference_rate = sum(upper) / len(upper)
    bins = []
    threshold = scores[0]
    for low in [round(0.05 * i, 2) for i in range(0, 20)]:
        inside = [hit for s, hit in scored if low <= s < low + 0.05]
        rate = sum(inside) / len(inside) if inside else None
        bins.append({'from': low, 'n': len(inside), 'hit_rate': rate and round(rate, 3)})
    for item in sorted(bins, key=lambda b: b['from'], reverse=True):
        if item['n'] >= 10 and (item['hit_rate'] or 0) < reference_rate / 3:
            threshold = item['from'] + 0.05
            break
    below = sum(1 for s in scores if s < threshold) / len(scores)
    return {
        'threshold': round(threshold, 3),
        'validation_questions': len(scored),
        'hit_rate_above_median': round(reference_rate, 3),
        'share_below_threshold': round(below, 3),
        'bins': bins,
    }


def write_heldout_prompts(pairs: Sequence[chatbot_data.Pair], path: Path) -> int:
    """Write the held-out questions as an evaluation prompts file (one row per age group).

    Emotions: 'sad' for ChatbotData's sad/breakup label, else cycled over the other labels with
    neutral every other row.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    others = [e for e in EMOTIONS if e != 'neutral']
    rows = 0
    with path.open('w', encoding='utf-8', newline='') as handle:
        writer = csv.writer(handle, delimiter='\t', lineterminator='\n')
        writer.writerow(['prompt', 'age_group', 'emotion', 'reference'])
        for i, pair in enumerate(pairs):
            emotion = 'sad' if pair.label == 1 else ('neutral' if i % 2 else others[i % 6])
            for age in AGE_GROUPS:
                writer.writerow([pair.question, age, emotion, pair.answer])
                rows += 1
    return rows


def build(data_dir, out_dir, cache_path: Optional[Path], heldout_tsv=None, log=print) -> dict:
    """Build and write the index (see the module docstring); return its metadata."""
    from dialogue_node.core.retrieval import Retriever

    pairs = chatbot_data.load_pairs(data_dir)
    parts = chatbot_data.split_pairs(pairs)
    log({k: len(v) for k, v in parts.items()})
    known = parts['train'] + parts['validation']
    variants = convert_answers([p.answer for p in known], cache_path, log)
    persona = chatbot_data.persona_entries()
    kept = {t: sum(1 for v in variants.values() if v[t]) for t in TARGETS}
    probe = Retriever(index_payload(parts['train'], variants, persona))
    tuning = choose_threshold(probe, parts['validation'])
    log(f'threshold {tuning}')
    payload = index_payload(known, variants, persona)
    csv_bytes = (Path(data_dir) / chatbot_data.CHATBOT_CSV).read_bytes()
    payload['meta'] = {
        'version': 2,
        'name': 'agechat-retrieval-chatbotdata-v2',
        'morpheme_weight': MORPHEME_WEIGHT,
        'sources': [
            {
                'name': 'ChatbotData (songys/Chatbot_data)',
                'licence': 'MIT',
                'sha256': hashlib.sha256(csv_bytes).hexdigest(),
                'pairs': len(pairs),
                'split': {k: len(v) for k, v in parts.items()},
            },
            {'name': 'agechat authored persona (corpus_text: name, age, help)', 'licence': 'ours'},
        ],
        'distinct_answers': len(variants),
        'answers_with_register': kept,
        'threshold': tuning['threshold'],
        'threshold_selection': tuning,
        'build_command': BUILD_COMMAND,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX_FILE).write_text(
        json.dumps(payload, ensure_ascii=False, separators=(',', ':')) + '\n', encoding='utf-8'
    )
    if heldout_tsv:
        rows = write_heldout_prompts(parts['heldout'], Path(heldout_tsv))
        log(f'{rows} held-out prompt rows -> {heldout_tsv}')
    return payload['meta']


def main(argv=None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=None, help='shared data directory (../shared/data)')
    parser.add_argument('--out', required=True, help='output directory of index.json')
    parser.add_argument('--cache', default=str(default_cache()), help="conversion cache ('' off)")
    parser.add_argument('--heldout-tsv', help='also write the held-out prompts file here')
    args = parser.parse_args(argv)
    data = Path(args.data) if args.data else chatbot_data.default_data_dir()
    meta = build(
        data,
        args.out,
        Path(args.cache) if args.cache else None,
        args.heldout_tsv,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(json.dumps({k: v for k, v in meta.items() if k != 'threshold_selection'}, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
