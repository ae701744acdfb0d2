//! The Roentgen daemon: receives X-Ray UDP datagrams, scrubs, batches and forwards them.
