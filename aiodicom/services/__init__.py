"""One module per DIMSE service, both roles where aiodicom has both: the store acceptor (:mod:`.store`),
the relay (:mod:`.relay`), query and retrieve (:mod:`.query`, :mod:`.survey`, :mod:`.retrieve`), the
acceptor's message loop (:mod:`.dispatch`), study completion (:mod:`.studies`) and events (:mod:`.events`).
Services use associations and storage backends; they know nothing of the user-facing classes."""
