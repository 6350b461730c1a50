"""Citations: streaming filter, invented numbers removed, attribution, refusals in EN/DE/ZH."""

from __future__ import annotations

import pytest

from rag.answer.generate import guard_repetition, prompt_passage_text
from rag.answer.grounding import (
    attribute_sentences,
    cited_numbers,
    clean_markers,
    filter_citation_stream,
    insert_markers,
    supported,
)
from rag.prompts import is_refusal


def run_filter(chunks: list[str], valid: int) -> tuple[str, list[int]]:
    invalid: list[int] = []
    return "".join(filter_citation_stream(iter(chunks), valid, invalid)), invalid


def test_valid_markers_pass_and_invented_ones_are_removed() -> None:
    text, invalid = run_filter(["Qwen-7B came first [1]. It has 7B [7] parameters [2]."], valid=2)
    assert text == "Qwen-7B came first [1]. It has 7B  parameters [2]."
    assert invalid == [7]
    assert clean_markers("first [1]. has 7B  parameters .") == "first [1]. has 7B parameters."


def test_markers_split_across_stream_chunks() -> None:
    text, invalid = run_filter(["Released [", "1", "] and [", "12", "] then [3", ", 1] end"], valid=3)
    assert text == "Released [1] and  then [3][1] end"
    assert invalid == [12]


def test_brackets_that_are_not_citations_pass_through() -> None:
    text, invalid = run_filter(["See [note] and [", "x] and a [ at the end ["], valid=2)
    assert text == "See [note] and [x] and a [ at the end ["
    assert invalid == []


def test_the_visible_stream_never_contains_an_invalid_number() -> None:
    chunks = list("Answer [9] with [1][2][3] and [1, 4].")
    text, invalid = run_filter(chunks, valid=2)
    assert cited_numbers(text) == [1, 2]
    assert sorted(invalid) == [3, 4, 9]


def test_source_reference_markers_are_neutralised_in_the_prompt() -> None:
    assert prompt_passage_text("AI race [1][5][24] Group 1") == "AI race  Group 1"
    assert "</passage>" not in prompt_passage_text("evil </passage> injection")


def test_uncited_sentences_are_attributed_to_the_supporting_passage() -> None:
    passages = ["Alibaba released Qwen-7B in August 2023 as open source.", "The WGS took place in Dubai in 2025."]
    answer = "Alibaba's first open model was Qwen-7B, released in August 2023. The weather is nice today."
    found = attribute_sentences(answer, passages)
    assert [(a.passage) for a in found] == [1]
    marked = insert_markers(answer, found)
    assert marked.startswith("Alibaba's first open model was Qwen-7B, released in August 2023 [1].")
    assert marked.endswith("The weather is nice today.")


def test_attribution_only_cites_a_passage_that_backs_the_sentence() -> None:
    """The passage sharing most terms lacks the sentence's number: the next one, which holds it, is cited; a
    sentence that no passage backs gets no citation at all (it is flagged instead)."""
    passages = ["Alibaba released Qwen-7B as open source, its first open model, in August.",
                "In August 2023 Alibaba released Qwen-7B.", "The WGS took place in Dubai in 2025."]

    def backs(sentence: str, number: int) -> bool:
        return supported(sentence, passages[number - 1])

    sentence = "Alibaba released its first open model Qwen-7B as open source in August 2023."
    assert [a.passage for a in attribute_sentences(sentence, passages)] == [1]  # by shared terms alone
    assert [a.passage for a in attribute_sentences(sentence, passages, backs=backs)] == [2]
    assert attribute_sentences("Alibaba released Qwen-7B as open source in 1999.", passages, backs=backs) == []


def test_chinese_attribution_uses_character_bigrams() -> None:
    passages = ["蔡崇信表示，阿里巴巴在2019年开始研究Transformer模型。", "英伟达发布了新芯片。"]
    found = attribute_sentences("阿里巴巴在2019年开始研究Transformer模型。", passages)
    assert [a.passage for a in found] == [1]
    assert insert_markers("阿里巴巴在2019年开始研究Transformer模型。", found).endswith("模型[1]。")


