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


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        # Each raised past parse_predict (a 500) before issue #11's fixes.
        (b'{"prompt": "ab\\ud800"}', 422, "prompt has an unpaired surrogate at position 2"),
        (b'{"prompt": ["a", "b", "c", "xyzab\\udfff"]}', 422,
         "prompt[3] has an unpaired surrogate at position 5"),
        (b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400,
         "body is not valid JSON: nested 5001 levels deep; at most 512"),
        (b'{"prompt": "a", "n": ' + b"7" * 4301 + b"}", 400,
         "body is not valid JSON: a number has 4301 digits; at most 4300"),
        (b'{"prompt": NaN}', 400, "body is not valid JSON: NaN is not a JSON value"),
        (b'{"prompt": "a", "x": [Infinity]}', 400,
         "body is not valid JSON: Infinity is not a JSON value"),
    ],
)  # fmt: skip
def test_json_no_tokenizer_or_encoder_accepts(raw: bytes, status: int, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_predict(raw, 4)
    assert (caught.value.status, str(caught.value)) == (status, message)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"prompt": "\\ud83d\\ude00"}',  # a surrogate pair is one character, not a problem
        b'{"prompt": "a\\u0000b\\u001b"}',  # control characters: the tokenizer encodes them
        b'{"prompt": "a", "n": ' + b"7" * 4300 + b"}",  # at the limit
        b'{"prompt": "a", "x": ' + b"[" * 500 + b"]" * 500 + b"}",
        '{"prompt": "hé"}'.encode("utf-16"),  # json.loads detects UTF-16/32
    ],
)
def test_odd_but_valid_bodies_parse(raw: bytes) -> None:
    assert len(parse_predict(raw, 4).prompts) == 1
