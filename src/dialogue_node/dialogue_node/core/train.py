"""Training CLI: train the embedded GPT-2 from scratch, or fine-tune any KoGPT2-format checkpoint.

    # embedded model (tokenizer + 4-layer, 256-wide GPT-2), a few CPU minutes:
    nice python -m dialogue_node.core.train --out src/dialogue_node/models/embedded
    # fine-tune a local KoGPT2 (e.g. a downloaded skt/kogpt2-base-v2 folder) with the same scheme:
    python -m dialogue_node.core.train --init /path/to/kogpt2-base-v2 --out /path/to/agechat-kogpt2

Examples are drawn afresh every step from the train split (random paraphrase, age group, emotion,
answer variant, sometimes 1-2 turns of history). The question is encoded with BPE-dropout and a
little `<unk>` noise so that unseen wording and unknown syllables (speech-recogniser output) still
lead somewhere sensible. The loss covers the answer tokens only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from typing import List, Optional

import torch

from dialogue_node.core.corpus import Corpus, load_corpus, sample_example
from dialogue_node.core.intent_hint import IntentMatcher
from dialogue_node.core.model import load_checkpoint, save_checkpoint
from dialogue_node.core.prompt import IGNORE_INDEX, PromptCodec
from dialogue_node.core.tokenizer import ensure_special_tokens, train_tokenizer, with_dropout


def build_scratch_model(
    vocab_size: int,
    layers: int = 4,
    width: int = 256,
    heads: int = 4,
    positions: int = 256,
    eos_id: int = 2,
    pad_id: int = 0,
):
    """Build a GPT-2 of the given shape with random weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=positions,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        resid_pdrop=0.1,
        embd_pdrop=0.1,
        attn_pdrop=0.1,
    )
    return GPT2LMHeadModel(config)


def make_batch(
    codec: PromptCodec,
    corpus: Corpus,
    rng: random.Random,
    batch_size: int,
    max_tokens: int,
    question_tokenizer=None,
    unk_prob: float = 0.0,
    history_prob: float = 0.0,
    word_dropout: float = 0.0,
):
    """Sample a padded batch (input_ids, attention_mask, labels) of fresh training examples.

    Question augmentation: each word dropped with probability `word_dropout` (one always stays),
    each token replaced by `<unk>` with probability `unk_prob`.
    """
    rows = []
    # history makes sequences long: a batch has history for all or none of its rows (less padding)
    batch_history = 1.0 if history_prob > 0 and rng.random() < history_prob else 0.0
    for _ in range(batch_size):
        ex = sample_example(corpus, rng, 'train', batch_history)
        question = ex.question
        words = question.split()
        if word_dropout > 0 and len(words) > 1:
            kept = [w for w in words if rng.random() >= word_dropout] or [rng.choice(words)]
            question = ' '.join(kept)
        q_ids = codec.encode_question(question, question_tokenizer)
        if unk_prob > 0:
            q_ids = [codec.unk_id if rng.random() < unk_prob else i for i in q_ids]
        rows.append(
            codec.training_example(
                question, ex.answer, ex.age, ex.emotion, ex.history, max_tokens, question_ids=q_ids
            )
        )
    length = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((batch_size, length), codec.pad_id, dtype=torch.long)
    labels = torch.full((batch_size, length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((batch_size, length), dtype=torch.long)
    for row, (ids, labs) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return input_ids, mask, labels


def corpus_digest(corpus: Corpus) -> str:
    """Short hash of the corpus content (recorded with the checkpoint)."""
    return hashlib.sha256(
        json.dumps(corpus.to_json(), ensure_ascii=False, sort_keys=True).encode()
    ).hexdigest()[:16]


def train(
    out: str,
    corpus: Optional[Corpus] = None,
    init: Optional[str] = None,
    steps: int = 1800,
    batch_size: int = 16,
    lr: float = 2e-3,
    warmup: int = 50,
    seed: int = 0,
    threads: int = 1,
    vocab_size: int = 2000,
    layers: int = 4,
    width: int = 256,
    heads: int = 4,
    positions: int = 256,
    bpe_dropout: float = 0.1,
    unk_prob: float = 0.08,
    history_prob: float = 0.15,
    word_dropout: float = 0.2,
    log_every: int = 50,
    name: str = 'agechat-gpt2-embedded',
    save: bool = True,
    verbose: bool = True,
    question_mode: Optional[str] = None,
    intent_hint: bool = True,
) -> dict:
    """Train (or fine-tune `init`) and save to `out`; return a summary with the loss curve.

    `question_mode` (see dialogue_node.core.prompt): default 'chars' from scratch, 'bpe'
    fine-tuning. `intent_hint`: add the retrieval hint of :mod:`dialogue_node.core.intent_hint`
    (built from the train split only) to every prompt.
    """
    question_mode = question_mode or ('bpe' if init else 'chars')
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    corpus = corpus or load_corpus()
    if init:
        model, tokenizer, added = load_checkpoint(init, 'float32')
        model.train()
        source = f'fine-tuned from {init}' + (f' (added tokens {added})' if added else '')
    else:
        tokenizer = train_tokenizer(corpus.texts(include_heldout=False), vocab_size)
        ensure_special_tokens(tokenizer)
        codec0 = PromptCodec(tokenizer, question_mode)
        model = build_scratch_model(
            tokenizer.get_vocab_size(),
            layers,
            width,
            heads,
            positions,
            codec0.eos_id,
            codec0.pad_id,
        )
        source = 'trained from scratch'
    matcher = (
        IntentMatcher({i: corpus.questions[i]['train'] for i in corpus.intents})
        if intent_hint
        else None
    )
    codec = PromptCodec(tokenizer, question_mode, matcher)
    model.config.eos_token_id = model.config.bos_token_id = codec.eos_id
    model.config.pad_token_id = codec.pad_id
    question_tokenizer = with_dropout(tokenizer, bpe_dropout) if bpe_dropout > 0 else None
    max_tokens = int(model.config.n_positions)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.05 + 0.95 * 0.5 * (
            1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))
        )

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    losses: List[float] = []
    curve = []
    start = time.monotonic()
    for step in range(steps):
        input_ids, mask, labels = make_batch(
            codec,
            corpus,
            rng,
            batch_size,
            max_tokens,
            question_tokenizer,
            unk_prob,
            history_prob,
            word_dropout,
        )
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if (step + 1) % log_every == 0 or step == steps - 1:
            mean = sum(losses[-log_every:]) / len(losses[-log_every:])
            curve.append([step + 1, round(mean, 4)])
            if verbose:
                print(
                    f'step {step + 1}/{steps} loss {mean:.3f} ({time.monotonic() - start:.0f} s)',
                    flush=True,
                )
    model.eval()
    summary = {
        'name': name,
        'source': source,
        'question_mode': question_mode,
        'steps': steps,
        'batch_size': batch_size,
        'lr': lr,
        'seed': seed,
        'bpe_dropout': bpe_dropout,
        'unk_prob': unk_prob,
        'word_dropout': word_dropout,
        'history_prob': history_prob,
        'parameters': sum(p.numel() for p in model.parameters()),
        'vocab_size': tokenizer.get_vocab_size(),
        'layers': int(model.config.n_layer),
        'width': int(model.config.n_embd),
        'positions': max_tokens,
        'train_seconds': round(time.monotonic() - start, 1),
        'loss_curve': curve,
        'corpus_sha256_16': corpus_digest(corpus),
        'threads': threads,
    }
    if matcher is not None:
        summary['intent_hints'] = matcher.to_json()
    if save:
        save_checkpoint(model, tokenizer, out, summary)
    summary['losses'] = losses
    return summary


