"""The study tracker: a study is complete ``timeout`` seconds after its last instance arrived.

Real timers on the running loop, with short timeouts; times are measured on the loop's clock, so a busy
machine makes a test slower, not wrong.
"""

from __future__ import annotations

import asyncio
import itertools

from aiodicom.services.store import StoredInstance
from aiodicom.services.studies import StudyCompleted, StudyTracker

_numbers = itertools.count(1)


def stored(study: str, series: str, **tags: str) -> StoredInstance:
    n = next(_numbers)
    return StoredInstance(
        file=f"/out/{study}/{series}/1.2.3.{n}.dcm",
        sop_instance_uid=f"1.2.3.{n}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        study_instance_uid=study,
        series_instance_uid=series,
        tags=dict(tags),
    )


class Recorder:
    """Collects what the tracker emits, with the loop time of each."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.studies: list[StudyCompleted] = []
        self.times: list[float] = []
        self.changed = asyncio.Event()

    def __call__(self, study: StudyCompleted) -> None:
        self.studies.append(study)
        self.times.append(self.loop.time())
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.studies) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_every_instance_restarts_the_timer() -> None:
    timeout = 0.3
    emitted = Recorder()
    tracker = StudyTracker(timeout, emitted)
    loop = asyncio.get_running_loop()
    first = loop.time()
    last = first
    for _ in range(3):
        tracker.add(stored("1.1", "1.1.1"))
        last = loop.time()
        await asyncio.sleep(0.05)
    assert emitted.studies == [] and tracker.pending == 1
    await emitted.wait_for(1)
    await asyncio.sleep(0.05)
    assert len(emitted.studies) == 1  # one study, never split by the sender's pace
    (study,) = emitted.studies
    assert study.study_instance_uid == "1.1" and study.instance_count == 3
    assert emitted.times[0] - last >= timeout - 0.01  # counted from the last instance...
    assert emitted.times[0] - first >= timeout + 0.1 - 0.01  # ...not from the first
    assert tracker.pending == 0


async def test_flush_completes_every_pending_study_at_once_and_only_once() -> None:
    emitted = Recorder()
    tracker = StudyTracker(0.2, emitted)
    tracker.add(stored("2.1", "2.1.1"))
    tracker.add(stored("2.2", "2.2.1"))
    assert tracker.pending == 2
    tracker.flush()
    assert sorted(s.study_instance_uid for s in emitted.studies) == ["2.1", "2.2"]
    assert tracker.pending == 0
    tracker.flush()
    await asyncio.sleep(0.35)  # past the timeout: the flushed studies' timers were cancelled
    assert len(emitted.studies) == 2


async def test_two_studies_interleaved_complete_apart() -> None:
    emitted = Recorder()
    tracker = StudyTracker(0.2, emitted)
    a1 = stored("3.1", "3.1.1")
    b1 = stored("3.2", "3.2.1")
    a2 = stored("3.1", "3.1.2")
    b2 = stored("3.2", "3.2.1")
    a3 = stored("3.1", "3.1.1")
    for instance in (a1, b1, a2, b2, a3):
        tracker.add(instance)
    assert tracker.pending == 2
    await emitted.wait_for(2)
    by_uid = {s.study_instance_uid: s for s in emitted.studies}
    assert set(by_uid) == {"3.1", "3.2"}
    a, b = by_uid["3.1"], by_uid["3.2"]
    assert [s.series_instance_uid for s in a.series] == ["3.1.1", "3.1.2"]  # in order of arrival
    assert [[i.sop_instance_uid for i in s.instances] for s in a.series] == [
        [a1.sop_instance_uid, a3.sop_instance_uid],
        [a2.sop_instance_uid],
    ]
    assert [[i.sop_instance_uid for i in s.instances] for s in b.series] == [
        [b1.sop_instance_uid, b2.sop_instance_uid]
    ]
    assert a.instance_count == 3 and b.instance_count == 2
    assert a.message == "study 3.1 completed: 2 series, 3 instances"
    assert {i.file for s in a.series for i in s.instances} == {a1.file, a2.file, a3.file}


async def test_tags_are_kept_at_their_level() -> None:
    emitted = Recorder()
    tracker = StudyTracker(10.0, emitted)
    tracker.add(
        stored(
            "4.1",
            "4.1.1",
            PatientName="DOE^JANE",
            StudyDate="20240101",
            Modality="CT",
            SeriesNumber="1",
            InstanceNumber="1",
            Rows="512",
        )
    )
    tracker.add(
        stored(
            "4.1", "4.1.1", PatientName="DOE^OTHER", StudyDate="20240101", Modality="CT", InstanceNumber="2"
        )
    )
    tracker.add(stored("4.1", "4.1.2", PatientName="DOE^JANE", Modality="MR", SeriesNumber="2"))
    tracker.flush()
    (study,) = emitted.studies
    assert study.tags == {"PatientName": "DOE^JANE", "StudyDate": "20240101"}  # the first value stays
    first, second = study.series
    assert first.tags == {"Modality": "CT", "SeriesNumber": "1"}  # the series' first instance's
    assert second.tags == {"Modality": "MR", "SeriesNumber": "2"}
    assert [i.tags for i in first.instances] == [
        {"InstanceNumber": "1", "Rows": "512"},
        {"InstanceNumber": "2"},
    ]
    assert [i.tags for i in second.instances] == [{}]
    instance = first.instances[0]
    assert instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.1"