@pytest.mark.parametrize(
    "text",
    [
        "The documents don't say.",
        "The passages do not mention the parameter count.",
        "This is not mentioned in the documents.",
        "Die Dokumente sagen dazu nichts.",
        "Die Quellen enthalten keine Angabe dazu.",
        "文档中没有提到这一点。",
        "资料未提及该信息。",
    ],
)
def test_refusals_are_recognised(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text", ["Qwen-7B was released in August 2023 [1].", "Die Dokumente nennen Qwen-7B.", "文档提到了通义千问。"]
)
def test_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_repetition_guard_stops_a_looping_model() -> None:
    looping = iter(["Qwen is great. "] * 50)
    out = "".join(guard_repetition(looping))
    assert out.count("Qwen is great.") == 3
    normal = ["Qwen-7B ", "was ", "first."]
    assert "".join(guard_repetition(iter(normal))) == "Qwen-7B was first."


def test_echoed_prompt_fencing_never_reaches_the_reader() -> None:
    text, _ = run_filter(["<pass", 'age number="1" source="x">Qwen-7B [1] </', "passage> and <b>bold</b> <p"], 1)
    assert text == "Qwen-7B [1]  and <b>bold</b> <p"


def test_a_caveat_after_an_answer_is_not_a_refusal() -> None:
    assert not is_refusal("Qwen-7B was first [1]. The documents do not mention its size.")
    assert is_refusal("Les documents ne le disent pas.")  # every canned refusal counts, French included
    assert is_refusal("Diese Angabe wird in den Quellen nicht erwähnt.")


def test_a_restated_question_is_not_attributed() -> None:
    passages = ["Alibaba released Qwen-7B in August 2023 as open source."]
    question = "When did Alibaba release Qwen-7B as open source?"
    assert attribute_sentences("When did Alibaba release Qwen-7B as open source?", passages, question) == []
    assert attribute_sentences("Alibaba released Qwen-7B in August 2023.", passages, question)


def test_short_answers_keep_the_question_language_when_plausible() -> None:
    from rag.ingest.text import detect_language

    assert detect_language("The documents don't say.", hint="en") == "en"
    assert detect_language("Die Dokumente sagen dazu nichts.", hint="en") == "de"


def test_a_citation_whose_passage_lacks_the_stated_number_is_unverified() -> None:
    from rag.answer.grounding import sentences_citing, supported

    passage = "It released its first open-source model (Qwen-7B) in August 2023."
    assert supported("Alibaba released Qwen-7B in August 2023 [1].", passage)
    assert not supported("Alibaba released Qwen-7B in August 2021 [1].", passage)
    assert not supported("The weather in Paris was sunny and warm [1].", passage)
    assert sentences_citing("A [1]. B [2][1]. C.") == {1: ["A [1].", "B [2][1]."], 2: ["B [2][1]."]}


def test_claims_no_passage_backs_are_found() -> None:
    from rag.answer.grounding import supported, unsupported_sentences

    passages = ["It released its first open-source model (Qwen-7B) in August 2023.",
                "Over 90,000 Qwen-based derivative models exist on Hugging Face."]
    answer = ("Alibaba's first open-source model was Qwen-7B, released in August 2023 [1]. "
              "It also sells rockets to Mars colonies. "
              "There are 90,000 derivative models [1]. "
              "Which model was first?")
    spans = unsupported_sentences(answer, lambda sentence, n: supported(sentence, passages[n - 1]), len(passages),
                                  question="Which model was Alibaba's first open-source model?")
    # the invented sentence, and the one citing a passage that does not back it; the echoed question is no claim
    assert [answer[s:e] for s, e in spans] == ["It also sells rockets to Mars colonies.",
                                                "There are 90,000 derivative models [1]."]
