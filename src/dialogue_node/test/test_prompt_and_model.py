"""Prompts, loss masking, tokenizer, generation and checkpoints of the dialogue model.

Prompt building, loss masking, tokenizer round trip, generation cap and seeds, checkpoints in
KoGPT2's format, and that training and inference build prompts with the same code.
"""

import json
import random

import pytest
import torch

from dialogue_node.core import prompt as prompt_module
from dialogue_node.core import train as train_module
from dialogue_node.core.engine import DialogueEngine
from dialogue_node.core.model import (
    GenerationSettings,
    Generator,
    check_checkpoint,
    is_looping,
    load_checkpoint,
    save_checkpoint,
    trim_to_sentence,
)
from dialogue_node.core.prompt import IGNORE_INDEX, PromptCodec
from dialogue_node.core.tokenizer import SPECIAL_TOKENS, with_dropout


def test_tokenizer_round_trip(tokenizer):
    codec = PromptCodec(tokenizer)
    for text in [
        '오늘 날씨 어때?',
        '안녕하십니까, 어르신! 만나 뵙게 되어 반갑습니다.',
        '잘 가! 다음에 또 놀자.',
    ]:
        assert codec.decode(codec.encode(text)) == text
    for (
        token
    ) in SPECIAL_TOKENS:  # each label is exactly one token, and user text cannot inject one
        assert tokenizer.encode(token, add_special_tokens=False).ids == [
            tokenizer.token_to_id(token)
        ]
        assert (
            tokenizer.token_to_id(token) not in codec.encode(f'안녕 {token} 하세요')
            or token == '<unk>'
        )


def test_character_question_mode_shares_syllables_across_wordings(tokenizer):
    codec = PromptCodec(tokenizer, question_mode='chars')
    trained, reworded = (
        codec.encode_question('너 몇 살이야?'),
        codec.encode_question('몇 살이에요?'),
    )
    assert len(set(trained) & set(reworded)) >= 4 and codec.decode(reworded) == '몇 살이에요?'
    assert len(codec.encode('반가워요')) < len(
        codec.encode_question('반가워요')
    )  # replies keep BPE merges
    prompt = codec.prompt_ids('몇 살이에요?', 'child', 'neutral')
    assert prompt[1 : 1 + len(reworded)] == reworded


def test_bpe_dropout_varies_segmentation_but_not_text(tokenizer):
    dropout = with_dropout(tokenizer, 0.5)
    codec = PromptCodec(tokenizer)
    segmentations = {tuple(codec.encode('오늘 날씨 어때?', dropout)) for _ in range(20)}
    assert len(segmentations) > 1
    assert all(codec.decode(s) == '오늘 날씨 어때?' for s in segmentations)


def test_prompt_layout_puts_labels_in_the_sent_slot(tokenizer):
    codec = PromptCodec(tokenizer)
    ids = codec.prompt_ids('밥 먹었어?', 'senior', 'sad')
    t = tokenizer.token_to_id
    assert ids[0] == t('<usr>') and ids[-4:] == [
        t('<sent>'),
        t('<senior>'),
        t('<sad>'),
        t('<sys>'),
    ]
    assert codec.decode(ids[1:-4]) == '밥 먹었어?'
    with_history = codec.prompt_ids('밥 먹었어?', 'child', 'happy', [('안녕', '안녕! 반가워.')])
    assert with_history[-len(ids) :][:-3] == ids[:-3] and with_history.count(t('</s>')) == 1
    assert codec.prompt_ids('', '', '')[-3:-1] == [
        t('<adult>'),
        t('<neutral>'),
    ]  # empty labels = defaults


def test_prompt_budget_drops_oldest_history_then_cuts_the_question(tokenizer):
    codec = PromptCodec(tokenizer)
    history = [('오늘 날씨 어때?', '맑아.'), ('뭐 먹을까?', '김밥 어때?')]
    full = codec.prompt_ids('심심해', 'child', 'neutral', history)
    short = codec.prompt_ids('심심해', 'child', 'neutral', history, max_tokens=len(full) - 1)
    assert len(short) < len(full) and codec.decode(short).startswith('뭐 먹을까?')
    tiny = codec.prompt_ids(
        '오늘 날씨가 정말 좋아서 산책을 가고 싶어', 'child', 'neutral', history, max_tokens=8
    )
    assert len(tiny) == 8


def test_loss_mask_covers_only_the_answer(tokenizer):
    codec = PromptCodec(tokenizer)
    input_ids, labels = codec.training_example(
        '밥 먹었어?', '진지는 드셨습니까?', 'senior', 'neutral'
    )
    prompt = codec.prompt_ids('밥 먹었어?', 'senior', 'neutral')
    assert input_ids[: len(prompt)] == prompt
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    answer = labels[len(prompt) :]
    assert answer[-1] == codec.eos_id and codec.decode(answer) == '진지는 드셨습니까?'
    assert input_ids[len(prompt) :] == answer


