"""Sample completions from a policy: one interface, three backends.

``TransformersGenerator`` runs ``model.generate`` on the model in memory (the default: on-policy for the
proxy being trained), ``VLLMGenerator`` runs a local vLLM engine (fast, needs ``scripts/install_vllm.sh``),
``OpenAIGenerator`` asks any OpenAI-compatible server (``vllm serve``, llama.cpp, a hosted API). Prompts
are chat messages rendered with the model's own chat template, as in training.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
import torch

from selectgym.data.pool import Message
from selectgym.data.render import prompt_text
from selectgym.errors import SelectgymError
from selectgym.proxies.secrets import redact_secrets, redact_url, url_secrets
from selectgym.registry import Registry

log = logging.getLogger(__name__)



def _check_prompts(prompts: Sequence[Sequence[Message]]) -> list[list[Message]]:
    """Chat prompts with at least one non-empty message (sampling from an empty prompt is a silent bug)."""
    out = []
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, str) or not prompt or not all(isinstance(m, dict) for m in prompt):
            raise SelectgymError(f"prompt {i} is not a list of chat messages ({{'role', 'content'}} dicts)")
        if not any(str(m.get("content") or "").strip() for m in prompt):
            raise SelectgymError(f"prompt {i} is empty; every prompt needs a message with content")
        out.append(list(prompt))
    return out


class Generator(ABC):
    """Sample ``n`` completions for each chat prompt; temperature 0 means greedy decoding."""

    def generate(self, prompts: Sequence[Sequence[Message]], n: int = 1, *, max_new_tokens: int = 64,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int = 0) -> list[list[str]]:
        """``n`` completion strings per prompt, in prompt order; the same seed gives the same completions."""
        if n < 1 or max_new_tokens < 1:
            raise SelectgymError(f"n and max_new_tokens must be >= 1, got n={n}, max_new_tokens={max_new_tokens}")
        if temperature < 0 or not 0 < top_p <= 1:
            raise SelectgymError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        prompts = _check_prompts(prompts)
        if not prompts:
            return []
        out = self._generate(prompts, n, max_new_tokens=max_new_tokens, temperature=float(temperature),
                             top_p=float(top_p), seed=int(seed))
        if len(out) != len(prompts) or any(len(c) != n for c in out):
            raise SelectgymError(f"{type(self).__name__} returned {[len(c) for c in out]} completions for "
                                 f"{len(prompts)} prompts x {n}; the backend dropped some")
        return out

    @abstractmethod
    def _generate(self, prompts: list[list[Message]], n: int, *, max_new_tokens: int, temperature: float,
                  top_p: float, seed: int) -> list[list[str]]: ...

    @classmethod
    def build(cls, *, model=None, tokenizer=None, model_path: str | os.PathLike | None = None,
              lora_path: str | os.PathLike | None = None, base_url: str | None = None, api_model: str | None = None,
              **kw: Any) -> Generator:
        """This backend from ``make_generator``'s arguments: each backend takes the ones it needs, and ``kw``."""
        return cls(**kw)


