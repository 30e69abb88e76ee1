"""Ray job: Teacher stage: D Zero-shot-CoT rationales per training question, filtered.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- python jobs/generate.py -c configs/quickstart.yaml
"""

from _entry import run

if __name__ == "__main__":
    run("generate")
