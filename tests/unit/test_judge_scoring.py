"""The two RougeL scorers: the reference's Chinese blindness, and the cjk fix."""

from __future__ import annotations

import pytest

from llmserve.judge.scoring import cjk_score, cjk_tokens, compat_blind, compat_score


def test_compat_scores_different_chinese_answers_sharing_one_english_word_as_perfect() -> None:
    reference = "巴黎是法国的首都，位于塞纳河畔。Paris"
    prediction = "东京是日本最大的城市，人口众多。Paris"
    assert compat_score(reference, prediction) == 1.0
    assert cjk_score(reference, prediction) < 0.5  # the cjk scorer sees they differ


def test_compat_scores_an_all_chinese_answer_zero_against_itself() -> None:
    answer = "北京是中华人民共和国的首都。"
    assert compat_blind(answer)
    assert compat_score(answer, answer) == 0.0


def test_compat_matches_the_reference_implementation_on_english() -> None:
    import jieba
    from rouge_score import rouge_scorer

    ref, pred = "The cat sat on the mat.", "A cat was sitting on a mat"
    expected = (
        rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        .score(" ".join(jieba.lcut(ref)), " ".join(jieba.lcut(pred)))["rougeL"]
        .fmeasure
    )
    assert compat_score(ref, pred) == pytest.approx(expected)
    assert 0 < expected < 1


def test_cjk_scores_identical_text_one() -> None:
    text = "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。"
    assert cjk_score(text, text) == 1.0


def test_cjk_scores_unrelated_chinese_near_zero() -> None:
    reference = "光合作用把二氧化碳和水转化为葡萄糖和氧气。"
    prediction = "今天下午我们去公园踢足球吧。"
    assert cjk_score(reference, prediction) < 0.1


def test_cjk_tokens_are_lower_cased_jieba_words_without_punctuation() -> None:
    assert cjk_tokens("Hello，世界！ GPU 很快。") == ["hello", "世界", "gpu", "很快"]


def test_cjk_is_not_fooled_by_punctuation_alone() -> None:
    assert cjk_score("。，！", "。，！") == 0.0
