"""DynamoDB: how each operation is mirrored, and how the shadow converges to the primary.

Modules, lowest first (a module imports only those above it):

* :mod:`~dualwrite._dynamodb.partiql`: a pure PartiQL reader (verb, table, key terms);
* :mod:`~dualwrite._dynamodb.keys`: canonical attribute values, keys, key schemas, the
  per-client :class:`~dualwrite._dynamodb.keys.State`, and ``lock_name`` (ARN -> table name);
* :mod:`~dualwrite._dynamodb.calls`: what every handler shares (deciding, locks, requests the
  wrapper cannot read);
* :mod:`~dualwrite._dynamodb.converge`: giving the shadow one key's state, reading it back, and
  ``repair_item``; :mod:`~dualwrite._dynamodb.fleet`: settling keys several processes write;
* the handlers: :mod:`~dualwrite._dynamodb.batch` (multi-key writes, ``BatchWriteItem``),
  :mod:`~dualwrite._dynamodb.transactions`, :mod:`~dualwrite._dynamodb.items`,
  :mod:`~dualwrite._dynamodb.statements` (PartiQL);
* :mod:`~dualwrite._dynamodb.operations`: which operation is handled how (``HANDLERS``,
  ``UNSUPPORTED``, ``PRIMARY_ONLY``, ``ROUTED_READS``);
* :mod:`~dualwrite._dynamodb.routing`: the stage-routing hooks;
* :mod:`~dualwrite._dynamodb.proxy` (the wrapped client, ``wrap``),
  :mod:`~dualwrite._dynamodb.service` (``SERVICE``, the engine's view of DynamoDB) and
  :mod:`~dualwrite._dynamodb.backfill` (``diff``/``copy`` of a table).
"""
