"""The technician's status page: rendering (:mod:`.render`), trend charts (:mod:`.trends`) and
the read-only aiohttp server with live updates (:mod:`.server`)."""
