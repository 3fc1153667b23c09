"""Per-step wall time (and Spark job count) for jobs made of several steps.

    timer = StepTimer(spark)
    with timer.step("silver") as step:
        counts = silver.run(...)
        step.counts = counts.report()
    print(timer.report())
    timer.log_to_mlflow()          # step_seconds.<step>, spark_jobs.<step> on the active run

Why a job count: on small data most of a step's time is the fixed cost of Spark jobs
(scheduling, Delta snapshots), so "how many actions" explains a slow step as well as seconds.
Jobs are counted through the status tracker under a job group per step, which works with the
Spark UI off.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the API's dashboard reads the metric names below without pyspark
    from pyspark.sql import SparkSession

#: MLflow metric names of the step times (``metrics``): ``step_seconds.<step>`` per step and
#: their sum; the dashboard (online/services/dashboard.py) reads them by these names.
STEP_SECONDS = "step_seconds."
TOTAL_SECONDS = STEP_SECONDS + "total"
SPARK_JOBS = "spark_jobs."


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    jobs: int | None = None  # Spark jobs started inside the step; None without a session
    counts: str = ""  # what the step produced, for the printed line


@dataclass
class StepTimer:
    spark: SparkSession | None = None
    echo: bool = False  # print each step's line as it ends (a long job shows its progress)
    steps: list[Step] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time the block; its Spark jobs run under the job group ``step-<name>``."""
        current = Step(name)
        sc = self.spark.sparkContext if self.spark is not None else None
        group = f"step-{name}-{len(self.steps)}"
        if sc is not None:
            sc.setJobGroup(group, name)
        started = time.perf_counter()
        try:
            yield current
        finally:
            current.seconds = time.perf_counter() - started
            if sc is not None:
                current.jobs = len(sc.statusTracker().getJobIdsForGroup(group))
                sc.setJobGroup("", "")
            self.steps.append(current)
            if self.echo:
                print(self.line(current), flush=True)

    @property
    def seconds(self) -> dict[str, float]:
        return {s.name: s.seconds for s in self.steps}

    @property
    def total(self) -> float:
        return sum(s.seconds for s in self.steps)

    @staticmethod
    def line(s: Step, width: int = 8) -> str:
        """``name  seconds  jobs  counts``."""
        jobs = f"{s.jobs:>4} jobs" if s.jobs is not None else " " * 9
        return f"{s.name:<{width}}  {s.seconds:7.1f} s  {jobs}  {s.counts}".rstrip()

    def report(self) -> str:
        """One line per step: name, seconds, Spark jobs, what it produced."""
        width = max([len(s.name) for s in self.steps] + [8])
        lines = [self.line(s, width) for s in self.steps]
        lines.append(f"{'total':<{width}}  {self.total:7.1f} s")
        return "\n".join(lines)

    def metrics(self) -> dict[str, float]:
        out = {STEP_SECONDS + s.name: s.seconds for s in self.steps}
        out.update({SPARK_JOBS + s.name: float(s.jobs) for s in self.steps if s.jobs is not None})
        out[TOTAL_SECONDS] = self.total
        return out

    def log_to_mlflow(self) -> None:
        """The step metrics on the active MLflow run."""
        import mlflow

        mlflow.log_metrics(self.metrics())
