"""Alembic environment: always handed a live connection by `crossline.storage.db.migrate`."""

from alembic import context

connection = context.config.attributes["connection"]
# Batch mode lets later migrations alter columns on SQLite too.
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
