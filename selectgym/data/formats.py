"""Recognise and normalise the record formats of our field into ``Example``.

Formats:
- ``alpaca``: ``instruction`` (+ optional ``input``, ``system``) and ``output``.
- ``sharegpt``: ``conversations`` or ``messages``, a list of turns (``from``/``value`` or
  ``role``/``content``); the last assistant turn is the response.
- ``preference``: ``prompt`` + ``chosen`` + ``rejected``, each a string or a message list.
- ``verifiable``: ``prompt`` or ``question`` (string or messages) + ``answer`` (or VERL's
  ``reward_model.ground_truth``), a string or a number (a list or an object is refused).
"""

from __future__ import annotations

from typing import Any

from selectgym.data.pool import Example, Message

FORMATS = ("alpaca", "sharegpt", "preference", "verifiable")
_ROLE = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
         "bot": "assistant", "model": "assistant"}


class RecordError(ValueError):
    """A record does not fit its format; the loader adds the file and line."""


def detect_format(record: dict[str, Any]) -> str:
    """Name the format of one record, or raise ``RecordError`` listing what was expected."""
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    keys = set(record)
    if {"chosen", "rejected"} <= keys:
        return "preference"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "conversations" in keys or "messages" in keys:
        return "sharegpt"
    if ("prompt" in keys or "question" in keys) and ("answer" in keys or "reward_model" in keys):
        return "verifiable"
    raise RecordError(
        f"unknown record format (keys: {', '.join(sorted(keys)) or 'none'}); expected alpaca "
        "(instruction, output), sharegpt (conversations), preference (prompt, chosen, rejected) "
        "or verifiable (prompt or question, answer)"
    )


def _text(record: dict[str, Any], key: str) -> str:
    if key not in record or record[key] is None:
        raise RecordError(f"missing field {key!r}")
    value = record[key]
    if not isinstance(value, str):
        raise RecordError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _messages(value: Any, key: str) -> list[Message]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise RecordError(f"field {key!r} must be a string or a non-empty list of messages")
    out = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RecordError(f"{key}[{i}] must be an object with role/content or from/value")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if role not in _ROLE or not isinstance(content, str):
            raise RecordError(f"{key}[{i}] needs a known role (user/assistant/system/human/gpt) and string content")
        out.append({"role": _ROLE[role], "content": content})
    return out


def _reply(value: Any, key: str) -> tuple[list[Message], str]:
    """A chosen/rejected field: a string, or messages whose last assistant turn is the reply."""
    if isinstance(value, str):
        return [], value
    msgs = _messages(value, key)
    if msgs[-1]["role"] != "assistant":
        raise RecordError(f"field {key!r} must end with an assistant message")
    return msgs[:-1], msgs[-1]["content"]


def _answer(value: Any) -> str:
    """A reference answer as the text a completion must give: a string, or a number written as JSON writes it.

    A list or an object is refused: its Python form (``['a', 'b']``) is no answer a model would write, so a
    verifier comparing against it could never match.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise RecordError(f"field 'answer' must be a string or a number, got a {type(value).__name__} "
                      f"({str(value)[:40]}); write the answer as the text a correct reply gives, e.g. \"3, 5\"")


def normalise(record: dict[str, Any], fmt: str) -> Example:
    """Turn one record of format ``fmt`` into an ``Example`` (id left empty unless the record has one)."""
    meta = record.get("meta") or {}
    if not isinstance(meta, dict):
        raise RecordError("field 'meta' must be an object")
    rid = record.get("id")
    ex_id = "" if rid is None else str(rid)
    if fmt == "alpaca":
        instruction = _text(record, "instruction")
        extra = record.get("input") or ""
        if not isinstance(extra, str):
            raise RecordError("field 'input' must be a string")
        prompt = [{"role": "user", "content": instruction + (f"\n\n{extra}" if extra else "")}]
        if record.get("system"):
            prompt.insert(0, {"role": "system", "content": str(record["system"])})
        return Example(ex_id, prompt, response=_text(record, "output"), meta=meta, raw=record)
    if fmt == "sharegpt":
        key = "conversations" if "conversations" in record else "messages"
        msgs = _messages(record.get(key), key)
        if msgs[-1]["role"] != "assistant" or len(msgs) < 2:
            raise RecordError(f"field {key!r} must end with an assistant turn after at least one user turn")
        return Example(ex_id, msgs[:-1], response=msgs[-1]["content"], meta=meta, raw=record)
    if fmt == "preference":
        c_prompt, chosen = _reply(record.get("chosen"), "chosen")
        _, rejected = _reply(record.get("rejected"), "rejected")
        if "prompt" in record:
            prompt = _messages(record["prompt"], "prompt")
        elif c_prompt:
            prompt = c_prompt
        else:
            raise RecordError("missing field 'prompt' (and 'chosen' holds no prompt messages)")
        return Example(ex_id, prompt, chosen=chosen, rejected=rejected, meta=meta, raw=record)
    if fmt == "verifiable":
        key = "prompt" if "prompt" in record else "question"
        prompt = _messages(record.get(key), key)
        if "answer" in record:
            answer = record["answer"]
        else:
            rm = record.get("reward_model")
            answer = rm.get("ground_truth") if isinstance(rm, dict) else None
        if answer is None:
            raise RecordError("missing field 'answer' (or reward_model.ground_truth)")
        response = record.get("solution")
        return Example(ex_id, prompt, response=response if isinstance(response, str) else None,
                       answer=_answer(answer), meta=meta, raw=record)
    raise RecordError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
