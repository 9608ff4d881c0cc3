"""polytel.integrations: the worker systems polytel runs inside (Celery, RQ, gunicorn, uWSGI, any WSGI server).

Each submodule imports its framework only when it is imported itself: ``import polytel`` never pulls in Celery.
See docs/celery.md, docs/rq.md, docs/gunicorn.md, docs/uwsgi.md.
"""
__all__ = ["celery", "rq", "gunicorn", "uwsgi", "wsgi"]
