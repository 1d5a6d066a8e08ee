"""The user-facing requestor classes, thin over the services: options, results, progress and UX.

:mod:`~aiodicom.scu.base` (what every SCU shares), :mod:`~aiodicom.scu.echo`, :mod:`~aiodicom.scu.store`,
:mod:`~aiodicom.scu.find`, :mod:`~aiodicom.scu.get`, :mod:`~aiodicom.scu.move`.
"""
