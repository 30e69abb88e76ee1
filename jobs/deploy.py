"""Ray job: deploy the trained student on Ray Serve (detached: it stays up after the job ends).

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- python jobs/deploy.py -c configs/quickstart.yaml

Or, without a job, ``serve deploy serve_configs/student.yaml`` (declarative, what production uses).
"""

from _entry import run

if __name__ == "__main__":
    run("deploy")
