"""The table models: one module per domain, on a floor below every service.

A service reaches any table here (``from cpaas_cli.models.billing import Charge``)
without importing the service that owns it; the models import nothing of
cpaas_cli but ``db``. Importing this package loads no table: a command loads
the modules it uses. ``cpaas_cli.models.all`` loads every table (the complete
metadata for Alembic, the report sandbox and the tests).
"""
