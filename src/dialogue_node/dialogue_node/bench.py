"""Benchmark: `python -m dialogue_node.bench --out out/bench/dialogue.json`.

Headline (top-level keys): the node's default engine — replies grounded in retrieved ChatbotData
answers (`models/retrieval`) — through :class:`DialogueEngine` on ChatbotData's held-out questions
x 3 age groups (the prompts file `dialogue_node.core.retrieval_data` writes; emotions: sad for the
sad/breakup label, else cycled): `latency_ms_p50/p95`, `first_sentence_ms_p50/p95`,
`register_accuracy_{child,adult,senior}`, `distinct_reply_ratio`, `distinct_1/2`,
`repeated_replies`, `say_less_ratio`, and the process's peak RSS before torch is imported
(`peak_rss_mb_retrieval`), and the rule-based register conversion's cost per sentence
(`register_convert_ms_per_sentence`, on the register fixture). Without ../shared/data the
authored corpus' held-out paraphrases are the prompts (`prompts` says which).

Under `gpt2` (skipped with --no-gpt2), the previous measurements:

- The embedded model through the node's engine on every held-out question x age group (emotions
  cycled): reply latency p50/p95 (max 40 new tokens, KV cache, sampling), register accuracy per age
  group, intent relevance, looping/capped replies (see dialogue_node.core.evaluate).
- Forced 40-token generations (min = max = 40 new tokens) of the embedded model and of a
  125M-parameter GPT-2 of KoGPT2's shape (12 layers, 768 wide, 51,200 tokens; random weights) in
  float32 and bfloat16, through the node's decoding loop; and the embedded model through
  transformers' `generate` for comparison.
All on CPU with one torch thread unless --threads says otherwise; measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from dialogue_node.core.evaluate import evaluate_prompts, percentile


def peak_rss_mb() -> float:
    """Return this process's peak resident memory (VmHWM) in MB."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return round(int(line.split()[1]) / 1024, 1)
    return float('nan')


def benchmark_prompts(data_dir=None) -> tuple:
    """Return (rows, description): ChatbotData's held-out prompts, else the corpus' held-out."""
    from dialogue_node.core import chatbot_data
    from dialogue_node.core.labels import AGE_GROUPS, EMOTIONS

    try:
        parts = chatbot_data.split_pairs(chatbot_data.load_pairs(data_dir))
    except FileNotFoundError:
        from dialogue_node.core.corpus import heldout_cases, load_corpus

        cases = heldout_cases(load_corpus())
        rows = [
            {'prompt': q, 'age_group': age, 'emotion': EMOTIONS[(i + j) % len(EMOTIONS)]}
            for i, (_, q) in enumerate(cases)
            for j, age in enumerate(AGE_GROUPS)
        ]
        return rows, 'authored corpus held-out paraphrases (ChatbotData not found)'
    others = [e for e in EMOTIONS if e != 'neutral']
    rows = []
    for i, pair in enumerate(parts['heldout']):
        emotion = 'sad' if pair.label == 1 else ('neutral' if i % 2 else others[i % 6])
        rows += [{'prompt': pair.question, 'age_group': a, 'emotion': emotion} for a in AGE_GROUPS]
    return rows, f'ChatbotData held-out split ({len(parts["heldout"])} questions x 3 ages)'


def time_register_conversion() -> float:
    """Return ms per sentence turning the fixture's 해요체 texts into 반말 and 하십시오체."""
    from dialogue_node.core.morphology import get_kiwi
    from dialogue_node.core.register import CASUAL, FORMAL, POLITE
    from dialogue_node.core.register_convert import RegisterConverter
    from dialogue_node.core.register_data import read_fixture
    from dialogue_node.core.register_eval import FIXTURE

    converter = RegisterConverter(get_kiwi())
    texts = [row.texts[POLITE] for row in read_fixture(FIXTURE)]
    converter.convert(texts[0], CASUAL)  # warm-up
    started = time.perf_counter()
    sentences = 0
    for text in texts:
        for target in (CASUAL, FORMAL):
            sentences += len(converter.convert(text, target).sentences)
    return round((time.perf_counter() - started) * 1000 / max(sentences, 1), 3)


def run_retrieval(index_dir=None, data_dir=None) -> dict:
    """Headline measurements of the retrieval engine (see the module docstring)."""
    from dialogue_node.core.backend import load_backend
    from dialogue_node.core.engine import DialogueEngine

    composer = load_backend(index_dir, 'retrieval')
    engine = DialogueEngine(composer, max_history_turns=0)
    rows, described = benchmark_prompts(data_dir)
    engine.reply('안녕', 'adult')  # warm-up
    _, summary = evaluate_prompts(engine, rows)
    result = {k: v for k, v in summary.items() if k != 'sources'}
    result['say_less_ratio'] = round(summary['sources'].get('say_less', 0) / len(rows), 4)
    result['sources'] = summary['sources']
    result['prompts'] = described
    result['say_less_threshold'] = composer.threshold
    result['peak_rss_mb_retrieval'] = peak_rss_mb()
    result['register_convert_ms_per_sentence'] = time_register_conversion()
    return result


