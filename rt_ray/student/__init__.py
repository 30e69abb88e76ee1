"""Student stage: Fine-tune-CoT training and evaluation."""
