//! The Roentgen collector and dashboard server.
