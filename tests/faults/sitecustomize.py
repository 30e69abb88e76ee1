"""Plants a bug in rt-ray, for the tests of how a fault in rt-ray's own code ends a command.

Python imports ``sitecustomize`` at start-up from the first folder on its path that has one: a test
puts this folder first on PYTHONPATH of an ``rt-ray`` command, so the command and every process it
starts (Ray's workers inherit the environment) load it. RT_RAY_TEST_FAULT names the bug; without it
nothing is touched.
"""

import os

if os.environ.get("RT_RAY_TEST_FAULT") == "teacher_response_type_error":
    from rt_ray.teacher.client import TeacherClient

    def _broken_texts(self, response, expected):
        raise TypeError("planted: a bug in the response handling")

    TeacherClient._texts = _broken_texts
