"""The technician's commands of ``pumproom-agent``, one module each: :mod:`.read`, :mod:`.write`,
:mod:`.status_cmd`, :mod:`.scan_cmd`, :mod:`.export`; shared options in :mod:`.options`, targets
(configured points, ad-hoc buses) in :mod:`.target`, register decodings in :mod:`.decode`."""
