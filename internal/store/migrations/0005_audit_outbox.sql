-- Audit records staged in the transaction of what they record (package
-- ingest stages an instance's instance:store record with its row): the
-- record is durable exactly when the row is, without a second fsync on
-- the acknowledgement's path. A background mover appends them to the
-- HMAC-chained audit trail in id order and then deletes them.
-- record is the record's JSON (audit.Trail.Stage), not yet chained.
CREATE TABLE audit_outbox (
    id     INTEGER PRIMARY KEY,
    record TEXT NOT NULL
);
