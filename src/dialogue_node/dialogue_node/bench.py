"""Benchmark: `python -m dialogue_node.bench --out out/bench/dialogue.json`.

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

import torch

from dialogue_node.core.evaluate import evaluate, percentile
from dialogue_node.core.model import GenerationSettings, Generator
from dialogue_node.node import default_model_path


def time_forced_generation(
    generator: Generator,
    prompt_tokens: int = 30,
    new_tokens: int = 40,
    reps: int = 5,
    seed: int = 0,
) -> list:
    """Return milliseconds per reply of exactly `new_tokens` tokens (sampling, KV cache).

    One warm-up reply is generated first and not counted.
    """
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


def kogpt2_shaped_model(dtype: torch.dtype):
    """Return a randomly initialised GPT-2 with skt/kogpt2-base-v2's shape (125M parameters)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=51200, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    return GPT2LMHeadModel(config).to(dtype).eval()


def run(model_path: str, threads: int = 1, reps_125m: int = 5, limit=None) -> dict:
    """All measurements, as the JSON-ready dict."""
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
        '--model', default='', help='checkpoint directory (default: the embedded model)'
    )
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--reps-125m', type=int, default=5)
    parser.add_argument(
        '--limit', type=int, help='only the first N held-out questions (quick check)'
    )
    args = parser.parse_args(argv)
    result = run(args.model or default_model_path(), args.threads, args.reps_125m, args.limit)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(result, ensure_ascii=False, indent=1) + '\n', encoding='utf-8'
    )
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != 'examples'}, ensure_ascii=False, indent=1
        )
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
