"""Ray job: Sweep stage: Ray Tune over D (and other knobs); table, plot, champion in the MLflow registry.

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- python jobs/sweep.py -c configs/quickstart.yaml
"""

from _entry import run

if __name__ == "__main__":
    run("sweep")
