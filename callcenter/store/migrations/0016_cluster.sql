-- Several instances on one PostgreSQL store (callcenter/cluster/). Unused on SQLite, where one
-- process owns everything.

-- Live events of every instance, in one global order: the id is the event's sequence number
-- on every instance (websocket resume works across them). Ids are given as MAX(id) + 1 by
-- writers that hold one lock, so they are contiguous and committed in order.
CREATE TABLE bus_outbox (
    id BIGINT PRIMARY KEY,
    topic TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,  -- the event's time (epoch seconds)
    data TEXT NOT NULL,  -- the event's data as JSON
    origin TEXT NOT NULL  -- the instance that published it
);

-- Which live instance runs which line. The owner renews its row; once expires_at (epoch
-- seconds by the database's clock) has passed, another instance may take the line over.
CREATE TABLE line_leases (
    line TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    since DOUBLE PRECISION NOT NULL  -- when this owner took it
);

CREATE TABLE cluster_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
