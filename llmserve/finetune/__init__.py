"""LoRA fine-tuning of the served model (`llmserve finetune`), merging an adapter into a full
checkpoint (`llmserve finetune merge`); see cli.py."""
