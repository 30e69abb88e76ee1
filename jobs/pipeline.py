"""Ray job: The whole pipeline: teacher -> sweep -> baselines -> deploy -> report.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- python jobs/pipeline.py -c configs/quickstart.yaml
"""

from _entry import run

if __name__ == "__main__":
    run("pipeline")
