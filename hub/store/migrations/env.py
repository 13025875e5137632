"""Alembic environment: always run with a connection handed in by ``hub.db.upgrade``.

It imports nothing from ``hub``: the revisions are frozen copies of their day, and
running them needs no model. ``target_metadata`` is there only for a caller that
compares the database with the models (autogenerate); such a caller hands it in.
"""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `hub db upgrade`, which supplies the connection")

context.configure(connection=connection, target_metadata=context.config.attributes.get("target_metadata"), render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
