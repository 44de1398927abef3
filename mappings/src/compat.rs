//! Whether a new version of a canonical schema would break its consumers.
