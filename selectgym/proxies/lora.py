"""Attach LoRA adapters with peft; only the adapter trains."""

from __future__ import annotations

from dataclasses import dataclass, field

from selectgym.errors import SelectgymError

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraSpec:
    """LoRA settings (rank, scaling, which linear layers)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(ALL_LINEAR))

    def __post_init__(self) -> None:
        # the flags of every command that trains LoRA (features, finetune) reach here as --lora-*
        if self.alpha < 1:
            raise SelectgymError(f"--lora-alpha must be >= 1 (LoRA scales by alpha / r; 0 would silence it), e.g. 16; "
                                 f"got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise SelectgymError(f"--lora-dropout must lie in [0, 1), e.g. 0.05; got {self.dropout}")

    def to_peft(self):
        from peft import LoraConfig

        if self.r < 1:
            raise SelectgymError(f"LoRA rank must be >= 1, got {self.r}")
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.target_modules), task_type="CAUSAL_LM")


def check_targets(model, target_modules) -> None:
    """A one-line error when ``--lora-targets`` names layers this model does not have."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [m for m in target_modules if m not in names]
    if missing:
        raise SelectgymError(f"LoRA target modules {missing} are not in this model; it has e.g. "
                             f"{sorted(n for n in names if n.endswith('proj'))[:8]}")


def attach_lora(model, spec: LoraSpec | None = None, seed: int | None = None):
    """Wrap ``model`` with a fresh LoRA adapter (base frozen, adapter trainable).

    peft draws the A matrices from torch's global generator; with ``seed`` that happens inside a forked RNG
    seeded so, which makes the adapter reproducible and leaves the global generator as it was.
    """
    import torch
    from peft import get_peft_model

    spec = spec or LoraSpec()
    check_targets(model, spec.target_modules)
    if seed is None:
        return get_peft_model(model, spec.to_peft())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, spec.to_peft())


def lora_parameters(model) -> list[tuple[str, object]]:
    """The trainable LoRA parameters in a fixed (name-sorted) order: the coordinates of every gradient."""
    return sorted(((n, p) for n, p in model.named_parameters() if p.requires_grad and "lora_" in n),
                  key=lambda np_: np_[0])