def time_forced_generation(
    generator,
    prompt_tokens: int = 30,
    new_tokens: int = 40,
    reps: int = 5,
    seed: int = 0,
) -> list:
    """Return milliseconds per reply of exactly `new_tokens` tokens (sampling, KV cache).

    One warm-up reply is generated first and not counted.
    """
    import torch

    from dialogue_node.core.model import GenerationSettings

    settings = GenerationSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    vocab = generator.model.get_input_embeddings().num_embeddings
    rng = torch.Generator().manual_seed(seed)
    prompt = torch.randint(
        generator.codec.eos_id + 1,
        min(vocab, generator.codec.tokenizer.get_vocab_size()),
        (prompt_tokens,),
        generator=rng,
    ).tolist()
    times = []
    for rep in range(reps + 1):
        start = time.perf_counter()
        result = generator.generate(prompt, seed=seed + rep, settings=settings)
        elapsed = (time.perf_counter() - start) * 1000.0
        assert len(result.token_ids) == new_tokens, result.new_tokens
        if rep:
            times.append(elapsed)
    return times


def time_hf_generate(
    model,
    vocab_size: int,
    eos_id: int,
    prompt_tokens: int = 30,
    new_tokens: int = 40,
    reps: int = 5,
) -> list:
    """Take the same measurement through transformers' `model.generate` (for comparison)."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=True,
        top_p=0.9,
        temperature=0.7,
        top_k=None,
        repetition_penalty=1.1,
        use_cache=True,
        eos_token_id=eos_id,
        pad_token_id=0,
    )
    prompt = torch.randint(
        eos_id + 1, vocab_size, (1, prompt_tokens), generator=torch.Generator().manual_seed(0)
    )
    times = []
    with torch.inference_mode():
        for rep in range(reps + 1):
            start = time.perf_counter()
            model.generate(
                prompt, attention_mask=torch.ones_like(prompt), generation_config=config
            )
            if rep:
                times.append((time.perf_counter() - start) * 1000.0)
    return times


def kogpt2_shaped_model(dtype):
    """Return a randomly initialised GPT-2 with skt/kogpt2-base-v2's shape (125M parameters)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=51200, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    return GPT2LMHeadModel(config).to(dtype).eval()


def run(model_path: str, threads: int = 1, reps_125m: int = 5, limit=None) -> dict:
    """Return the GPT-2 measurements, as the JSON-ready dict."""
    import torch

    from dialogue_node.core.evaluate import evaluate
    from dialogue_node.core.model import GenerationSettings, Generator

    torch.set_num_threads(threads)
    generator = Generator.from_checkpoint(
        model_path, GenerationSettings(max_new_tokens=40), threads=threads
    )
    report = evaluate(generator, limit=limit, examples=6)
    result = {
        key: report[key]
        for key in (
            'latency_ms_p50',
            'latency_ms_p95',
            'register_accuracy_child',
            'register_accuracy_adult',
            'register_accuracy_senior',
            'intent_relevance',
            'emotion_accuracy',
            'looping_replies',
            'capped_replies',
            'register_fallbacks',
            'heldout_answer_perplexity',
            'distinct_1',
            'distinct_2',
            'replies',
        )
    }
    result['embedded_model'] = generator.name
    result['embedded_parameters'] = sum(p.numel() for p in generator.model.parameters())
    forced = time_forced_generation(generator, reps=20)
    result['latency_ms_p50_forced40'] = round(percentile(forced, 50), 2)
    result['latency_ms_p95_forced40'] = round(percentile(forced, 95), 2)
    vocab = generator.model.get_input_embeddings().num_embeddings
    hf = time_hf_generate(generator.model, vocab, generator.codec.eos_id, reps=20)
    result['latency_ms_p50_forced40_hf_generate'] = round(percentile(hf, 50), 2)
    tokenizer = generator.codec.tokenizer
    del generator
    for name, dtype in (('', torch.float32), ('_bf16', torch.bfloat16)):
        model = kogpt2_shaped_model(dtype)
        if not name:
            result['params_125m'] = sum(p.numel() for p in model.parameters())
        times = time_forced_generation(
            Generator(model, tokenizer, name='kogpt2-shape-random'), reps=reps_125m
        )
        result[f'latency_ms_p50_125m{name}'] = round(percentile(times, 50), 1)
        result[f'latency_ms_p95_125m{name}'] = round(percentile(times, 95), 1)
        del model
    result['examples'] = report['examples']
    result['setup'] = {
        'threads': threads,
        'new_tokens_cap': 40,
        'prompt_tokens_125m': 30,
        'cpu': platform.processor() or platform.machine(),
        'cpu_count': os.cpu_count(),
        'load_avg_1min': round(os.getloadavg()[0], 2),
        'torch': torch.__version__,
    }
    return result


def main(argv=None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description='Benchmark dialogue_node generation.')
    parser.add_argument('--out', default='out/bench/dialogue.json')
    parser.add_argument(
        '--model', default='', help='GPT-2 checkpoint directory (default: the embedded model)'
    )
    parser.add_argument('--index', default='', help='retrieval index directory (default: shipped)')
    parser.add_argument('--data', help='shared data directory (default ../shared/data)')
    parser.add_argument('--no-gpt2', action='store_true', help='skip the GPT-2 measurements')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--reps-125m', type=int, default=5)
    parser.add_argument(
        '--limit', type=int, help='only the first N held-out questions (quick check)'
    )
    args = parser.parse_args(argv)
    import os as _os

    _os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    result = run_retrieval(args.index or None, args.data)
    if not args.no_gpt2:
        from dialogue_node.core.backend import default_path

        gpt2 = run(
            str(args.model or default_path('gpt2')), args.threads, args.reps_125m, args.limit
        )
        result['gpt2'] = gpt2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(result, ensure_ascii=False, indent=1) + '\n', encoding='utf-8'
    )
    print(
        json.dumps({k: v for k, v in result.items() if k != 'gpt2'}, ensure_ascii=False, indent=1)
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
