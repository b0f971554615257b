"""What the benchmark scripts in ``bench/`` share, one concern per module (all of it talks to 127.0.0.1 only,
and every wait is bounded in time):

- :mod:`.paths`: the project, its virtualenv, the bench directory, the API prefix;
- :mod:`.env`: the environment for the server and the subprocesses, running those subprocesses;
- :mod:`.db`: PostgreSQL (DSNs, drop + create a bench database) and Redis (delete a bench DB's keys);
- :mod:`.seed`: the Django side, for the scripts' worker subprocesses: ``django.setup()``, bench users, models;
- :mod:`.server`: uvicorn in its own process group (:class:`~.server.Server`), health, JWTs;
- :mod:`.rawhttp`: the small httptools HTTP/1.1 keep-alive client;
- :mod:`.websocket`: the small sans-I/O websocket client;
- :mod:`.load`: the closed-loop HTTP load (:func:`~.load.run_load`, :func:`~.load.measured_load`);
- :mod:`.stats`: :class:`~.stats.Stats`, percentiles, ``num`` for JSON;
- :mod:`.cpu`: CPU accounting from ``/proc`` (machine, per process, idle check);
- :mod:`.report`: printing (``step``, the per-phase lines).
"""
