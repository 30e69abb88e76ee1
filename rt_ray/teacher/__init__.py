"""Teacher stage: Zero-shot-CoT rationales from an OpenAI-compatible teacher, on Ray Data.

    rt-ray generate -c configs/quickstart.yaml
"""
