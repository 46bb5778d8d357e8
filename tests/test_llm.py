"""The persona LLM (SmolLM2-135M through llama-cpp-python): in character, cancellable, cached prefix."""

from __future__ import annotations

import re
import threading

import pytest
from kiosk_helpers import demo_persona, llm

from appliance.conversation import prompt
from appliance.messages import ChatMessage


@pytest.fixture(scope="module")
def model(models_dir):
    m = llm(models_dir)
    m.warm(prompt.prefix(demo_persona()))
    return m


def ask(model, question: str, cancel=None) -> str:
    msgs = [*prompt.prefix(demo_persona()), ChatMessage("user", question)]
    return "".join(model.generate(msgs, cancel or threading.Event()))


def test_knows_its_name(model):
    for q in ("What is your name?", "Who are you?"):
        assert "Anna" in ask(model, q)


def test_reply_is_capped_and_does_not_loop(model):
    text = ask(model, "Tell me everything you know about rockets, in great detail.")
    assert 0 < len(model.llm.tokenize(text.encode())) <= model.max_tokens + 1
    words = re.findall(r"\w+", text.lower())
    grams = [" ".join(words[i:i + 4]) for i in range(len(words) - 3)]
    assert all(grams.count(g) < 3 for g in grams), text


def test_generation_stops_when_cancelled(model):
    cancel = threading.Event()
    msgs = [*prompt.prefix(demo_persona()), ChatMessage("user", "Tell me a long story about the moon.")]
    pieces = []
    for piece in model.generate(msgs, cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert len(pieces) == 3


def test_persona_prefix_state_is_restored_not_recomputed(model, monkeypatch):
    # Another prompt overwrites the KV cache ...
    "".join(model.generate([ChatMessage("system", "You are a pirate."), ChatMessage("user", "Hi")],
                           threading.Event()))
    restored, evaluated = [], []
    original_restore, original_eval = model._restore_cells, model.llm.eval
    monkeypatch.setattr(model, "_restore_cells", lambda p, c: (restored.append(1), original_restore(p, c))[1])
    monkeypatch.setattr(model.llm, "eval", lambda tokens: (evaluated.append(len(tokens)), original_eval(tokens))[1])
    # ... and the next persona turn loads the saved prefix state instead of evaluating it again.
    assert ask(model, "Hello!")
    assert restored == [1]
    prefix_tokens = len(next(iter(model._prefixes)))
    assert evaluated[0] < 20 < prefix_tokens        # only the question was evaluated, not the ~150-token prefix
    # While the prefix is still in the cache nothing needs restoring.
    ask(model, "How are you?")
    assert restored == [1]


def test_a_restored_prefix_predicts_exactly_as_an_evaluated_one(model):
    msgs = [*prompt.prefix(demo_persona()), ChatMessage("user", "Where is the Moon?")]
    tokens = model._format(msgs)
    prefix, cells = next(iter(model._prefixes.items()))
    assert tuple(tokens[:len(prefix)]) == prefix
    model.llm.reset()
    model.llm.eval(tokens)                           # cold: the whole prompt
    cold = model.llm.scores[len(tokens) - 1].copy()
    model.llm.reset()
    model.llm.eval(model._format([ChatMessage("system", "You are a pirate.")]))  # something else in the cache
    model._restore_cells(prefix, cells)
    model.llm.eval(tokens[len(prefix):])             # warm: the saved prefix, then the question
    warm = model.llm.scores[len(tokens) - 1]
    assert int(cold.argmax()) == int(warm.argmax())
    assert abs(cold - warm).max() < 1e-2 * max(1.0, float(abs(cold).max()))


def test_a_restarted_kiosk_takes_its_prefixes_from_disk(models_dir, tmp_path, monkeypatch):
    from kiosk_helpers import MANIFEST

    from appliance import models as models_mod
    from appliance.engines.llm_llama import LlamaPersonaLLM

    path = models_mod.load_manifest(MANIFEST).get("smollm2-135m")
    path = path.path(models_dir, path.files[0].name)
    prefix = prompt.prefix(demo_persona())
    first = LlamaPersonaLLM(path, max_tokens=20, temperature=0.0, cache_dir=tmp_path)
    first.warm(prefix)
    assert len(list(tmp_path.glob("*.kv"))) == 1
    question = [*prefix, ChatMessage("user", "What is your name?")]
    said = "".join(first.generate(question, threading.Event()))

    again = LlamaPersonaLLM(path, max_tokens=20, temperature=0.0, cache_dir=tmp_path)  # the kiosk restarted
    evaluated = []
    original = again.llm.eval
    monkeypatch.setattr(again.llm, "eval", lambda tokens: (evaluated.append(len(tokens)), original(tokens))[1])
    again.warm(prefix)
    assert evaluated == []                                  # nothing evaluated: the cells came from disk
    assert "".join(again.generate(question, threading.Event())) == said
    assert max(evaluated) < 20                              # and the turn evaluated only its question

    next(tmp_path.glob("*.kv")).write_bytes(b"garbage")    # a damaged file: evaluated again, and replaced
    third = LlamaPersonaLLM(path, max_tokens=20, temperature=0.0, cache_dir=tmp_path)
    third.warm(prefix)
    assert "".join(third.generate(question, threading.Event())) == said
    assert next(tmp_path.glob("*.kv")).stat().st_size > 1000
