"""The charging core: the path from an EDR to money.

* ``events`` — the one place an EDR, a queue row or a rerate row becomes an
  engine event (and the one sender-type rule, ``catalog.vocab.sender_type_of``);
* ``plans`` — agreement plans loaded from the database for the pure engine;
* ``rater`` — rates events, moves counters, packs and the balance, and gives
  the stored rating columns and ledger rows;
* ``stored`` — rating of stored EDRs: `edr rate`, receipts (``rate_and_charge``);
* ``refunds`` — giving back what an unsent message (or its unsent parts) was charged.
"""
