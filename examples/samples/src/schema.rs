//! The SQL schemas (with seed data) of the sample systems, per SQL dialect.
//!
//! The files under `sql/` are the source; they are compiled in so that the generator can apply
//! them (`--create-schema`). Every statement is idempotent (`IF NOT EXISTS`, seed rows that
//! ignore duplicates).

use crate::model::Domain;

/// A SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MariaDB (and MySQL).
    MariaDb,
    /// SQLite, for the embedded demo.
    Sqlite,
}

/// The schema of `domain`'s SQL tables in `dialect`, if that system lives there: healthcare
/// and bank are MariaDB systems, customs and land PostgreSQL ones; SQLite holds all four.
#[must_use]
pub fn schema(dialect: Dialect, domain: Domain) -> Option<&'static str> {
    match (dialect, domain) {
        (Dialect::MariaDb, Domain::Healthcare) => {
            Some(include_str!("../sql/mariadb/healthcare.sql"))
        }
        (Dialect::MariaDb, Domain::Bank) => Some(include_str!("../sql/mariadb/bank.sql")),
        (Dialect::Postgres, Domain::Customs) => Some(include_str!("../sql/postgres/customs.sql")),
        (Dialect::Postgres, Domain::Land) => Some(include_str!("../sql/postgres/land.sql")),
        (Dialect::Sqlite, Domain::Healthcare) => Some(include_str!("../sql/sqlite/healthcare.sql")),
        (Dialect::Sqlite, Domain::Customs) => Some(include_str!("../sql/sqlite/customs.sql")),
        (Dialect::Sqlite, Domain::Land) => Some(include_str!("../sql/sqlite/land.sql")),
        (Dialect::Sqlite, Domain::Bank) => Some(include_str!("../sql/sqlite/bank.sql")),
        _ => None,
    }
}

/// Split a schema file into statements (the files keep `;` out of strings and comments).
#[must_use]
pub fn statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .map(|l| l.split_once("--").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domains::{DISTRICTS, HOSPITALS, PROCEDURES};
    use crate::model::TABLES;

    #[test]
    fn every_table_is_in_every_schema_that_holds_its_domain() {
        for dialect in [Dialect::Postgres, Dialect::MariaDb, Dialect::Sqlite] {
            for domain in Domain::ALL {
                let Some(sql) = schema(dialect, domain) else {
                    continue;
                };
                for t in TABLES.iter().filter(|t| t.domain == domain) {
                    if t.name == crate::model::MANIFEST_TABLE {
                        continue;
                    }
                    assert!(
                        sql.contains(&format!("CREATE TABLE IF NOT EXISTS {} (", t.name)),
                        "{dialect:?} {domain}: {}",
                        t.name
                    );
                    assert!(
                        sql.contains(&format!("ON {} (updated_at)", t.name)),
                        "{dialect:?} {domain}: no updated_at index on {}",
                        t.name
                    );
                    assert!(sql.contains(&format!("{} ", t.key)), "{}", t.key);
                }
            }
        }
    }

    #[test]
    fn seed_data_matches_the_generator_reference_tables() {
        for dialect in [Dialect::MariaDb, Dialect::Sqlite] {
            let sql = schema(dialect, Domain::Healthcare).unwrap();
            for (code, name) in HOSPITALS {
                assert!(sql.contains(&format!("('{code}', '{name}'")), "{code}");
            }
            for (code, name, usual) in PROCEDURES {
                assert!(
                    sql.contains(&format!("('{code}', '{name}', {usual})")),
                    "{code}"
                );
            }
        }
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            let sql = schema(dialect, Domain::Land).unwrap();
            for (code, name, median) in DISTRICTS {
                assert!(
                    sql.contains(&format!("('{code}', '{name}', {median})")),
                    "{code}"
                );
            }
        }
    }

    #[test]
    fn statements_split_on_semicolons_outside_comments() {
        let s = statements("-- a; b\nCREATE TABLE x (a INT); -- c;\nINSERT INTO x VALUES (1);\n");
        assert_eq!(
            s,
            vec!["CREATE TABLE x (a INT)", "INSERT INTO x VALUES (1)"]
        );
    }
}
