"""Train the target on a selection: LoRA SFT, DPO and GRPO with TRL + peft, evaluation, re-selection.

``config.FinetuneConfig`` holds the settings, ``train.train`` runs TRL's trainer and saves the adapter,
``train.merge_and_export`` folds it into the base model, ``evaluate.evaluate`` scores a model on a target
set, and ``reselect`` changes the training subset while training runs.
"""
