-- Lets the orphan sweep ask whether a blob key is referenced.
CREATE INDEX instances_blob_key ON instances (blob_key);
