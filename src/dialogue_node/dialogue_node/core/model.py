"""Loading, saving and sampling from a GPT-2 checkpoint in KoGPT2's on-disk format.

A checkpoint is a directory with `config.json`, `model.safetensors` (or `pytorch_model.bin`) and
`tokenizer.json` — what `save_pretrained` writes for skt/kogpt2-base-v2 and for our embedded model.
Generation decodes incrementally with the KV cache and transformers' logits processors: nucleus
sampling (top-p, temperature), a repetition penalty, a hard cap on new tokens, and a per-call seed
(its own torch.Generator) for reproducible replies.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from tokenizers import Tokenizer

from dialogue_node.core.intent_hint import IntentMatcher
from dialogue_node.core.prompt import PromptCodec
from dialogue_node.core.tokenizer import EOS, PAD, UNK, ensure_special_tokens

WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
TRAIN_COMMAND = 'python -m dialogue_node.core.train --out {path}'
_SENTENCE_ENDS = '.!?~'


def check_checkpoint(path) -> Path:
    """Return the checkpoint directory.

    Raises FileNotFoundError naming what is missing and the fix.
    """
    directory = Path(path)
    problems = []
    if not directory.is_dir():
        problems.append(f'{directory} is not a directory')
    else:
        if not (directory / 'config.json').is_file():
            problems.append(f'{directory / "config.json"} is missing')
        if not (directory / 'tokenizer.json').is_file():
            problems.append(f'{directory / "tokenizer.json"} is missing')
        if not any((directory / name).is_file() for name in WEIGHT_FILES):
            problems.append(f'no weights ({" or ".join(WEIGHT_FILES)}) in {directory}')
    if problems:
        raise FileNotFoundError(
            'dialogue model checkpoint not usable: '
            + '; '.join(problems)
            + f'. Produce it with `{TRAIN_COMMAND.format(path=directory)}` (embedded model) '
            'or point model_path at a GPT-2 checkpoint in KoGPT2 format '
            '(config.json, model.safetensors, tokenizer.json).'
        )
    return directory


def load_checkpoint(path, dtype: str = 'float32', threads: Optional[int] = None):
    """Load (model, tokenizer, added_tokens) from a checkpoint directory; model in eval mode.

    Special tokens the tokenizer lacks (a stock KoGPT2 has no age/emotion labels) are added and the
    embeddings resized; `added_tokens` lists them (non-empty means: not fine-tuned by agechat).
    """
    from transformers import GPT2LMHeadModel

    if threads:
        torch.set_num_threads(threads)
    directory = check_checkpoint(path)
    tokenizer = Tokenizer.from_file(str(directory / 'tokenizer.json'))
    added = ensure_special_tokens(tokenizer)
    torch_dtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16}[dtype]
    model = GPT2LMHeadModel.from_pretrained(str(directory), dtype=torch_dtype)
    if tokenizer.get_vocab_size() > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(tokenizer.get_vocab_size())
    model.eval()
    return model, tokenizer, added


def save_checkpoint(model, tokenizer: Tokenizer, path, metadata: Optional[dict] = None) -> Path:
    """Write model (safetensors), tokenizer.json (+ transformers tokenizer files), agechat.json."""
    from transformers import PreTrainedTokenizerFast

    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory), safe_serialization=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=EOS, eos_token=EOS, unk_token=UNK, pad_token=PAD
    )
    fast.save_pretrained(str(directory))
    tokenizer.save(str(directory / 'tokenizer.json'))  # the raw tokenizer we load back, exactly
    if metadata is not None:
        (directory / 'agechat.json').write_text(
            json.dumps(metadata, ensure_ascii=False, indent=1) + '\n'
        )
    return directory


@dataclass
class GenerationSettings:
    """Decoding settings (defaults are the node's)."""

    max_new_tokens: int = 40
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    min_new_tokens: int = 0  # `</s>` is blocked before this many tokens (benchmarks use max = min)


@dataclass
class Generated:
    """A generated reply."""

    text: str
    token_ids: List[int]
    new_tokens: int
    hit_cap: bool
    looping: bool


def is_looping(ids: Sequence[int], n: int = 3, repeats: int = 3, run: int = 4) -> bool:
    """Return True if an n-gram occurs `repeats` times or a token repeats `run` times in a row."""
    ids = list(ids)
    for i in range(len(ids) - run + 1):
        if len(set(ids[i : i + run])) == 1:
            return True
    grams = Counter(tuple(ids[i : i + n]) for i in range(len(ids) - n + 1))
    return any(count >= repeats for count in grams.values())


def trim_to_sentence(text: str) -> str:
    """Cut a capped reply after its last complete sentence (when it has one)."""
    last = max(text.rfind(c) for c in _SENTENCE_ENDS)
    return text[: last + 1] if last > 0 else text


class Generator:
    """Samples replies from a loaded model; thread-safe (one generation at a time)."""

    def __init__(
        self,
        model,
        tokenizer: Tokenizer,
        settings: Optional[GenerationSettings] = None,
        name: str = '',
        question_mode: str = 'bpe',
        intent_matcher=None,
    ):
        self.model = model
        self.codec = PromptCodec(tokenizer, question_mode, intent_matcher)
        self.settings = settings or GenerationSettings()
        self.name = name
        self.max_positions = int(getattr(model.config, 'n_positions', 1024))
        self._cache_arg = (
            'cache'
            if 'cache' in inspect.signature(model.forward).parameters
            else 'past_key_values'
        )
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(
        cls,
        path,
        settings: Optional[GenerationSettings] = None,
        dtype: str = 'float32',
        threads: Optional[int] = None,
        name: str = '',
    ) -> 'Generator':
        """Load a checkpoint directory into a Generator."""
        model, tokenizer, _ = load_checkpoint(path, dtype, threads)
        meta_path = Path(path) / 'agechat.json'
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        hints = meta.get('intent_hints')
        return cls(
            model,
            tokenizer,
            settings,
            name or meta.get('name') or Path(path).name,
            meta.get('question_mode', 'bpe'),
            IntentMatcher.from_json(hints) if hints else None,
        )

    @property
    def prompt_budget(self) -> int:
        """Most prompt tokens that still leave room for the capped reply."""
        return self.max_positions - self.settings.max_new_tokens

    def _forward(self, input_ids, cache):
        """Run one forward step with the KV cache.

        transformers 5 names the cache `cache`, 4.x `past_key_values`.
        """
        kwargs = {self._cache_arg: cache} if cache is not None else {}
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **kwargs)
        return out.logits[:, -1, :].float(), getattr(out, 'cache', None) or out.past_key_values

    def _processors(self, s: GenerationSettings):
        from transformers import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        processors = LogitsProcessorList()
        if s.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(s.repetition_penalty))
        if s.do_sample:
            processors.append(TemperatureLogitsWarper(s.temperature))
            if s.top_p < 1.0:
                processors.append(TopPLogitsWarper(s.top_p))
        return processors

    def generate(
        self,
        prompt_ids: Sequence[int],
        seed: Optional[int] = None,
        settings: Optional[GenerationSettings] = None,
    ) -> Generated:
        """Sample a reply to a prompt (from :meth:`PromptCodec.prompt_ids`).

        `seed` makes it reproducible.

        Incremental decoding with the model's KV cache and transformers' logits processors
        (repetition penalty, temperature, top-p); stops at `</s>` or after `max_new_tokens`. This
        loop replaces `model.generate`, whose per-token bookkeeping cost ~25 % of the latency here.
        """
        s = settings or self.settings
        prompt = list(prompt_ids)[-self.prompt_budget :]
        processors = self._processors(s)
        sampler = torch.Generator().manual_seed(seed) if seed is not None else None
        sequence = torch.tensor([prompt], dtype=torch.long)
        new: List[int] = []
        ended = False
        with self._lock, torch.inference_mode():
            logits, cache = self._forward(sequence, None)
            for _ in range(s.max_new_tokens):
                if len(new) < s.min_new_tokens:
                    logits[:, self.codec.eos_id] = -float('inf')
                scores = processors(sequence, logits)
                if s.do_sample:
                    token = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=sampler)
                else:
                    token = scores.argmax(dim=-1, keepdim=True)
                value = int(token)
                if value == self.codec.eos_id:
                    ended = True
                    break
                new.append(value)
                sequence = torch.cat([sequence, token], dim=1)
                if len(new) < s.max_new_tokens:
                    logits, cache = self._forward(token, cache)
        hit_cap = not ended and len(new) >= s.max_new_tokens
        text = self.codec.decode(new)
        if hit_cap:
            text = trim_to_sentence(text)
        return Generated(
            text=text,
            token_ids=new,
            new_tokens=len(new) + int(ended),
            hit_cap=hit_cap,
            looping=is_looping(new),
        )

    def answer_nll(self, examples) -> tuple:
        """Return (sum of negative log-likelihood, token count) of the answer tokens.

        `examples` are (input_ids, labels) pairs.
        """
        total, count = 0.0, 0
        with self._lock, torch.inference_mode():
            for input_ids, labels in examples:
                ids = torch.tensor([input_ids])
                logits = self.model(ids).logits[0, :-1].float()
                target = torch.tensor(labels[1:])
                mask = target != -100
                nll = torch.nn.functional.cross_entropy(
                    logits[mask], target[mask], reduction='sum'
                )
                total += float(nll)
                count += int(mask.sum())
        return total, count
