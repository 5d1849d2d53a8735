"""MusicGen in three layers: loading (:mod:`.loading`, :mod:`.prepared`), sampling
(:mod:`.sampling`, :mod:`.streaming`) and the CPU thread policy (:mod:`.threads`).

The token loop itself is :mod:`restoration.decoding`. Callers use the façade
:mod:`restoration.generation`.
"""
