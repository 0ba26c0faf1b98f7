"""Per-example gradients of the SFT loss over the LoRA parameters, batched in closed form.

A LoRA adapter is two bias-free ``nn.Linear`` layers, so the gradient of sequence ``b``'s loss with respect
to one of their weights is ``sum_t g_bt x_bt^T``: ``x`` is the layer's input and ``g`` the loss gradient at its
output. One forward saves ``x`` and ``y`` for every adapter layer, one backward of ``sum_b w_b L_b`` gives every
``g`` (``g`` of sequence ``b`` depends on ``L_b`` only, as sequences do not interact), and an einsum per layer
turns them into per-example weight gradients. peft's dropout sits before ``lora_A`` and its scaling after
``lora_B``, so the saved inputs and output gradients already include both. ``loop_per_example_grads`` (one
backward per sequence) is the reference the fast path is tested and benchmarked against.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selectgym.errors import SelectgymError
from selectgym.proxies.lora import lora_parameters

GRADIENT_TYPES = ("sgd", "adam")
REDUCTIONS = ("mean", "sum")


def grad_dim(model) -> int:
    """Length of a flattened LoRA gradient (the total size of ``lora_parameters(model)``)."""
    return sum(p.numel() for _, p in lora_parameters(model))


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def _eval_mode(model) -> Iterator[None]:
    """Switch dropout off for the call and give every module its own mode back afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _check_inputs(batch: dict[str, torch.Tensor], reduction: str, weights, groups, n_groups):
    """Validate a call and fill in the defaults: weights (B,), groups (B,), n_groups."""
    missing = [k for k in ("input_ids", "attention_mask", "response_mask") if k not in batch]
    if missing:
        raise SelectgymError(f"batch lacks {missing}; build it with selectgym.data.render.collate")
    if reduction not in REDUCTIONS:
        raise SelectgymError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    size = batch["input_ids"].shape[0]
    weights = torch.ones(size) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    groups = torch.arange(size) if groups is None else torch.as_tensor(groups, dtype=torch.long)
    if weights.shape != (size,) or groups.shape != (size,):
        raise SelectgymError(f"weights and groups need one entry per sequence ({size}), got "
                             f"{tuple(weights.shape)} and {tuple(groups.shape)}")
    if size and groups.min() < 0:
        raise SelectgymError("groups must be non-negative row indices")
    needed = int(groups.max()) + 1 if size else 0
    n_groups = needed if n_groups is None else n_groups
    if n_groups < needed:
        raise SelectgymError(f"n_groups={n_groups} but groups uses row {needed - 1}; raise n_groups")
    return weights.float(), groups, n_groups


