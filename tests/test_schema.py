"""/predict body parsing: every malformed body gets a 4xx status and a message naming it."""

import json

import pytest

from llmserve.server.schema import BadRequest, parse_predict


def parse(body: object, max_prompts: int = 4):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_predict(raw, max_prompts)


def test_single_and_list() -> None:
    assert parse({"prompt": "hi"}).prompts == ["hi"]
    assert not parse({"prompt": "hi"}).is_list
    request = parse({"prompt": ["a", "b"]})
    assert request.prompts == ["a", "b"] and request.is_list


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (["a"], 400, "JSON object"),
        ({}, 422, 'missing field "prompt"'),
        ({"prompt": 5}, 422, "got number"),
        ({"prompt": None}, 422, "got null"),
        ({"prompt": {"a": 1}}, 422, "got object"),
        ({"prompt": [["a"]]}, 422, "prompt[0] must be a string, got list"),
        ({"prompt": ["a", 3]}, 422, "prompt[1] must be a string, got number"),
        ({"prompt": ""}, 422, "prompt is empty"),
        ({"prompt": "   "}, 422, "prompt is empty"),
        ({"prompt": ["a", ""]}, 422, "prompt[1] is empty"),
        ({"prompt": []}, 422, "empty list"),
        ({"prompt": ["a"] * 5}, 413, "at most 4 (MAX_BATCH_PROMPTS)"),
    ],
)
def test_bad_bodies(body: object, status: int, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(body)
    assert caught.value.status == status
    assert words in str(caught.value)
