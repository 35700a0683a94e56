"""The cloud catalog on Cosmos DB (NoSQL API): the index (:mod:`.index_store`) and the change
feed (:mod:`.feed_store`) in one database (:mod:`.database`)."""
