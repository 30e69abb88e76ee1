"""Ray job: Student stage: Fine-tune-CoT with Ray Train + DeepSpeed, test accuracy, MLflow registry.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- python jobs/train.py -c configs/quickstart.yaml
"""

from _entry import run

if __name__ == "__main__":
    run("train")