def main(argv=None) -> int:
    """CLI entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description='Train/fine-tune agechat\'s age- and emotion-conditioned GPT-2.'
    )
    parser.add_argument('--out', required=True, help='checkpoint directory to write')
    parser.add_argument(
        '--init', help='fine-tune this KoGPT2-format checkpoint instead of training from scratch'
    )
    parser.add_argument('--corpus', help='corpus JSON (default: the bundled corpus)')
    parser.add_argument('--steps', type=int, default=1800)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument(
        '--lr', type=float, default=None, help='default 2e-3 from scratch, 5e-5 fine-tuning'
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--vocab-size', type=int, default=2000)
    parser.add_argument('--layers', type=int, default=4)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--heads', type=int, default=4)
    parser.add_argument('--bpe-dropout', type=float, default=0.1)
    parser.add_argument('--name', default='agechat-gpt2-embedded')
    parser.add_argument(
        '--question-mode',
        choices=['bpe', 'chars'],
        help="user-text encoding: default 'chars' from scratch, 'bpe' when fine-tuning",
    )
    parser.add_argument(
        '--no-intent-hint',
        action='store_true',
        help='train without the retrieval intent hint in the prompt',
    )
    args = parser.parse_args(argv)
    lr = args.lr if args.lr is not None else (5e-5 if args.init else 2e-3)
    summary = train(
        args.out,
        load_corpus(args.corpus),
        args.init,
        args.steps,
        args.batch_size,
        lr,
        seed=args.seed,
        threads=args.threads,
        vocab_size=args.vocab_size,
        layers=args.layers,
        width=args.width,
        heads=args.heads,
        bpe_dropout=args.bpe_dropout,
        name=args.name,
        question_mode=args.question_mode,
        intent_hint=not args.no_intent_hint,
    )
    print(
        f'saved {args.out}: {summary["parameters"]} parameters, '
        f'final loss {summary["loss_curve"][-1][1]}, {summary["train_seconds"]} s'
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