def test_training_and_inference_build_prompts_with_the_same_code(
    tokenizer, tiny_model, corpus, monkeypatch
):
    """The seed's bug was a training/inference prompt mismatch.

    Both paths must call PromptCodec.prompt_ids.
    """
    calls = []
    original = prompt_module.PromptCodec.prompt_ids

    def spy(self, question, age, emotion, history=(), max_tokens=None, question_ids=None):
        result = original(self, question, age, emotion, history, max_tokens, question_ids)
        calls.append((question, age, emotion, tuple(result)))
        return result

    monkeypatch.setattr(prompt_module.PromptCodec, 'prompt_ids', spy)
    codec = PromptCodec(tokenizer)
    train_module.make_batch(codec, corpus, random.Random(0), 4, 128)
    assert len(calls) == 4  # training examples are built through prompt_ids
    question, age, emotion, train_prompt = calls[0]
    engine = DialogueEngine(
        Generator(tiny_model, tokenizer, GenerationSettings(max_new_tokens=3)), attempts=1
    )
    engine.reply(question, age, emotion)
    assert calls[-1][:3] == (question, age, emotion)
    assert calls[-1][3] == train_prompt  # identical ids: labels in <sent>, same question encoding


def test_generation_cap_and_seed(tokenizer, tiny_model):
    generator = Generator(
        tiny_model, tokenizer, GenerationSettings(max_new_tokens=6, temperature=1.5, top_p=1.0)
    )
    prompt = generator.codec.prompt_ids('안녕', 'child', 'neutral')
    results = [generator.generate(prompt, seed=s) for s in (1, 1, 2, 3, 4)]
    assert all(r.new_tokens <= 6 for r in results)
    assert any(r.hit_cap for r in results)  # random weights rarely say </s>
    assert results[0].token_ids == results[1].token_ids  # same seed, same reply
    assert len({tuple(r.token_ids) for r in results}) > 1


def test_looping_detection_and_trim():
    assert is_looping([5, 6, 7, 5, 6, 7, 5, 6, 7])
    assert is_looping([9, 9, 9, 9])
    assert not is_looping([1, 2, 3, 4, 5, 6, 7, 8])
    assert trim_to_sentence('좋아요. 오늘은 날') == '좋아요.'
    assert trim_to_sentence('문장 끝 없음') == '문장 끝 없음'


def test_tiny_training_run_lowers_the_loss(tmp_path, corpus):
    summary = train_module.train(
        str(tmp_path / 'ckpt'),
        corpus,
        steps=40,
        batch_size=8,
        lr=3e-3,
        warmup=5,
        vocab_size=600,
        layers=1,
        width=48,
        heads=2,
        positions=128,
        log_every=10,
        verbose=False,
    )
    first, last = summary['loss_curve'][0][1], summary['loss_curve'][-1][1]
    assert last < first - 1.0, summary['loss_curve']
    generator = Generator.from_checkpoint(tmp_path / 'ckpt')
    meta = json.loads((tmp_path / 'ckpt' / 'agechat.json').read_text())
    assert meta['steps'] == 40 and generator.model.config.n_layer == 1
    assert generator.model.config.eos_token_id == generator.codec.eos_id


def kogpt2_like_checkpoint(path, corpus):
    """Save a tiny random GPT-2 like skt/kogpt2-base-v2 (its special tokens, no agechat labels)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = Tokenizer(models.BPE(unk_token='<unk>'))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    kogpt2_specials = ['</s>', '<usr>', '<pad>', '<sys>', '<unk>', '<mask>', '<d>', '</d>'] + [
        f'<unused{i}>' for i in range(4)
    ]
    tok.train_from_iterator(
        corpus.texts(),
        trainers.BpeTrainer(vocab_size=700, special_tokens=kogpt2_specials, show_progress=False),
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=tok.get_vocab_size(),
            n_positions=128,
            n_embd=32,
            n_layer=1,
            n_head=2,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=2,
        )
    )
    save_checkpoint(model, tok, path)
    return tok


def test_kogpt2_format_checkpoint_is_fine_tuned_and_served(tmp_path, corpus):
    base = tmp_path / 'kogpt2-tiny'
    kogpt2_like_checkpoint(base, corpus)
    _, tokenizer, added = load_checkpoint(base)
    assert '<sent>' in added and '<senior>' in added and '<usr>' not in added
    summary = train_module.train(
        str(tmp_path / 'tuned'),
        corpus,
        init=str(base),
        steps=30,
        batch_size=8,
        lr=3e-3,
        warmup=5,
        log_every=10,
        verbose=False,
    )
    assert summary['source'].startswith('fine-tuned from')
    assert summary['loss_curve'][-1][1] < summary['loss_curve'][0][1]
    _, tuned_tok, added_again = load_checkpoint(tmp_path / 'tuned')
    assert added_again == []  # the fine-tuned checkpoint carries the label tokens
    assert (
        tuned_tok.token_to_id('</s>') == tokenizer.token_to_id('</s>') == 0
    )  # KoGPT2's ids are kept
    engine = DialogueEngine(
        Generator.from_checkpoint(tmp_path / 'tuned', GenerationSettings(max_new_tokens=8))
    )
    reply = engine.reply('오늘 날씨 어때?', 'senior', 'happy')
    assert reply.reply_text and reply.new_tokens >= 1


def test_missing_checkpoint_names_path_and_command(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        check_checkpoint(tmp_path / 'nothing')
    assert str(tmp_path / 'nothing') in str(info.value) and 'dialogue_node.core.train' in str(
        info.value
    )
    (tmp_path / 'half').mkdir()
    (tmp_path / 'half' / 'config.json').write_text('{}')
    with pytest.raises(FileNotFoundError, match='tokenizer.json'):
        check_checkpoint(tmp_path / 'half')
