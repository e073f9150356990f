-- Instances whose blob may not be durable yet: with the blob store's
-- fdatasyncs covered by the write-ahead log's (store.FS.CoverSyncs), a
-- fresh blob is made durable by the log fdatasync that follows its row's
-- COMMIT, not before it. The device may write the log's frames to the
-- disk before the blob's bytes (a write cache keeps no order until its
-- flush), so after a power loss a committed row can outlive its blob.
-- Package ingest inserts each new instance here in its row's
-- transaction, tagged with the writer's batch number, and deletes the
-- batches whose log fdatasync has returned in a later transaction. At
-- start, the blob of every instance still listed is read back and checked
-- (size, SHA-256, the codec's authentication); an instance whose blob is
-- not intact was never acknowledged and is removed with its results and
-- jobs, so that the sender's retry stores it again.
-- PostgreSQL: BIGSERIAL id, BIGINT batch.
CREATE TABLE blob_unflushed (
    id               INTEGER PRIMARY KEY,
    batch            INTEGER NOT NULL,
    sop_instance_uid TEXT NOT NULL
);
