"""Loading, saving and sampling from a GPT-2 checkpoint in KoGPT2's on-disk format.

A checkpoint is a directory with `config.json`, `model.safetensors` (or `pytorch_model.bin`) and
`tokenizer.json` — what `save_pretrained` writes for skt/kogpt2-base-v2 and for our embedded model.
Generation uses transformers' `generate` with the KV cache, nucleus sampling (top-p, temperature),
a repetition penalty, a hard cap on new tokens, and a seed for reproducible replies.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from tokenizers import Tokenizer

from dialogue_node.core.prompt import PromptCodec
from dialogue_node.core.tokenizer import EOS, PAD, UNK, ensure_special_tokens

WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
TRAIN_COMMAND = 'python -m dialogue_node.core.train --out {path}'
_SENTENCE_ENDS = '.!?~'


def check_checkpoint(path) -> Path:
    """Return the checkpoint directory, or raise FileNotFoundError naming what is missing and the fix."""
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
            'dialogue model checkpoint not usable: ' + '; '.join(problems)
            + f'. Produce it with `{TRAIN_COMMAND.format(path=directory)}` (embedded model) or point model_path '
              'at a GPT-2 checkpoint in KoGPT2 format (config.json, model.safetensors, tokenizer.json).')
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
    """Write model (safetensors), tokenizer.json (+ transformers tokenizer files) and agechat.json."""
    from transformers import PreTrainedTokenizerFast

    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory), safe_serialization=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=EOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=PAD)
    fast.save_pretrained(str(directory))
    tokenizer.save(str(directory / 'tokenizer.json'))   # the raw tokenizer we load back, exactly
    if metadata is not None:
        (directory / 'agechat.json').write_text(json.dumps(metadata, ensure_ascii=False, indent=1) + '\n')
    return directory


@dataclass
class GenerationSettings:
    """Decoding settings (defaults are the node's)."""

    max_new_tokens: int = 40
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1


@dataclass
class Generated:
    """A generated reply."""

    text: str
    token_ids: List[int]
    new_tokens: int
    hit_cap: bool
    looping: bool


def is_looping(ids: Sequence[int], n: int = 3, repeats: int = 3, run: int = 4) -> bool:
    """True when some n-gram occurs `repeats` times or one token repeats `run` times in a row."""
    ids = list(ids)
    for i in range(len(ids) - run + 1):
        if len(set(ids[i:i + run])) == 1:
            return True
    grams = Counter(tuple(ids[i:i + n]) for i in range(len(ids) - n + 1))
    return any(count >= repeats for count in grams.values())


def trim_to_sentence(text: str) -> str:
    """Cut a capped reply after its last complete sentence (when it has one)."""
    last = max(text.rfind(c) for c in _SENTENCE_ENDS)
    return text[:last + 1] if last > 0 else text


class Generator:
    """Samples replies from a loaded model; thread-safe (one generation at a time)."""

    def __init__(self, model, tokenizer: Tokenizer, settings: Optional[GenerationSettings] = None, name: str = '',
                 question_mode: str = 'bpe'):
        self.model = model
        self.codec = PromptCodec(tokenizer, question_mode)
        self.settings = settings or GenerationSettings()
        self.name = name
        self.max_positions = int(getattr(model.config, 'n_positions', 1024))
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path, settings: Optional[GenerationSettings] = None, dtype: str = 'float32',
                        threads: Optional[int] = None, name: str = '') -> 'Generator':
        """Load a checkpoint directory into a Generator."""
        model, tokenizer, _ = load_checkpoint(path, dtype, threads)
        meta_path = Path(path) / 'agechat.json'
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        return cls(model, tokenizer, settings, name or meta.get('name') or Path(path).name,
                   meta.get('question_mode', 'bpe'))

    @property
    def prompt_budget(self) -> int:
        """Most prompt tokens that still leave room for the capped reply."""
        return self.max_positions - self.settings.max_new_tokens

    def generate(self, prompt_ids: Sequence[int], seed: Optional[int] = None,
                 settings: Optional[GenerationSettings] = None) -> Generated:
        """Sample a reply to a prompt (from :meth:`PromptCodec.prompt_ids`); `seed` makes it reproducible."""
        from transformers import GenerationConfig

        s = settings or self.settings
        prompt = list(prompt_ids)[-self.prompt_budget:]
        config = GenerationConfig(max_new_tokens=s.max_new_tokens, do_sample=s.do_sample,
                                  temperature=s.temperature if s.do_sample else None,
                                  top_p=s.top_p if s.do_sample else None, top_k=None,
                                  repetition_penalty=s.repetition_penalty, eos_token_id=self.codec.eos_id,
                                  pad_token_id=self.codec.pad_id, use_cache=True)
        input_ids = torch.tensor([prompt], dtype=torch.long)
        with self._lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            output = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                         generation_config=config)
        new = output[0, len(prompt):].tolist()
        ended = bool(new) and new[-1] == self.codec.eos_id
        if ended:
            new = new[:-1]
        hit_cap = not ended and len(new) >= s.max_new_tokens
        text = self.codec.decode(new)
        if hit_cap:
            text = trim_to_sentence(text)
        return Generated(text=text, token_ids=new, new_tokens=len(new) + int(ended), hit_cap=hit_cap,
                         looping=is_looping(new))

    def answer_nll(self, examples) -> tuple:
        """(sum of negative log-likelihood, token count) of answer tokens for (input_ids, labels) pairs."""
        total, count = 0.0, 0
        with self._lock, torch.inference_mode():
            for input_ids, labels in examples:
                ids = torch.tensor([input_ids])
                logits = self.model(ids).logits[0, :-1].float()
                target = torch.tensor(labels[1:])
                mask = target != -100
                nll = torch.nn.functional.cross_entropy(logits[mask], target[mask], reduction='sum')
                total += float(nll)
                count += int(mask.sum())
        return total, count
