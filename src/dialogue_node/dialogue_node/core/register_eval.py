"""Evaluation CLI of the register converter and classifier on labelled Korean sentences.

    python -m dialogue_node.core.register_eval [--data ../shared/data] --out report.json

Sources (see :mod:`.register_data`): SmileStyle's parallel ``informal`` / ``formal`` / ``gentle``
columns (CC BY-NC, evaluation only), StyleKQC's casual and honorific rows (CC BY-SA, no parallel
reference) and our authored fixture (parallel, all three registers). For each direction
(source register → target register) it reports, per half (dev / test):

- ``n``: source sentences (texts) whose register the classifier agrees with the label;
- ``kept``: share the converter returned confidently (not flagged, and judged in the target
  register by the classifier) — what a training-data builder keeps;
- ``flagged_by_rules``: share the converter's own rules refused;
- ``register_accuracy``: share of all outputs judged in the target register (a flagged text
  counts as its unchanged source), and ``register_accuracy_unflagged`` among those the rules
  did not refuse (before the classifier's check);
- with a parallel reference in the target register: ``exact`` (equal once spaces and
  punctuation are removed) and ``similarity`` (character-level ``difflib`` ratio, same
  normalisation) over the kept outputs, against ``baseline_similarity`` of the unconverted
  source to the same references;
- speed: kiwipiepy load time and ms per sentence.

The classifier judges with kiwipiepy (:func:`dialogue_node.core.register.clause_registers`):
every clause ending of every sentence must be in the target register. The classifier is also
scored against the datasets' own labels (``classifier``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from agechat_ros.labels import FORMAL, POLITE, REGISTERS
from dialogue_node.core.morphology import load_kiwi
from dialogue_node.core.register import MIXED, UNKNOWN, clause_registers, split_sentences
from dialogue_node.core.register_convert import RegisterConverter
from dialogue_node.core.register_data import (
    HALVES,
    HONORIFIC,
    ParallelRow,
    default_data_dir,
    missing_reason,
    read_fixture,
    smilestyle_rows,
    stylekqc_sentences,
)

FIXTURE = Path(__file__).resolve().parents[2] / 'test' / 'fixtures' / 'register_sentences.tsv'
_NORMALISE = re.compile(r'[\s.,!?~…·"\'“”‘’]+')
DIRECTIONS = [(a, b) for a in REGISTERS for b in REGISTERS if a != b]


def normalise(text: str) -> str:
    """Return `text` without spaces and punctuation (for reference comparison)."""
    return _NORMALISE.sub('', text)


def similarity(a: str, b: str) -> float:
    """Return the character-level similarity (difflib ratio) of two normalised texts."""
    return difflib.SequenceMatcher(None, normalise(a), normalise(b), autojunk=False).ratio()


def direction_name(source: str, target: str) -> str:
    """Return the report key of a direction, e.g. ``polite->formal``."""
    return f'{source}->{target}'


class _Tally:
    """Counts of one (source, half, direction)."""

    def __init__(self):
        self.n = 0
        self.kept = 0
        self.flagged = 0
        self.judged_target = 0
        self.judged_target_unflagged = 0
        self.with_reference = 0
        self.exact = 0
        self.similarity = 0.0
        self.baseline = 0.0
        self.kept_with_reference = 0
        self.kept_exact = 0
        self.kept_similarity = 0.0
        self.kept_baseline = 0.0

    def summary(self) -> Dict[str, object]:
        def share(count, total):
            return round(count / total, 4) if total else None

        unflagged = self.n - self.flagged
        return {
            'n': self.n,
            'kept': share(self.kept, self.n),
            'flagged_by_rules': share(self.flagged, self.n),
            'register_accuracy': share(self.judged_target, self.n),
            'register_accuracy_unflagged': share(self.judged_target_unflagged, unflagged),
            'with_reference': self.with_reference,
            'kept_with_reference': self.kept_with_reference,
            'exact': share(self.kept_exact, self.kept_with_reference),
            'similarity': share(self.kept_similarity, self.kept_with_reference),
            'baseline_similarity': share(self.kept_baseline, self.kept_with_reference),
            'exact_all': share(self.exact, self.with_reference),
            'similarity_all': share(self.similarity, self.with_reference),
            'baseline_similarity_all': share(self.baseline, self.with_reference),
        }


class Evaluator:
    """Runs the converter over labelled texts and keeps per-direction counts and samples."""

    def __init__(self, kiwi=None, samples_per_direction: int = 0):
        started = time.perf_counter()
        self.kiwi = kiwi if kiwi is not None else load_kiwi()
        self.load_s = time.perf_counter() - started
        # the check is done here, so that rules and classifier can be told apart
        self.converter = RegisterConverter(self.kiwi, check=False)
        self.tallies: Dict[Tuple[str, str, str], _Tally] = defaultdict(_Tally)
        self.samples: Dict[str, List[Dict[str, object]]] = defaultdict(list)
        self.samples_per_direction = samples_per_direction
        self.sentence_ms: List[float] = []
        self.classifier: Dict[Tuple[str, str], Dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )

    def judge(self, text: str) -> str:
        """Return the classifier's register of `text`, every clause of every sentence counted.

        Stricter than :func:`classify_text` (which judges each sentence by its last ending):
        a sentence with one clause left in another register is 'mixed'.
        """
        found = set()
        for sentence in split_sentences(text):
            final, clauses = clause_registers(sentence, self.kiwi)
            found.update(r for r in [final] + clauses if r is not None)
        if not found:
            return UNKNOWN
        return found.pop() if len(found) == 1 else MIXED

    def convert_one(self, source_name: str, half: str, text: str, source: str, target: str,
                    reference: Optional[str]) -> Dict[str, object]:  # fmt: skip
        """Convert one text, count it, and return what happened."""
        started = time.perf_counter()
        result = self.converter.convert(text, target)
        elapsed = (time.perf_counter() - started) * 1000
        sentences = max(1, len(result.sentences))
        self.sentence_ms.extend([elapsed / sentences] * sentences)
        flagged = not result.ok
        judged = self.judge(result.text)
        kept = not flagged and judged == target
        tally = self.tallies[(source_name, half, direction_name(source, target))]
        tally.n += 1
        tally.flagged += flagged
        tally.kept += kept
        tally.judged_target += judged == target
        if not flagged:
            tally.judged_target_unflagged += judged == target
        record = {
            'source': text,
            'target': target,
            'output': result.text,
            'kept': kept,
            'judged': judged,
            'reasons': result.reasons,
        }
        if reference:
            sim = similarity(result.text, reference)
            base = similarity(text, reference)
            exact = normalise(result.text) == normalise(reference)
            tally.with_reference += 1
            tally.similarity += sim
            tally.baseline += base
            tally.exact += exact
            if kept:
                tally.kept_with_reference += 1
                tally.kept_similarity += sim
                tally.kept_baseline += base
                tally.kept_exact += exact
            record.update(reference=reference, similarity=round(sim, 3))
        key = f'{source_name}/{half}/{direction_name(source, target)}'
        if len(self.samples[key]) < self.samples_per_direction:
            self.samples[key].append(record)
        return record

    def run_parallel(self, rows: Iterable[ParallelRow]) -> None:
        """Convert each row's texts into the other registers, with references."""
        for row in rows:
            present = {}
            for register, text in row.texts.items():
                judged = self.judge(text)
                self.classifier[(row.source, register)][judged] += 1
                if judged == register:
                    present[register] = text
            for source, target in DIRECTIONS:
                if source in present:
                    reference = present.get(target)
                    self.convert_one(row.source, row.half, present[source], source, target,
                                     reference)  # fmt: skip

    def run_labelled(self, name: str, half: str, texts: Sequence[Tuple[str, str]]) -> None:
        """Convert texts labelled casual / honorific (no references) into the other registers."""
        for text, label in texts:
            judged = self.judge(text)
            agrees = judged == label or (label == HONORIFIC and judged in (POLITE, FORMAL))
            self.classifier[(name, label)]['agree' if agrees else str(judged)] += 1
            if not agrees:
                continue
            for target in REGISTERS:
                if target != judged:
                    self.convert_one(name, half, text, judged, target, None)

    def report(self) -> Dict[str, object]:
        """Return the JSON-able report."""
        directions: Dict[str, Dict[str, Dict[str, object]]] = defaultdict(dict)
        for (source, half, direction), tally in sorted(self.tallies.items()):
            directions[f'{source}/{half}'][direction] = tally.summary()
        ms = sorted(self.sentence_ms)

        def percentile(q):
            return round(ms[min(len(ms) - 1, int(q * len(ms)))], 3) if ms else None

        classifier = {
            f'{source}/{label}': dict(counts)
            for (source, label), counts in sorted(self.classifier.items())
        }
        return {
            'directions': dict(directions),
            'classifier': classifier,
            'speed': {
                'kiwi_load_s': round(self.load_s, 3),
                'sentences': len(ms),
                'ms_per_sentence_mean': round(sum(ms) / len(ms), 3) if ms else None,
                'ms_per_sentence_p50': percentile(0.5),
                'ms_per_sentence_p95': percentile(0.95),
            },
            'samples': dict(self.samples),
        }


