-- The encryption key's fingerprint: a constant sealed with the key the database's secrets
-- are sealed with, so a start with another key is refused before anything is read or
-- written with it (see src/crypto.rs). One row, written at the first start with a key.
CREATE TABLE key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL
);