class TransformersGenerator(Generator):
    """``model.generate`` in left-padded batches; seeded inside ``torch.random.fork_rng`` (global RNG untouched)."""

    def __init__(self, model, tokenizer, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise SelectgymError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer, self.batch_size = model, tokenizer, int(batch_size)

    @classmethod
    def build(cls, *, model=None, tokenizer=None, model_path=None, lora_path=None, base_url=None, api_model=None,
              **kw: Any) -> Generator:
        if model is None:
            if model_path is None:
                raise SelectgymError("the transformers backend needs a model and tokenizer, or a model_path")
            from selectgym.proxies.models import load_model

            model, tokenizer = load_model(str(model_path))
            if lora_path is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(lora_path))
        if tokenizer is None:
            raise SelectgymError("the transformers backend needs the model's tokenizer")
        return cls(model, tokenizer, **kw)

    def _generate(self, prompts, n, *, max_new_tokens, temperature, top_p, seed):
        tok, model = self.tokenizer, self.model
        device = next(model.parameters()).device
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        sampling = temperature > 0
        copies = n if sampling else 1  # greedy completions are identical: decode once, repeat
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sampling,
                                   "num_return_sequences": copies, "pad_token_id": pad_id,
                                   "eos_token_id": tok.eos_token_id}
        if sampling:
            options.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        texts = [prompt_text(tok, p) for p in prompts]
        per_batch = max(1, self.batch_size // copies)
        out: list[list[str]] = []
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
                torch.manual_seed(seed)
                for start in range(0, len(texts), per_batch):
                    enc = tok(texts[start:start + per_batch], return_tensors="pt", padding=True,
                              padding_side="left", add_special_tokens=False)
                    ids = enc["input_ids"].to(device)
                    seqs = model.generate(input_ids=ids, attention_mask=enc["attention_mask"].to(device), **options)
                    new = tok.batch_decode(seqs[:, ids.shape[1]:], skip_special_tokens=True)
                    out.extend((new[i:i + copies] * n)[:n] for i in range(0, len(new), copies))
        finally:
            model.train(was_training)
        return out


def greedy_completions(model, tokenizer, examples: Sequence, *, max_new_tokens: int = 16,
                       batch_size: int = 16) -> list[str]:
    """One greedy completion per example (its ``prompt``), in order."""
    generator = TransformersGenerator(model, tokenizer, batch_size=batch_size)
    out = generator.generate([ex.prompt for ex in examples], n=1, max_new_tokens=max_new_tokens, temperature=0.0)
    return [row[0] for row in out]


def prompt_seed(seed: int, *index: int) -> int:
    """A per-request seed: one shared seed would give every prompt the same random stream (correlated samples)."""
    return int(np.random.SeedSequence([seed, *index]).generate_state(1)[0])


def _lora_rank(lora_path: str | os.PathLike) -> int:
    config = Path(lora_path) / "adapter_config.json"
    if not config.exists():
        raise SelectgymError(f"{lora_path} has no adapter_config.json; pass a folder saved by peft's save_pretrained")
    return int(json.loads(config.read_text())["r"])


class VLLMGenerator(Generator):
    """A local vLLM engine, optionally with one LoRA adapter (``LoRARequest``).

    ``engine_kwargs`` go to ``vllm.LLM`` (e.g. ``enforce_eager=True, max_model_len=512, dtype="bfloat16"``;
    on CPU set ``VLLM_CPU_KVCACHE_SPACE`` (GiB) in the environment). vLLM starts an engine process, so a
    script that builds this must run under ``if __name__ == "__main__":``.
    """

    def __init__(self, model_path: str | os.PathLike, lora_path: str | os.PathLike | None = None,
                 **engine_kwargs: Any) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise SelectgymError("vllm is not installed; run scripts/install_vllm.sh and use .venv-vllm/bin/python, "
                                 "or pick the transformers backend")
        if not Path(model_path).exists():
            raise SelectgymError(f"model {model_path} is not a local folder; vLLM here loads local models only")
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        self.lora_request = None
        if lora_path is not None:
            rank = _lora_rank(lora_path)
            engine_kwargs.setdefault("enable_lora", True)
            engine_kwargs.setdefault("max_lora_rank", max(8, 1 << (rank - 1).bit_length()))
            self.lora_request = LoRARequest("selectgym-adapter", 1, str(lora_path))
        self.llm = LLM(model=str(model_path), **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    @classmethod
    def build(cls, *, model=None, tokenizer=None, model_path=None, lora_path=None, base_url=None, api_model=None,
              **kw: Any) -> Generator:
        if model_path is None:
            raise SelectgymError("the vllm backend needs model_path (a local model folder)")
        return cls(model_path, lora_path, **kw)

    def _generate(self, prompts, n, *, max_new_tokens, temperature, top_p, seed):
        from vllm import SamplingParams

        copies = n if temperature > 0 else 1  # vLLM refuses n > 1 when greedy; the copies would be identical
        params = [SamplingParams(n=copies, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                                 seed=prompt_seed(seed, i)) for i in range(len(prompts))]
        token_prompts = [{"prompt_token_ids": self.tokenizer(prompt_text(self.tokenizer, p),
                                                             add_special_tokens=False)["input_ids"]}
                         for p in prompts]
        results = self.llm.generate(token_prompts, params, lora_request=self.lora_request, use_tqdm=False)
        return [([c.text for c in r.outputs] * n)[:n] for r in results]


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def chat_url(base_url: str) -> tuple[str, tuple[str, str] | None]:
    """``(request URL, (user, password) or None)`` for a server's base URL.

    ``/v1`` (unless the path ends with it) and ``/chat/completions`` are appended to the URL's *path*; its
    query (``?api-version=...``, ``?api_key=...``) stays at the end. Userinfo (``user:password@``) is taken
    out of the URL: urllib cannot send it there, so it goes as HTTP Basic credentials instead.
    """
    shown = redact_url(base_url)
    if not str(base_url).startswith(("http://", "https://")):
        raise SelectgymError(f"base_url must start with http:// or https://, got {shown!r}")
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise SelectgymError(f"base_url {shown!r} is not a valid URL (check the host and port)") from None
    if not parts.hostname:
        raise SelectgymError(f"base_url {shown!r} has no host; use e.g. http://localhost:8000/v1")
    path = parts.path.rstrip("/")
    path = (path if path.endswith("/v1") else path + "/v1") + "/chat/completions"
    auth = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        auth = (unquote(user), unquote(password))
    return urlunsplit((parts.scheme, netloc, path, parts.query, "")), auth


class ChatClient:
    """POST to an OpenAI-compatible ``/v1/chat/completions`` with bounded retries and exponential backoff.

    Connection failures, timeouts, 429/5xx answers and unparsable replies are retried ``max_retries``
    times; then a one-line ``SelectgymError``. The API key (read from ``api_key_env``) goes in the
    ``Authorization`` header only. Credentials inside ``base_url`` (``user:password@host``, sent as HTTP
    Basic auth; ``?api_key=...``, kept in the query) are masked in every message and log line (``shown_url``),
    and so is the key's value, or any ``Bearer`` token, that a server's reply echoes.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 30,
                 max_retries: int = 2, backoff: float = 0.5) -> None:
        if max_retries < 0 or timeout <= 0:
            raise SelectgymError(f"need max_retries >= 0 and timeout > 0, got {max_retries}, {timeout}")
        self.url, self._basic = chat_url(str(base_url))
        self.shown_url = redact_url(self.url)
        self._url_secrets = url_secrets(base_url)
        if self._basic is not None:
            self._url_secrets.append(self._basic_token())
        self.model, self.api_key_env = model, api_key_env
        self.timeout, self.max_retries, self.backoff = float(timeout), int(max_retries), float(backoff)
        if self._basic is not None and self._key():
            raise SelectgymError(f"base_url {redact_url(base_url)!r} carries a user:password and ${api_key_env} is "
                                 f"set too; keep one: drop the credentials from the URL (the key goes as a Bearer "
                                 f"token), or unset ${api_key_env}")

    def _key(self) -> str | None:
        return (os.environ.get(self.api_key_env) or None) if self.api_key_env else None

    def _basic_token(self) -> str:
        user, password = self._basic or ("", "")
        return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    def redact(self, text: str) -> str:
        """``text`` (a server's reply, an error) without the API key, the URL's credentials or a Bearer token."""
        return redact_secrets(text, [*self._url_secrets, self._key()])

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self._basic is not None:
            headers["Authorization"] = f"Basic {self._basic_token()}"
        return headers

    def complete(self, messages: list[Message], **params: Any) -> list[str]:
        """The ``content`` of every choice the server returns for one conversation."""
        body = json.dumps({"model": self.model, "messages": messages, **params}).encode("utf-8")
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as err:
                reply = self.redact(err.read().decode("utf-8", "replace"))
                problem = f"HTTP {err.code} {_one_line(reply, 80)}"
                if err.code != 429 and err.code < 500:
                    raise SelectgymError(f"{self.shown_url} refused the request ({problem}); check the model name "
                                         f"{self.model!r} and the key in ${self.api_key_env}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                problem = self.redact(f"{type(err).__name__}: {getattr(err, 'reason', err)}")
            else:
                try:
                    return [str(c["message"]["content"] or "") for c in json.loads(raw)["choices"]]
                except (ValueError, KeyError, TypeError):
                    reply = self.redact(raw.decode("utf-8", "replace"))
                    problem = f"not a chat-completions reply: {_one_line(reply, 80)!r}"
            log.warning("chat request to %s failed (attempt %d/%d): %s", self.shown_url, attempt + 1,
                        self.max_retries + 1, problem)
        raise SelectgymError(f"OpenAI-compatible server at {self.shown_url} failed {self.max_retries + 1} times "
                             f"({_one_line(problem)}); start it (e.g. `vllm serve MODEL`) or fix base_url")


class OpenAIGenerator(Generator):
    """Completions from an OpenAI-compatible server; asks for ``n`` choices and tops up if it returns fewer."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 30,
                 max_retries: int = 2, backoff: float = 0.5) -> None:
        self.client = ChatClient(base_url, model, api_key_env, timeout, max_retries, backoff)

    @classmethod
    def build(cls, *, model=None, tokenizer=None, model_path=None, lora_path=None, base_url=None, api_model=None,
              **kw: Any) -> Generator:
        if not base_url or not api_model:
            raise SelectgymError("the openai backend needs base_url (e.g. http://localhost:8000/v1) and api_model")
        return cls(base_url, api_model, **kw)

    def _generate(self, prompts, n, *, max_new_tokens, temperature, top_p, seed):
        out = []
        for i, prompt in enumerate(prompts):
            got: list[str] = []
            for extra in range(n):
                if len(got) >= n:
                    break
                got += self.client.complete(prompt, n=n - len(got), max_tokens=max_new_tokens, temperature=temperature,
                                            top_p=top_p, seed=prompt_seed(seed, i, extra))
            out.append(got[:n])
        return out


#: generation backend name -> class; ``auto`` picks one of them, a dotted path ``pkg.mod:Class`` names your own.
GENERATORS = Registry("generation backend", {"transformers": TransformersGenerator, "vllm": VLLMGenerator,
                                             "openai": OpenAIGenerator}, base=Generator)
BACKENDS = ("auto", *GENERATORS)


def make_generator(backend: str = "auto", *, model=None, tokenizer=None, model_path: str | os.PathLike | None = None,
                   lora_path: str | os.PathLike | None = None, base_url: str | None = None,
                   api_model: str | None = None, **kw: Any) -> Generator:
    """Build a generator; ``auto`` picks vLLM when it is importable and a ``model_path`` is given."""
    if backend == "auto":
        backend = "vllm" if model_path is not None and importlib.util.find_spec("vllm") else "transformers"
    cls = GENERATORS.resolve(backend, also=("auto",))
    GENERATORS.check_options(backend, kw)
    log.info("generation backend: %s", backend)
    return cls.build(model=model, tokenizer=tokenizer, model_path=model_path, lora_path=lora_path, base_url=base_url,
                     api_model=api_model, **kw)