def evaluate(data_dir: Optional[Path] = None, halves: Sequence[str] = HALVES,
             sources: Sequence[str] = ('fixture', 'smilestyle', 'stylekqc'),
             samples: int = 0, kiwi=None) -> Dict[str, object]:  # fmt: skip
    """Evaluate on `sources` (the shared ones are skipped with a note when absent)."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    evaluator = Evaluator(kiwi, samples)
    notes = []
    if 'fixture' in sources:
        evaluator.run_parallel(read_fixture(FIXTURE))
    shared = [s for s in sources if s != 'fixture']
    absent = missing_reason(data_dir) if shared else None
    if absent:
        notes.append(absent + ' (SmileStyle and StyleKQC skipped)')
    else:
        for half in halves:
            if 'smilestyle' in shared:
                evaluator.run_parallel(smilestyle_rows(data_dir, half))
            if 'stylekqc' in shared:
                texts = [(s.text, s.label) for s in stylekqc_sentences(data_dir, half)]
                evaluator.run_labelled('stylekqc', half, texts)
    report = evaluator.report()
    report['notes'] = notes
    report['data_dir'] = str(data_dir)
    return report


def format_table(report: Dict[str, object]) -> str:
    """Return the per-direction numbers as a text table."""
    lines = [
        f'{"set":<22}{"direction":<17}{"n":>5}{"kept":>7}{"reg.acc":>8}{"reg.unfl":>9}'
        f'{"n_ref":>6}{"exact":>7}{"sim":>6}{"base":>6}'
    ]

    def cell(value, width):
        return f'{value:>{width}.2f}' if isinstance(value, float) else f'{"-":>{width}}'

    for name, directions in report['directions'].items():
        for direction, row in directions.items():
            lines.append(
                f'{name:<22}{direction:<17}{row["n"]:>5}{cell(row["kept"], 7)}'
                f'{cell(row["register_accuracy"], 8)}{cell(row["register_accuracy_unflagged"], 9)}'
                f'{row["kept_with_reference"]:>6}{cell(row["exact"], 7)}'
                f'{cell(row["similarity"], 6)}{cell(row["baseline_similarity"], 6)}'
            )
    speed = report['speed']
    lines.append(
        f'speed: kiwipiepy load {speed["kiwi_load_s"]} s, per sentence mean '
        f'{speed["ms_per_sentence_mean"]} ms, p50 {speed["ms_per_sentence_p50"]} ms, '
        f'p95 {speed["ms_per_sentence_p95"]} ms ({speed["sentences"]} sentences)'
    )
    for note in report.get('notes', []):
        lines.append('note: ' + note)
    return '\n'.join(lines)


def main(argv=None) -> int:
    """Run the evaluation and print the per-direction table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', help='shared data folder (default: ../shared/data)')
    parser.add_argument('--out', help='write the JSON report here')
    parser.add_argument('--half', choices=HALVES, action='append', help='dev and/or test')
    parser.add_argument('--source', choices=('fixture', 'smilestyle', 'stylekqc'), action='append')
    parser.add_argument('--samples', type=int, default=10, help='samples kept per direction')
    args = parser.parse_args(argv)
    report = evaluate(
        args.data,
        halves=args.half or HALVES,
        sources=args.source or ('fixture', 'smilestyle', 'stylekqc'),
        samples=args.samples,
    )
    print(format_table(report))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, ensure_ascii=False, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
