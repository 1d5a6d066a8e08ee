"""MPPS on a server: ``mpps_dir=`` (or ``mpps_store=``), ``on_mpps_create`` and ``on_mpps_set``.

:class:`MppsServices` is a base of :class:`~aiodicom.scp.store.StoreScp` (and QueryRetrieveScp). The
Modality Performed Procedure Step SOP class is served once MPPS is enabled: by ``mpps_dir`` (one JSON file
per instance there, :class:`~aiodicom.services.mpps.JsonMppsStore`), by ``mpps_store`` (any object with
``load``/``save`` coroutines), or by registering a hook, which without either keeps the instances in
memory. The state checks of PS3.4 F.7 are the library's (:class:`~aiodicom.services.mpps.MppsService`);
the hooks see each request that passed them, before the instance is saved, and may refuse it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aiodicom.scp.nserving import NServices

if TYPE_CHECKING:
    from aiodicom.services.mpps import MppsHook, MppsService, MppsStore

MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"


class MppsServices(NServices):
    """The MPPS SCP of a server; see the module's docstring."""

    def init_mpps(
        self,
        mpps_dir: str | os.PathLike[str] | None = None,
        mpps_store: MppsStore | None = None,
        *,
        fsync: bool = True,
    ) -> None:
        """Set up (from the server's constructor, after :meth:`init_n_services`)."""
        self._mpps: MppsService | None = None
        if mpps_dir is not None and mpps_store is not None:
            raise ValueError("give mpps_dir or mpps_store, not both")
        if mpps_dir is not None:
            from aiodicom.services.mpps import JsonMppsStore

            mpps_store = JsonMppsStore(mpps_dir, fsync=fsync)
        if mpps_store is not None:
            self._enable_mpps(mpps_store)

    @property
    def mpps(self) -> MppsService | None:
        """The MPPS service (its ``store`` holds the instances), None while MPPS is not served."""
        return self._mpps

    def on_mpps_create(self, hook: MppsHook) -> MppsHook:
        """Register the hook of each MPPS N-CREATE that passed the checks (also a decorator):
        ``hook(event: MppsEvent)``, plain or async; raising NServiceError refuses it. Enables MPPS (in
        memory when neither mpps_dir nor mpps_store was given)."""
        if not callable(hook):
            raise TypeError("on_mpps_create takes a function")
        self._enable_mpps(None).on_create = hook
        return hook

    def on_mpps_set(self, hook: MppsHook) -> MppsHook:
        """Register the hook of each MPPS N-SET that passed the checks (also a decorator); as
        :meth:`on_mpps_create`. ``event.status`` is the step's new status (COMPLETED or DISCONTINUED
        when it ends)."""
        if not callable(hook):
            raise TypeError("on_mpps_set takes a function")
        self._enable_mpps(None).on_set = hook
        return hook

    def _enable_mpps(self, store: MppsStore | None) -> MppsService:
        if self._mpps is not None and store is None:
            return self._mpps
        from aiodicom.services.mpps import MemoryMppsStore, MppsService

        service = MppsService(store if store is not None else MemoryMppsStore())
        self._mpps = service
        self.on_n_create(MPPS_SOP_CLASS, service.create)
        self.on_n_set(MPPS_SOP_CLASS, service.set)
        return service
