"""Evaluation CLI of the dialogue model.

On any prompts file (the issue's interface; the default model is the shipped retrieval index):

    python -m dialogue_node.core.evaluate --prompts FILE.tsv --out replies.tsv [--model DIR]

FILE is tab-separated with a header and the columns ``prompt, age_group, emotion`` (optional
``reference``). The output repeats them and adds ``reply``, ``register`` (classifier),
``register_ok``, ``source`` (retrieved / say_less / clock / gpt2 / fallback), ``score``,
``matched_question``, ``latency_ms`` and ``first_sentence_ms``; a JSON summary is printed
(register accuracy per age group, distinct-1/2, distinct reply ratio, repeated replies, latency
p50/p95, sources). ``--heldout`` writes ChatbotData's held-out split as such a file first.

Without ``--prompts`` (GPT-2 checkpoints on the authored corpus, the previous evaluation) it
measures held-out answer perplexity, register accuracy per age group, intent relevance and emotion
conditioning on held-out paraphrases, distinct-n, looping and capped replies, latency.

    python -m dialogue_node.core.evaluate --model src/dialogue_node/models/embedded \
        --out out/eval/dialogue.json

Replies are generated with the node's default decoding (sampling, fixed seed) through the same
:class:`DialogueEngine` the node uses. Intent relevance: the reply (emotion opener removed) is
matched to the nearest answer of the corpus by character-bigram overlap; it counts as relevant when
that answer belongs to the question's intent.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from dialogue_node.core.corpus import Corpus, compose_answer, heldout_cases, load_corpus
from dialogue_node.core.engine import KIND_MODEL, DialogueEngine
from dialogue_node.core.labels import AGE_GROUPS, EMOTIONS, normalize_age, normalize_emotion
from dialogue_node.core.register import REGISTER_FOR_AGE, classify_text


def _bigrams(text: str) -> set:
    compact = ''.join(text.split())
    return {compact[i : i + 2] for i in range(len(compact) - 1)}


def _dice(a: set, b: set) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


class ReplyJudge:
    """Nearest-neighbour judge of a reply's intent and emotion opener against the corpus."""

    def __init__(self, corpus: Corpus):
        self.answers = [
            (intent, _bigrams(a))
            for intent in corpus.intents
            for age in AGE_GROUPS
            for a in corpus.answers[intent][age]
        ]
        self.openers = [
            (emotion, age, opener)
            for emotion, by_age in corpus.emotion_openers.items()
            for age, texts in by_age.items()
            for opener in texts
        ]

    def emotion_of(self, reply: str, age: str) -> Tuple[str, str]:
        """Return the emotion whose opener the reply starts with, and the reply without it.

        The emotion is 'neutral' when the reply starts with no opener of `age`.
        """
        best, best_score, best_len = 'neutral', 0.0, 0
        for emotion, opener_age, opener in self.openers:
            if opener_age != age:
                continue
            score = _dice(_bigrams(reply[: len(opener)]), _bigrams(opener))
            if score > best_score:
                best, best_score, best_len = emotion, score, len(opener)
        if best_score < 0.6:
            return 'neutral', reply
        return best, reply[best_len:].strip()

    def intent_of(self, text: str) -> str:
        """Intent of the corpus answer nearest to `text`."""
        grams = _bigrams(text)
        return max(self.answers, key=lambda item: _dice(grams, item[1]))[0] if grams else ''


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct word n-grams / all word n-grams over the replies."""
    grams = [
        tuple(words[i : i + n])
        for t in texts
        for words in [t.split()]
        for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float('nan')
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def heldout_perplexity(generator, corpus: Corpus, seed: int = 0) -> float:
    """Return exp(mean NLL) of the answer tokens for the held-out questions.

    Each question is asked in every age group, with a random emotion and answer.
    """
    rng = random.Random(seed)
    examples = []
    for intent, question in heldout_cases(corpus):
        for age in AGE_GROUPS:
            emotion = rng.choice(EMOTIONS)
            answer = compose_answer(corpus, intent, age, emotion, rng)
            examples.append(generator.codec.training_example(question, answer, age, emotion))
    total, count = generator.answer_nll(examples)
    return math.exp(total / count)


def evaluate(
    generator,
    corpus: Optional[Corpus] = None,
    seed: int = 0,
    limit: Optional[int] = None,
    examples: int = 12,
) -> dict:
    """Generate a reply for every held-out question x age group (emotions cycled); score them."""
    corpus = corpus or load_corpus()
    judge = ReplyJudge(corpus)
    engine = DialogueEngine(generator, max_history_turns=0, seed=seed)
    cases = heldout_cases(corpus)[:limit] if limit else heldout_cases(corpus)
    per_age = {a: [0, 0] for a in AGE_GROUPS}
    relevant = emotion_ok = emotion_total = looping = capped = fallbacks = 0
    latencies, replies, shown = [], [], []
    for index, (intent, question) in enumerate(cases):
        for age_index, age in enumerate(AGE_GROUPS):
            emotion = EMOTIONS[(index + age_index) % len(EMOTIONS)]
            start = time.perf_counter()
            result = engine.reply(question, age, emotion)
            latencies.append((time.perf_counter() - start) * 1000.0)
            reply = result.reply_text
            replies.append(reply)
            register_ok = classify_text(reply) == REGISTER_FOR_AGE[age]
            per_age[age][0] += int(register_ok)
            per_age[age][1] += 1
            seen_emotion, rest = judge.emotion_of(reply, age)
            intent_ok = judge.intent_of(rest or reply) == intent
            relevant += int(intent_ok)
            emotion_ok += int(seen_emotion == emotion)
            emotion_total += 1
            looping += int(result.looping)
            capped += int(result.hit_cap)
            fallbacks += int(result.kind != KIND_MODEL)
            if (
                len(shown) < examples
                and (index * 3 + age_index) % max(1, len(cases) * 3 // examples) == 0
            ):
                shown.append(
                    {
                        'question': question,
                        'intent': intent,
                        'age': age,
                        'emotion': emotion,
                        'reply': reply,
                        'register_ok': register_ok,
                        'intent_ok': intent_ok,
                    }
                )
    n = len(replies)
    report = {
        'model': generator.name,
        'heldout_questions': len(cases),
        'replies': n,
        'heldout_answer_perplexity': round(heldout_perplexity(generator, corpus, seed), 3),
        'intent_relevance': round(relevant / n, 4),
        'emotion_accuracy': round(emotion_ok / emotion_total, 4),
        'looping_replies': looping,
        'capped_replies': capped,
        'register_fallbacks': fallbacks,
        'distinct_1': round(distinct_n(replies, 1), 4),
        'distinct_2': round(distinct_n(replies, 2), 4),
        'latency_ms_p50': round(percentile(latencies, 50), 2),
        'latency_ms_p95': round(percentile(latencies, 95), 2),
        'examples': shown,
    }
    for age, (ok, total) in per_age.items():
        report[f'register_accuracy_{age}'] = round(ok / total, 4)
    return report


PROMPT_COLUMNS = ('prompt', 'age_group', 'emotion')
OUTPUT_COLUMNS = (
    'reply',
    'register',
    'register_ok',
    'source',
    'score',
    'matched_question',
    'latency_ms',
    'first_sentence_ms',
)


def read_prompts(path) -> List[dict]:
    """Read a prompts TSV (header with prompt, age_group, emotion; optional reference)."""
    with open(path, encoding='utf-8', newline='') as handle:
        reader = csv.DictReader(handle, delimiter='\t', quoting=csv.QUOTE_NONE)
        missing = [c for c in PROMPT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f'{path}: missing columns {missing} (header: {reader.fieldnames})')
        return [dict(row) for row in reader]


def evaluate_prompts(engine: DialogueEngine, rows: Sequence[dict]) -> Tuple[List[dict], dict]:
    """Reply to every row (no history between rows); return the output rows and the summary."""
    out, latencies, firsts, replies = [], [], [], []
    per_age: dict = {}
    sources: Counter = Counter()
    for row in rows:
        age = normalize_age(row['age_group'])
        emotion = normalize_emotion(row.get('emotion') or 'neutral')
        start = time.perf_counter()
        result = engine.reply(row['prompt'], age, emotion)
        elapsed = (time.perf_counter() - start) * 1000.0
        register = classify_text(result.reply_text)
        ok = register == REGISTER_FOR_AGE[age]
        good, total = per_age.get(age, (0, 0))
        per_age[age] = (good + int(ok), total + 1)
        source = result.source if result.kind == KIND_MODEL else result.kind
        sources[source] += 1
        # retrieval and rule replies are complete at once; the generator's first sentence is
        # counted with the full reply too (the node publishes whole replies)
        first_ms = elapsed
        latencies.append(elapsed)
        firsts.append(first_ms)
        replies.append(result.reply_text)
        out.append(
            {
                **row,
                'reply': result.reply_text,
                'register': register,
                'register_ok': int(ok),
                'source': source,
                'score': round(result.score, 3),
                'matched_question': result.matched_question,
                'latency_ms': round(elapsed, 2),
                'first_sentence_ms': round(first_ms, 2),
            }
        )
    counts = Counter(replies)
    summary = {
        'model': getattr(engine.generator, 'name', ''),
        'replies': len(replies),
        'register_accuracy': round(sum(g for g, _ in per_age.values()) / max(1, len(replies)), 4),
        'distinct_1': round(distinct_n(replies, 1), 4),
        'distinct_2': round(distinct_n(replies, 2), 4),
        'distinct_reply_ratio': round(len(counts) / max(1, len(replies)), 4),
        'repeated_replies': sum(c for c in counts.values() if c > 1),
        'latency_ms_p50': round(percentile(latencies, 50), 2),
        'latency_ms_p95': round(percentile(latencies, 95), 2),
        'first_sentence_ms_p50': round(percentile(firsts, 50), 2),
        'first_sentence_ms_p95': round(percentile(firsts, 95), 2),
        'sources': dict(sources),
    }
    for age, (good, total) in sorted(per_age.items()):
        summary[f'register_accuracy_{age}'] = round(good / total, 4)
    return out, summary


def write_replies(path, rows: Sequence[dict]) -> None:
    """Write the output rows as TSV (input columns first, then :data:`OUTPUT_COLUMNS`)."""
    columns = list(dict.fromkeys([k for row in rows for k in row if k not in OUTPUT_COLUMNS]))
    columns += list(OUTPUT_COLUMNS)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', encoding='utf-8', newline='') as handle:
        writer = csv.DictWriter(
            handle,
            columns,
            delimiter='\t',
            lineterminator='\n',
            quoting=csv.QUOTE_NONE,
            escapechar='\\',
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({k: str(row.get(k, '')).replace('\t', ' ') for k in columns})


def _prompts_main(args) -> int:
    from dialogue_node.core.backend import engine_of, load_backend

    if args.heldout:
        from dialogue_node.core import chatbot_data
        from dialogue_node.core.retrieval_data import write_heldout_prompts

        parts = chatbot_data.split_pairs(chatbot_data.load_pairs(args.data))
        write_heldout_prompts(parts['heldout'], Path(args.prompts))
    settings = None
    if args.model and engine_of(args.model) == 'gpt2':
        from dialogue_node.core.model import GenerationSettings  # torch only for GPT-2

        settings = GenerationSettings()
    backend = load_backend(args.model or None, threads=args.threads, settings=settings)
    engine = DialogueEngine(backend, max_history_turns=0, seed=args.seed)
    rows = read_prompts(args.prompts)[: args.limit] if args.limit else read_prompts(args.prompts)
    out, summary = evaluate_prompts(engine, rows)
    if args.out:
        write_replies(args.out, out)
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    return 0


def main(argv=None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description='Evaluate the dialogue model on a prompts TSV (or, without --prompts, a '
        'GPT-2 checkpoint on the authored corpus).'
    )
    parser.add_argument(
        '--model',
        default='',
        help='retrieval index or GPT-2 checkpoint directory (default: shipped)',
    )
    parser.add_argument('--prompts', help='TSV: prompt, age_group, emotion[, reference]')
    parser.add_argument(
        '--heldout',
        action='store_true',
        help="first write ChatbotData's held-out split to --prompts",
    )
    parser.add_argument('--data', help='shared data directory for --heldout (../shared/data)')
    parser.add_argument('--corpus', help='corpus JSON (default: the bundled corpus)')
    parser.add_argument('--out', help='write the JSON report here')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--limit', type=int, help='evaluate only the first N held-out questions')
    args = parser.parse_args(argv)
    if args.prompts:
        return _prompts_main(args)
    if not args.model:
        parser.error('--model is required without --prompts')
    from dialogue_node.core.model import GenerationSettings, Generator

    generator = Generator.from_checkpoint(args.model, GenerationSettings(), threads=args.threads)
    report = evaluate(generator, load_corpus(args.corpus), args.seed, args.limit)
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + '\n', encoding='utf-8')
    print(text)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
