"""The embedded catalog on one SQLite file: the index (:mod:`.index_store`) and the change
feed (:mod:`.feed_store`) share the database, so an entry can commit with its record."""
