//! Connector tests against real PostgreSQL and MariaDB servers (scripts/services.sh starts them),
//! through the source trait and through the runtime with the embedded log and the node's
//! registry.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod files;
mod mariadb;
mod postgres;
mod sqlite;
mod support;
