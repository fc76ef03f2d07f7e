"""nbgrader configuration for ONNX and Beyond.

Every path is relative to this file, so the repository works wherever it is cloned.
The lessons (assignments) are listed in ``LESSONS`` with stable ids; the test harness and the
autograder discover them from ``source/`` and check that this list agrees.
"""

from pathlib import Path

c = get_config()  # noqa: F821  (nbgrader injects get_config)

ROOT = Path(__file__).resolve().parent

#: Stable assignment ids, in course order (00-template shows the house style).
LESSONS = [
    "00-template",
    "01-interoperability",
    "02-onnx-fundamentals",
    "03-converting",
    "04-onnx-runtime",
    "05-other-formats",
    "06-hardware",
    "07-production",
    "08-future",
]

c.CourseDirectory.course_id = "onnx-and-beyond"
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = f"sqlite:///{ROOT / 'gradebook.db'}"
# The release keeps each lesson's data files, never caches or checkpoints.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    ".course-cache",
]

# The course kernel (registered by `make setup`); grading always uses it, whatever kernel a
# submission's metadata names.
c.ExecutePreprocessor.kernel_name = "onnx-and-beyond"
c.ExecutePreprocessor.timeout = (
    60  # seconds per cell (a lesson runs in 60 s in all); the autograder adds whole-notebook limits
)
c.Execute.timeout = 60

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A local exchange for a single machine; on JupyterHub set this to the shared exchange.
c.Exchange.root = str(ROOT / "exchange")
c.Exchange.path_includes_course = True

# The autograder judges the tests in a second kernel that never runs student code (the two
# kernels of a submission share one loopback, nothing else). A lesson whose tests cannot work
# there would be listed here, {lesson: reason}, and graded the old way (tests in the student's
# kernel: forgeable, see autograder/README.md, known limits), with the reason in the summary and
# report.json. None is.
c.Autograder.tests_in_student_kernel = {}
