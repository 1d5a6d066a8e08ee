"""Study completion: a study is complete ``timeout`` seconds after its last instance arrived.

The timer restarts with every instance of the study (so a slow sender never splits a study); pending studies
are flushed when the server stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiodicom.dataset.tags import split_levels
from aiodicom.services.store import StoredInstance


@dataclass(frozen=True, slots=True)
class InstanceSummary:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    file: str
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    series_instance_uid: str
    tags: dict[str, str]
    instances: list[InstanceSummary]


@dataclass(frozen=True, slots=True)
class StudyCompleted:
    """A completed study: study-level tags (patient and study), then its series and their instances."""

    study_instance_uid: str
    tags: dict[str, str]
    series: list[SeriesSummary]

    @property
    def instance_count(self) -> int:
        return sum(len(s.instances) for s in self.series)

    @property
    def message(self) -> str:
        return (
            f"study {self.study_instance_uid} completed: {len(self.series)} series, "
            f"{self.instance_count} instances"
        )


@dataclass
class _Study:
    tags: dict[str, str] = field(default_factory=dict)
    series: dict[str, SeriesSummary] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None
    deadline: float = 0.0  # loop time: quiet until then completes the study


class StudyTracker:
    """Groups stored instances by study; emits :class:`StudyCompleted` after ``timeout`` seconds of quiet."""

    def __init__(self, timeout: float, emit: Callable[[StudyCompleted], None]) -> None:
        self.timeout = timeout
        self.emit = emit
        self._studies: dict[str, _Study] = {}

    @property
    def pending(self) -> int:
        return len(self._studies)

    def add(self, instance: StoredInstance) -> None:
        study_tags, series_tags, instance_tags = split_levels(instance.tags)
        study = self._studies.setdefault(instance.study_instance_uid, _Study())
        for key, value in study_tags.items():
            study.tags.setdefault(key, value)
        series = study.series.get(instance.series_instance_uid)
        if series is None:
            series = study.series[instance.series_instance_uid] = SeriesSummary(
                instance.series_instance_uid, dict(series_tags), []
            )
        series.instances.append(
            InstanceSummary(
                instance.sop_instance_uid,
                instance.sop_class_uid,
                instance.transfer_syntax_uid,
                instance.file,
                instance_tags,
            )
        )
        loop = asyncio.get_running_loop()
        study.deadline = loop.time() + self.timeout
        if study.timer is None:  # one timer per study, moved on when it fires early (not per instance)
            study.timer = loop.call_at(study.deadline, self._due, instance.study_instance_uid)

    def _due(self, study_uid: str) -> None:
        study = self._studies.get(study_uid)
        if study is None:
            return
        loop = asyncio.get_running_loop()
        if study.deadline - loop.time() > 0.001:  # an instance came since the timer was armed
            study.timer = loop.call_at(study.deadline, self._due, study_uid)
            return
        study.timer = None
        self._complete(study_uid)

    def _complete(self, study_uid: str) -> None:
        study = self._studies.pop(study_uid, None)
        if study is None:
            return
        if study.timer is not None:
            study.timer.cancel()
        self.emit(StudyCompleted(study_uid, study.tags, list(study.series.values())))

    def flush(self) -> None:
        """Complete every pending study now (on stop)."""
        for study_uid in list(self._studies):
            self._complete(study_uid)
