"""Ray job: The trained student's test accuracy against its zero-shot and vanilla baselines.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- python jobs/evaluate.py -c configs/quickstart.yaml
"""

from _entry import run

if __name__ == "__main__":
    run("evaluate")
