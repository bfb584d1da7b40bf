"""Improving a model: training data and its guards (data), hard negatives (negatives), bi-encoder
fine-tuning (finetune), one fine-tuning end to end with lineage (run), rerankers (reranker) and
distillation (distill)."""
