"""Shared fixtures of dialogue_node's unit tests: a tiny tokenizer and a tiny random GPT-2."""

from __future__ import annotations

from agechat_ros.testing import graph, pytest_runtest_makereport  # noqa: F401 - for the DDS tests


import pytest
import torch

from dialogue_node.core.corpus import build_corpus
from dialogue_node.core.tokenizer import ensure_special_tokens, train_tokenizer


@pytest.fixture(scope='session')
def corpus():
    return build_corpus()


@pytest.fixture(scope='session')
def tokenizer(corpus):
    tok = train_tokenizer(corpus.texts(), vocab_size=800)
    ensure_special_tokens(tok)
    return tok


@pytest.fixture(scope='session')
def tiny_model(tokenizer):
    from dialogue_node.core.train import build_scratch_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    return build_scratch_model(
        tokenizer.get_vocab_size(), layers=1, width=32, heads=2, positions=128
    ).eval()
