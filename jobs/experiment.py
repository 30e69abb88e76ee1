"""Ray job: the paper's comparison (teacher, zero-shot, vanilla, Fine-tune-CoT at each D) over seeds.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- python jobs/experiment.py -c configs/paper-full.yaml
"""

from _entry import run

if __name__ == "__main__":
    run("experiment")
