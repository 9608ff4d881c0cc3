"""uWSGI's module (--module wsgi_uwsgi:application): the app with polytel's postfork/atexit hooks and middleware."""
from polytel.integrations.uwsgi import instrument
from wsgi_app import app

application = instrument(app)