def _sequence_losses(logits: torch.Tensor, positions: torch.Tensor | None, input_ids: torch.Tensor,
                     response_mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-sequence NLL over response tokens; ``logits[:, k]`` is the prediction made at ``positions[k]``."""
    if positions is None:
        positions = torch.arange(input_ids.shape[1] - 1, device=input_ids.device)
    labels = input_ids[:, positions + 1]
    mask = response_mask[:, positions + 1].to(torch.float32)
    nll = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none").view_as(mask)
    total = (nll * mask).sum(1)
    if reduction == "mean":
        total = total / response_mask[:, 1:].sum(1).clamp(min=1).to(torch.float32)
    return total


def _keeps_logits_subset(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def sequence_losses(model, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """Per-sequence response losses ``(B,)`` of a right-padded batch, differentiable (float32).

    The LM head runs only at positions where some sequence predicts a response token, which skips most of
    the vocabulary projection over prompts.
    """
    if reduction not in REDUCTIONS:
        raise SelectgymError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    device = _model_device(model)
    ids, attn, resp = (batch[k].to(device) for k in ("input_ids", "attention_mask", "response_mask"))
    resp = resp * attn  # the same mask as ``sequence_logps``: a response mask over padding cannot leak
    kwargs = {"input_ids": ids, "attention_mask": attn, "use_cache": False}
    positions = None
    if _keeps_logits_subset(model) and ids.shape[1] > 1:
        positions = torch.nonzero(resp[:, 1:].any(0)).flatten()
        if positions.numel() == 0:
            positions = torch.zeros(1, dtype=torch.long, device=ids.device)
        kwargs["logits_to_keep"] = positions
    logits = model(**kwargs).logits
    if positions is None:
        logits = logits[:, :-1]
    return _sequence_losses(logits, positions, ids, resp, reduction)


def _lora_layers(model) -> list[tuple[nn.Linear, list[tuple[str, torch.Tensor]]]]:
    """Every ``nn.Linear`` that owns LoRA parameters, with its (parameter name, kind) pairs."""
    wanted = {name for name, _ in lora_parameters(model)}
    layers, covered = [], set()
    for mname, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        own = [(f"{mname}.{pname}", pname) for pname, _ in module.named_parameters(recurse=False)
               if f"{mname}.{pname}" in wanted]
        if own:
            layers.append((module, own))
            covered.update(n for n, _ in own)
    if not wanted:
        raise SelectgymError("the model has no trainable LoRA parameters; wrap it with attach_lora first")
    if covered != wanted:
        extra = sorted(wanted - covered)[:3]
        raise SelectgymError(f"LoRA parameters {extra} are not nn.Linear weights (DoRA or embedding adapters?); "
                             "use loop_per_example_grads for this adapter type")
    return layers


@contextmanager
def _capture(layers) -> Iterator[dict[nn.Linear, list[tuple[torch.Tensor, torch.Tensor]]]]:
    """Record (input, output) of every call of each layer during the forward pass."""
    records: dict[nn.Linear, list[tuple[torch.Tensor, torch.Tensor]]] = {m: [] for m, _ in layers}

    def hook(module, args, output):
        records[module].append((args[0].detach(), output))

    handles = [m.register_forward_hook(hook) for m, _ in layers]
    try:
        yield records
    finally:
        for h in handles:
            h.remove()


def per_example_grads(model, batch: dict[str, torch.Tensor], *, reduction: str = "mean",
                      weights: torch.Tensor | None = None, groups: torch.Tensor | None = None,
                      n_groups: int | None = None, return_losses: bool = False):
    """Weighted, grouped per-sequence LoRA gradients from one batched forward and one backward.

    Row ``r`` is ``sum_{b: groups[b]=r} weights[b] * grad L_b`` over ``lora_parameters(model)`` flattened in
    order; ``L_b`` is sequence ``b``'s response-token NLL (token mean when ``reduction="mean"``). Returns a
    float32 ``(n_groups, grad_dim)`` tensor, plus the detached losses ``(B,)`` when ``return_losses``.
    """
    weights, groups, n_groups = _check_inputs(batch, reduction, weights, groups, n_groups)
    device = _model_device(model)
    batch = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "response_mask")}
    params = lora_parameters(model)
    layers = _lora_layers(model)
    offsets, start = {}, 0
    for name, p in params:
        offsets[name] = (start, p.numel())
        start += p.numel()
    out = torch.zeros(n_groups, start, dtype=torch.float32, device=device)
    weights, groups = weights.to(device), groups.to(device)
    with _eval_mode(model), torch.enable_grad(), _capture(layers) as records:
        losses = sequence_losses(model, batch, reduction)
        calls = [(own, x, y) for m, own in layers for x, y in records[m]]
        grads = torch.autograd.grad((losses * weights).sum(), [y for _, _, y in calls], allow_unused=True)
    for (own, x, _), g in zip(calls, grads, strict=True):
        if g is None:
            continue
        size = x.shape[0]
        x = x.reshape(size, -1, x.shape[-1]).float()
        g = g.reshape(size, -1, g.shape[-1]).float()
        for name, kind in own:
            per_sample = torch.einsum("bto,bti->boi", g, x) if kind == "weight" else g.sum(1)
            lo, n = offsets[name]
            out[:, lo:lo + n].index_add_(0, groups, per_sample.reshape(size, n))
    if return_losses:
        return out, losses.detach()
    return out


def loop_per_example_grads(model, batch: dict[str, torch.Tensor], *, reduction: str = "mean",
                           weights: torch.Tensor | None = None, groups: torch.Tensor | None = None,
                           n_groups: int | None = None, return_losses: bool = False):
    """The reference for ``per_example_grads``: each sequence, unpadded, gets its own forward and backward."""
    weights, groups, n_groups = _check_inputs(batch, reduction, weights, groups, n_groups)
    device = _model_device(model)
    params = [p for _, p in lora_parameters(model)]
    if not params:
        raise SelectgymError("the model has no trainable LoRA parameters; wrap it with attach_lora first")
    out = torch.zeros(n_groups, sum(p.numel() for p in params), dtype=torch.float32, device=device)
    losses = torch.zeros(len(weights), dtype=torch.float32)
    with _eval_mode(model), torch.enable_grad():
        for b in range(len(weights)):
            n = int(batch["attention_mask"][b].sum())
            one = {k: batch[k][b:b + 1, :n].to(device) for k in ("input_ids", "attention_mask", "response_mask")}
            logits = model(input_ids=one["input_ids"], attention_mask=one["attention_mask"], use_cache=False).logits
            resp = one["response_mask"] * one["attention_mask"]
            loss = _sequence_losses(logits[:, :-1], None, one["input_ids"], resp, reduction)[0]
            grads = torch.autograd.grad(loss * weights[b].to(device), params, allow_unused=True)
            flat = torch.cat([(torch.zeros_like(p) if g is None else g).flatten().float()
                              for g, p in zip(grads, params, strict=True)])
            out[int(groups[b])] += flat
            losses[b] = loss.detach().float().cpu()
    if return_losses:
        return out, losses
    return out


def adam_state(model, optimizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam's first and second moments flattened in ``lora_parameters`` order (zeros where there is no state)."""
    if not isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        raise SelectgymError(f"Adam-normalised gradients need an Adam or AdamW optimizer, got "
                             f"{type(optimizer).__name__}; use gradient_type='sgd' instead")
    avg, avg_sq = [], []
    for _, p in lora_parameters(model):
        state = optimizer.state.get(p, {})
        avg.append(state["exp_avg"].flatten().float().cpu() if "exp_avg" in state else torch.zeros(p.numel()))
        avg_sq.append(state["exp_avg_sq"].flatten().float().cpu() if "exp_avg_sq" in state
                      else torch.zeros(p.numel()))
    return torch.cat(avg), torch.cat(avg_sq)


#: where Adam's eps sits: ``inside`` the root as LESS's and NICE's released code (``m' / sqrt(v' + eps)``), or
#: ``outside`` as ``torch.optim.Adam`` (``m' / (sqrt(v') + eps)``); the two differ where ``sqrt(v') < sqrt(eps)``.
ADAM_EPS_FORMS = ("inside", "outside")


def adam_normalise(grads: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, beta1: float = 0.9,
                   beta2: float = 0.999, eps: float = 1e-8, eps_form: str = "inside") -> torch.Tensor:
    """The update direction Adam would take after one more step on each row's gradient (LESS/NICE).

    ``m' = b1 m + (1 - b1) g``, ``v' = b2 v + (1 - b2) g^2``, no bias correction; ``eps_form="inside"`` (the
    default) returns ``m' / sqrt(v' + eps)`` exactly as LESS's ``collect_grad_reps.py``.
    """
    if eps_form not in ADAM_EPS_FORMS:
        raise SelectgymError(f"adam_eps must be one of {', '.join(ADAM_EPS_FORMS)}, got {eps_form!r}")
    if grads.shape[-1] != exp_avg.shape[-1] or exp_avg.shape != exp_avg_sq.shape:
        raise SelectgymError(f"gradient width {grads.shape[-1]} does not match the optimizer state "
                             f"{tuple(exp_avg.shape)}/{tuple(exp_avg_sq.shape)}; was it taken from this model?")
    grads = grads.float()
    exp_avg = exp_avg.to(grads.device, torch.float32)
    exp_avg_sq = exp_avg_sq.to(grads.device, torch.float32)
    m = beta1 * exp_avg + (1 - beta1) * grads
    v = beta2 * exp_avg_sq + (1 - beta2) * grads.square()
    if eps_form == "inside":
        return m / (v + eps).sqrt()
    return m / (v.sqrt() + eps)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Index batches of similar length (less padding); a stable sort keeps ties in input order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def sft_grads(model, tokenizer, examples, *, projector=None, batch_size: int = 8, max_length: int = 256,
              field: str = "target", gradient_type: str = "sgd", optimizer_state=None, return_losses: bool = False,
              adam_eps: str = "inside"):
    """Projected per-example SFT gradients ``(N, d)`` float32, rows in the order of ``examples``.

    ``gradient_type="adam"`` applies ``adam_normalise`` (eps placed as ``adam_eps`` says) with
    ``optimizer_state = adam_state(model, opt)``.
    With ``return_losses`` also returns each example's token-mean response loss ``(N,)``.
    """
    from selectgym.data.render import collate, render_example

    if gradient_type not in GRADIENT_TYPES:
        raise SelectgymError(f"gradient_type must be one of {GRADIENT_TYPES}, got {gradient_type!r}")
    if gradient_type == "adam" and optimizer_state is None:
        raise SelectgymError("gradient_type='adam' needs optimizer_state=adam_state(model, optimizer)")
    if batch_size < 1:
        raise SelectgymError(f"batch_size must be >= 1, got {batch_size}")
    examples = list(examples)
    width = projector.dim_out if projector is not None else grad_dim(model)
    out = np.zeros((len(examples), width), dtype=np.float32)
    losses = np.zeros(len(examples), dtype=np.float32)
    rendered = [render_example(tokenizer, ex, max_length=max_length, field=field) for ex in examples]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for rows in length_batches([len(r.input_ids) for r in rendered], batch_size):
        batch = collate([rendered[i] for i in rows], pad_id)
        grads, loss = per_example_grads(model, batch, reduction="mean", return_losses=True)
        if gradient_type == "adam":
            grads = adam_normalise(grads, *optimizer_state, eps_form=adam_eps)
        if projector is not None:
            grads = projector.project(grads)
        out[rows] = grads.float().cpu().numpy()
        losses[rows] = loss.float().cpu().numpy()
    if return_losses:
        return out, losses
    return out
