-- Webhook deliveries waiting to be made (or retried): one row per event and
-- receiver URL, removed once the receiver answers 2xx or the event is too
-- old. An event's id, the same for each receiver, grows with the time the
-- event happened.
CREATE TABLE webhook_queue (
    id BIGINT NOT NULL,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    PRIMARY KEY (id, url)
);
CREATE INDEX webhook_queue_due ON webhook_queue (url, next_at);
