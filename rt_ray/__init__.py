"""rt-ray: Fine-tune-CoT reasoning distillation on Ray."""
